"""Hybrid search: BM25 and dense rankings fused into :class:`Hit` s with evidence."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .chunking import Chunk
from .embedding import Embedder
from .errors import ModelUnavailableError, QuestionError
from .index import Index
from .lexical import tokenize_query
from .onnx_query import OnnxQueryEncoder
from .settings import Settings
from .text import to_simplified

CANDIDATES = 50  # per retriever, before fusion


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its scores.

    Attributes:
        rank: 1-based position after fusion.
        chunk: The passage.
        score: Fused score (higher is better).
        lexical: BM25 score (0 when no question word matches).
        dense: Cosine similarity, or None without dense retrieval (and, with RRF, for
            passages only BM25 found).
        coverage: Share (0..1, idf-weighted) of the question's words found in the passage;
            low coverage is the main evidence that the articles do not answer.
    """

    rank: int
    chunk: Chunk
    score: float
    lexical: float
    dense: float | None
    coverage: float


class Searcher:
    """Answers ``search(question)`` from one loaded :class:`Index`.

    The dense model named in the index is loaded on first use, never from
    the network; if that fails the searcher says so once through ``warn``
    and continues with BM25 alone.
    """

    def __init__(self, index: Index, settings: Settings | None = None,
                 embedder: Embedder | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.index = index
        self.settings = settings or Settings()
        self._warn = warn or (lambda _m: None)
        self._embedder = embedder
        self._dense_ok = "dense" in index.retrievers
        # Front ends search from worker threads; the model loads lazily, once.
        self._model_lock = threading.Lock()

    @property
    def retrievers(self) -> tuple[str, ...]:
        """The retrievers in use now (dense drops out if its model fails to load)."""
        return ("bm25", "dense") if self._dense_ok else ("bm25",)

    def warm_up(self) -> None:
        """Load the query model and FAISS file now instead of on the first question."""
        if self._dense_ok:
            self._query_vector("预热")

    def check(self, question: str) -> str:
        """Validate a question and return it stripped.

        Raises:
            QuestionError: Empty, over the length limit, or without any letter or digit.
        """
        q = (question or "").replace("\ufeff", "").replace("\r", "").strip()
        if any("\ud800" <= ch <= "\udfff" for ch in q):
            raise QuestionError("the question is not valid text (its bytes are not UTF-8); please "
                                "ask again in Chinese or English", "not_text")
        if not q:
            raise QuestionError("the question is empty; ask something about the articles", "empty")
        limit = self.settings.max_question_chars
        if len(q) > limit:
            raise QuestionError(f"the question has {len(q)} characters; the limit is {limit}, "
                                f"please ask a shorter one", "too_long", len(q), limit)
        if not any(ch.isalnum() for ch in q):
            raise QuestionError("the question has no words in it (only symbols or emoji); "
                                "please ask in Chinese or English", "no_words", len(q), limit)
        return q

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        """The ``k`` best passages for ``question`` (default ``settings.top_k``)."""
        return self.search_with_vector(question, k)[0]

    def search_with_vector(self, question: str,
                           k: int | None = None) -> tuple[list[Hit], np.ndarray | None]:
        """Like :meth:`search`, also returning the question's vector (None without a model)
        so the composer can weigh sentences by meaning."""
        q = self.check(question)
        k = k or self.settings.top_k
        norm = to_simplified(q)
        n = len(self.index.chunks)
        lex = self.index.lexical.scores(norm)
        lex_top = _top(lex, CANDIDATES)
        lex_top = lex_top[lex[lex_top] > 0]
        dense_scores: dict[int, float] = {}
        qvec = self._query_vector(norm) if self._dense_ok else None
        if qvec is not None and self.index.vectors is not None:
            sims, ids = self.index.vectors.search(qvec, min(CANDIDATES, n),
                                                  self.settings.rerank)
            dense_scores = {int(i): float(s) for i, s in zip(ids[0], sims[0], strict=False) if i >= 0}
            missing = [int(i) for i in lex_top if int(i) not in dense_scores]
            if missing and self.settings.fusion == "convex":  # scaled over both lists' cosines
                dense_scores.update(zip(missing, self.index.vectors.similarity(qvec, missing)
                                        .tolist(), strict=True))
        fused = self._fuse(lex, lex_top, dense_scores)
        order = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        weights = self._query_weights(norm)
        chunks = [self.index.chunks[i] for i in order]  # made from the chunk columns once
        return [Hit(r + 1, c, fused[i], float(lex[i]), dense_scores.get(i),
                    self._coverage(weights, c))
                for r, (i, c) in enumerate(zip(order, chunks, strict=True))], qvec

    def _fuse(self, lex: np.ndarray, lex_top: np.ndarray,
              dense: dict[int, float]) -> dict[int, float]:
        s = self.settings
        if not dense:
            return {int(i): float(lex[i]) for i in lex_top}
        if s.fusion == "rrf":
            out: dict[int, float] = {}
            for r, i in enumerate(lex_top):
                out[int(i)] = out.get(int(i), 0.0) + 1.0 / (s.rrf_k + r + 1)
            for r, i in enumerate(sorted(dense, key=lambda j: -dense[j])):
                out[i] = out.get(i, 0.0) + 1.0 / (s.rrf_k + r + 1)
            return out
        # Convex combination of normalised scores over both candidate lists: BM25 / its
        # best, cosine min-max scaled. Unlike RRF it keeps how far apart the scores are,
        # so a confident BM25 hit is not overtaken by a weak model's top rank.
        ids = np.fromiter(dense, dtype=np.int64, count=len(dense))  # includes every BM25 candidate
        lx = lex[ids].astype(np.float64)
        lx /= lx.max() or 1.0
        dn = np.fromiter(dense.values(), dtype=np.float64, count=len(dense))
        span = dn.max() - dn.min()
        dn = (dn - dn.min()) / span if span > 0 else np.ones_like(dn)
        fused = (1 - s.dense_weight) * lx + s.dense_weight * dn
        return dict(zip(ids.tolist(), fused.tolist(), strict=True))

    def _query_vector(self, norm: str) -> np.ndarray | None:
        with self._model_lock:
            return self._query_vector_locked(norm) if self._dense_ok else None

    def _query_vector_locked(self, norm: str) -> np.ndarray | None:
        try:
            if self._embedder is None:
                self._embedder = self._query_encoder()
            vec = self._embedder.embed_queries([norm])
            if self.index.vectors is not None and vec.shape[1] != self.index.vectors.dimension:
                raise ModelUnavailableError(
                    f"model {self._embedder.model_name!r} gives {vec.shape[1]}-dimensional "
                    f"vectors but the index holds {self.index.vectors.dimension}")
            return vec
        except ModelUnavailableError as exc:
            self._dense_ok = False
            self._warn(f"{exc}; answering with lexical (BM25) retrieval only")
            return None

    def _query_encoder(self) -> Embedder | OnnxQueryEncoder:
        """The ONNX export made at index time if it loads, else the sentence-transformers model."""
        info = self.index.model or {}
        onnx = self.index.manifest.get("query_encoder")
        if onnx:
            try:
                return OnnxQueryEncoder(self.index.folder, onnx)
            except Exception as exc:  # ImportError, a damaged file: the slower path still works
                self._warn(f"the ONNX query encoder did not load ({type(exc).__name__}); "
                           f"using sentence-transformers")
        return Embedder(info["name"], info.get("query_prompt"), info.get("passage_prompt"),
                        allow_download=False, cache_dir=self.settings.cache_dir or None)

    def _query_weights(self, norm: str) -> dict[str, float]:
        """idf weight of each evidence token of the question (bigrams and Latin words)."""
        toks = {t for t in tokenize_query(norm, "bigram") if len(t) > 1 or t.isascii()}
        return self.index.lexical.idf(sorted(toks))

    def _coverage(self, weights: dict[str, float], chunk: Chunk) -> float:
        total = sum(weights.values())
        if not total:
            return 0.0
        # Substring tests instead of tokenizing the passage (5x faster per hit): two adjacent
        # Chinese characters are a bigram of the passage exactly when they occur in it; Latin
        # words and numbers must stand alone, as the tokenizer would have cut them.
        text = self.index.passage(chunk).lower()
        return sum(w for t, w in weights.items()
                   if (t in text if not t.isascii() else _word_in(t, text))) / total


def _word_in(word: str, text: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]
