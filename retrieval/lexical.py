"""BM25 over Simplified text, in bm25s's file format: tokenization, build, load, score.

Tokens are Chinese character unigrams and bigrams (or jieba words), plus
lower-cased Latin words and numbers. Question words (什么, 多少, 哪个…) are
dropped from queries: they say what kind of answer is wanted, not where it is.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError

_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:[.%][0-9]+)*%?")
QUESTION_WORDS = (
    "什么时候", "什么样", "什么", "为什么", "为何", "多少", "多大", "多长", "多久", "多高", "多远",
    "哪一年", "哪一天", "哪一", "哪里", "哪儿", "哪个", "哪些", "哪家", "哪位", "哪", "谁", "几",
    "怎么样", "怎么", "怎样", "如何", "是否", "有没有", "是不是", "吗", "呢", "请问", "告诉我",
)
_QUESTION_RE = re.compile("|".join(map(re.escape, QUESTION_WORDS)))


def tokenize(norm: str, mode: str = "unibigram") -> list[str]:
    """Tokens of Simplified text ``norm`` for BM25.

    Args:
        norm: Text already converted to Simplified script.
        mode: "bigram" (bigrams; unigrams only for one-character runs),
            "unibigram" (unigrams and bigrams), "jieba" (jieba precise mode),
            "jieba+bigram" (both).
    """
    tokens: list[str] = []
    for m in _RUNS.finditer(norm.lower()):
        run = m.group(0)
        if not (run[0] >= "\u3400"):
            tokens.append(run)
            continue
        if mode in ("jieba", "jieba+bigram"):
            tokens.extend(w for w in _jieba().lcut(run) if w.strip())
        if mode != "jieba":
            if mode == "unibigram" or len(run) == 1:
                tokens.extend(run)
            tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
    return tokens


def tokenize_query(norm: str, mode: str = "unibigram") -> list[str]:
    """Tokens of a Simplified question, question words removed (each splits the text)."""
    return tokenize(_QUESTION_RE.sub(" ", norm), mode)


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


class LexicalIndex:
    """BM25 (lucene variant) over chunk texts, stored as bm25s stores it.

    The score of every (token, chunk) pair is computed when the index is built and kept
    as a CSC matrix (``data``, ``indices``, ``indptr``); a question adds up its tokens'
    columns, as bm25s's ``get_scores`` does (tests compare the two). Reading the files
    takes numpy alone: importing bm25s, and the scipy it brings, cost 0.27 s of a 0.6 s
    cold ``newsqa ask``.
    """

    def __init__(self, vocab: dict[str, int], data: np.ndarray, indices: np.ndarray,
                 indptr: np.ndarray, num_docs: int, mode: str) -> None:
        self._vocab = vocab
        self._data, self._indices, self._indptr = data, indices, indptr
        self._num_docs = num_docs
        self.mode = mode

    @classmethod
    def write(cls, texts: Iterable[str], folder: Path, mode: str, k1: float, b: float,
              batch: int = 20_000) -> LexicalIndex:
        """Index Simplified ``texts`` (one per chunk, in order) into ``folder`` and load it.

        Streams: each batch of texts is tokenized, counted and spilled to disk
        as compact arrays, and the score matrix is written straight into
        memory-mapped files, so memory grows with the vocabulary, not with the
        corpus (a million chunks build on a machine that cannot hold their
        tokens). The files are bm25s's own format (lucene BM25, CSC score
        matrix, JSON vocabulary), loaded back with :meth:`load`.
        """
        folder.mkdir(parents=True, exist_ok=True)
        spill = folder / "build.tmp"
        spill.mkdir(exist_ok=True)
        vocab: dict[str, int] = {}
        df = np.zeros(1024, dtype=np.int64)
        lengths: list[int] = []
        parts = 0
        texts = iter(texts)
        while chunk := list(itertools.islice(texts, batch)):
            ids = [[vocab.setdefault(t, len(vocab)) for t in tokenize(x, mode)] for x in chunk]
            lengths.extend(map(len, ids))
            doc, voc, tf = _postings(ids, len(lengths) - len(ids), len(vocab))
            if len(vocab) > len(df):
                df = np.concatenate([df, np.zeros(max(len(vocab), 2 * len(df)) - len(df), np.int64)])
            df[:len(vocab)] += np.bincount(voc, minlength=len(vocab))
            np.save(spill / f"{parts}.doc.npy", doc)
            np.save(spill / f"{parts}.voc.npy", voc)
            np.save(spill / f"{parts}.tf.npy", tf)
            parts += 1
        n, nv = len(lengths), len(vocab)
        df = df[:nv]
        dl = np.asarray(lengths, dtype=np.float64)
        avgdl = float(dl.mean()) if n else 1.0
        norm = k1 * ((1 - b) + b * dl / avgdl)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        indptr = np.zeros(nv + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        nnz = int(indptr[-1])
        data = np.lib.format.open_memmap(folder / "data.csc.index.npy", "w+", np.float32, (nnz,))
        indices = np.lib.format.open_memmap(folder / "indices.csc.index.npy", "w+", np.int32,
                                            (nnz,))
        cursor = indptr[:-1].copy()
        for part in range(parts):
            doc, voc, tf = (np.load(spill / f"{part}.{x}.npy") for x in ("doc", "voc", "tf"))
            score = idf[voc] * tf / (norm[doc] + tf)
            order = np.argsort(voc, kind="stable")  # keeps each column's documents ascending
            v = voc[order]
            first = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
            run = np.repeat(first, np.diff(np.r_[first, len(v)]))
            pos = cursor[v] + (np.arange(len(v)) - run)
            data[pos] = score[order]
            indices[pos] = doc[order]
            cursor += np.bincount(voc, minlength=nv)
        data.flush()
        indices.flush()
        del data, indices
        np.save(folder / "indptr.csc.index.npy", indptr)
        shutil.rmtree(spill)
        vocab[""] = nv  # bm25s's empty token, so its loader sees the vocabulary it writes
        (folder / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
        params = {"k1": k1, "b": b, "delta": 0.5, "method": "lucene", "idf_method": "lucene",
                  "dtype": "float32", "int_dtype": "int32", "num_docs": n,
                  "version": "newsqa-stream-1", "backend": "numpy"}
        (folder / "params.index.json").write_text(json.dumps(params, indent=1), "utf-8")
        (folder / "tokenizer.json").write_text(json.dumps({"mode": mode}), "utf-8")
        return cls.load(folder)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> LexicalIndex:
        """Load an index written by :meth:`write` (or by bm25s, lucene variant).

        Raises:
            IndexCorruptError: A file is missing, unreadable or inconsistent.
        """
        try:
            mode = json.loads((folder / "tokenizer.json").read_text("utf-8"))["mode"]
            params = json.loads((folder / "params.index.json").read_text("utf-8"))
            vocab = json.loads((folder / "vocab.index.json").read_text("utf-8"))
            # Plain views of the mapping: slicing an np.memmap costs more than the add.
            data, indices, indptr = (np.asarray(np.load(
                folder / f"{key}.csc.index.npy", mmap_mode="r" if mmap else None,
                allow_pickle=False)) for key in ("data", "indices", "indptr"))
            num_docs = int(params["num_docs"])
            method = params.get("method")
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise IndexCorruptError(f"the BM25 files in {folder} are unreadable "
                                    f"({type(exc).__name__}: {exc})") from exc
        from .settings import TOKENIZERS

        if mode not in TOKENIZERS:
            raise IndexCorruptError(f"the BM25 files in {folder} name an unknown tokenizer {mode!r}")
        # Token ids run 0..n-1 with one column each, but for bm25s's empty token, which
        # comes last and has none.
        if method != "lucene" or not isinstance(vocab, dict) or \
                len(indptr) < len(vocab) or len(data) != len(indices) or \
                (len(indptr) and int(indptr[-1]) != len(data)):
            raise IndexCorruptError(f"the BM25 files in {folder} are inconsistent")
        return cls(vocab, data, indices, indptr, num_docs, mode)

    @property
    def size(self) -> int:
        """Number of indexed documents."""
        return self._num_docs

    @property
    def has_bigrams(self) -> bool:
        """Whether character bigrams are indexed (every mode but plain "jieba")."""
        return self.mode != "jieba"

    def knows(self, token: str) -> bool:
        """Whether ``token`` occurs anywhere in the corpus."""
        return token in self._vocab

    def query_tokens(self, question_norm: str) -> list[str]:
        """The question's tokens that occur in the corpus vocabulary."""
        return [t for t in tokenize_query(question_norm, self.mode) if t in self._vocab]

    def scores(self, question_norm: str) -> np.ndarray:
        """BM25 score of every chunk for a Simplified question (zeros if no token matches)."""
        out = np.zeros(self._num_docs, dtype=np.float32)
        for t in self.query_tokens(question_norm):  # a repeated token counts again, as in bm25s
            tid = self._vocab[t]
            start, end = int(self._indptr[tid]), int(self._indptr[tid + 1])
            # As bm25s adds them (same float32 sums). np.add.at: 3x faster here than the
            # fancy-index add a column's unique chunk ids would allow (0.57 vs 1.63 ms, 100k).
            np.add.at(out, self._indices[start:end], self._data[start:end])
        return out

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """Lucene idf of each token, used to weigh evidence in answers.

        Tokens the corpus never uses get the highest possible idf: they are
        what an off-topic question is about.
        """
        n = self.size
        unseen = float(np.log(1 + (n + 0.5) / 0.5))
        out = {}
        for t in tokens:
            tid = self._vocab.get(t)
            if tid is None:
                out[t] = unseen
                continue
            df = int(self._indptr[tid + 1] - self._indptr[tid])
            out[t] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out


def _postings(ids: list[list[int]], first_doc: int, vocab_size: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(document, token id, term frequency) of each distinct token of each document."""
    lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lens.sum()))
    local = np.repeat(np.arange(len(ids), dtype=np.int64), lens)
    keys, tf = np.unique(local * vocab_size + flat, return_counts=True)
    return ((keys // vocab_size + first_doc).astype(np.int32),
            (keys % vocab_size).astype(np.int32), tf.astype(np.float32))
