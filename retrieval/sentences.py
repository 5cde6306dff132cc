"""Sentence vectors: how close each sentence of the corpus is in meaning to a question.

The composer picks the sentences it quotes and decides whether to decline; with
words alone a paraphrase or an English question looks off-topic. Embedding a
question's twenty-odd candidate sentences when it is asked would take most of a
second on a small CPU, so every sentence of every chunk is embedded once at index
time (with the passage prompt), stored as float16 rows keyed by article and start
offset, and a question costs one dot product per candidate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .chunking import Chunk
from .corpus import Article
from .text import split_sentences, to_simplified

MIN_CHARS = 2  # shorter "sentences" (a lone quote mark) are not worth a vector


def sentence_spans(articles: Iterable[Article], chunks: Iterable[Chunk]) -> list[tuple[str, int, int]]:
    """Every sentence the composer can quote: (article id, start, end), each once, in order."""
    by_id = {a.id: a for a in articles}
    seen: set[tuple[str, int]] = set()
    out: list[tuple[str, int, int]] = []
    for chunk in chunks:
        text = by_id[chunk.article].text
        for a, b in split_sentences(text, chunk.start, chunk.end):
            if (chunk.article, a) not in seen and len(text[a:b].strip()) >= MIN_CHARS:
                seen.add((chunk.article, a))
                out.append((chunk.article, a, b))
    return out


def sentence_text(article: Article, start: int, end: int) -> str:
    """What is embedded for a sentence: its Simplified text."""
    return to_simplified(article.text[start:end].strip())


class SentenceVectors:
    """Sentence vectors of an index, memory-mapped.

    Files: float16 rows (``.npy``) and, in JSON, the article ids and for each row its
    article number, start and end offset.
    """

    def __init__(self, vectors: Path, rows: Path) -> None:
        meta = json.loads(rows.read_text("utf-8"))
        self._vectors = np.load(vectors, mmap_mode="r", allow_pickle=False)
        articles, spans = meta["articles"], meta["rows"]
        if len(spans) != len(self._vectors) or self._vectors.ndim != 2:
            raise ValueError(f"{rows.name}: {len(spans)} sentences but {len(self._vectors)} vectors")
        self.spans = [(articles[a], s, e) for a, s, e in spans]
        self._rows = {(a, s): i for i, (a, s, _) in enumerate(self.spans)}

    def __len__(self) -> int:
        return len(self._rows)

    def vector(self, i: int) -> np.ndarray:
        """Row ``i`` as float32."""
        return np.asarray(self._vectors[i], dtype=np.float32)

    def similarity(self, query: np.ndarray, keys: list[tuple[str, int]]) -> list[float | None]:
        """Cosine of ``query`` (normalized) with each (article id, start) sentence, or None."""
        rows = [self._rows.get(k) for k in keys]
        known = [r for r in rows if r is not None]
        if not known:
            return [None] * len(keys)
        sims = iter((np.asarray(self._vectors[known], dtype=np.float32) @ query.reshape(-1)).tolist())
        return [next(sims) if r is not None else None for r in rows]

    @staticmethod
    def write(vectors: Path, rows: Path, spans: list[tuple[str, int, int]],
              matrix: np.ndarray) -> None:
        """Store ``matrix`` (one row per span)."""
        ids = sorted({a for a, _, _ in spans})
        number = {a: i for i, a in enumerate(ids)}
        np.save(vectors, matrix.astype(np.float16))
        rows.write_text(json.dumps({"articles": ids,
                                    "rows": [[number[a], s, e] for a, s, e in spans]}), "utf-8")


def embed_sentences(spans: list[tuple[str, int, int]], articles: dict[str, Article],
                    embed: Callable[[list[str]], np.ndarray], dim: int,
                    known: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Vectors of ``spans``, embedding only texts ``known`` (text -> vector) lacks."""
    texts = [sentence_text(articles[a], s, e) for a, s, e in spans]
    known = known or {}
    todo = sorted({t for t in texts if t not in known})
    fresh = dict(zip(todo, embed(todo), strict=True)) if todo else {}
    matrix = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        matrix[i] = known[t] if t in known else fresh[t]
    return matrix
