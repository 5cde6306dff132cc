"""The article and chunk files of an index: written in one pass, read lazily.

Articles stay one JSON object per line (``articles-G.jsonl``); ``articles-G.index.json``
holds their ids and the byte offset of each line, so an article is parsed when first
asked for. Chunks are columns (``chunks-G.npy``: article number, start, end, first and
last paragraph, heading number; memory-mapped) plus ``chunks-G.headings.json``; a
chunk's text is its article's ``text[start:end]``. Loading a 1M-chunk index so reads
two arrays instead of parsing a million JSON objects (15-26 s before).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from .chunking import Chunk
from .corpus import Article, article_from_dict, article_to_dict
from .errors import IndexCorruptError

CHUNK_COLUMNS = np.dtype([("article", "<i4"), ("start", "<i4"), ("end", "<i4"),
                          ("first", "<i4"), ("last", "<i4"), ("heading", "<i4")])
CACHED_ARTICLES = 4096  # parsed articles kept; a question touches at most a few


def index_path(articles: Path) -> Path:
    """``articles-G.index.json`` beside ``articles-G.jsonl``."""
    return articles.with_name(articles.name.removesuffix(".jsonl") + ".index.json")


def headings_path(chunks: Path) -> Path:
    """``chunks-G.headings.json`` beside ``chunks-G.npy``."""
    return chunks.with_name(chunks.name.removesuffix(".npy") + ".headings.json")


def sidecars(articles: str, chunks: str) -> tuple[str, str]:
    """File names of the article index and the chunk headings for the two main files."""
    return index_path(Path(articles)).name, headings_path(Path(chunks)).name


def write_articles(path: Path, articles: Iterable[Article]) -> None:
    """Write the articles file and its index of ids and line offsets."""
    ids, offsets = [], []
    with open(path, "wb") as fh:
        for a in articles:
            ids.append(a.id)
            offsets.append(fh.tell())
            fh.write(json.dumps(article_to_dict(a), ensure_ascii=False).encode("utf-8") + b"\n")
        offsets.append(fh.tell())
    index_path(path).write_text(json.dumps({"ids": ids, "offsets": offsets}, ensure_ascii=False),
                                "utf-8")


def write_chunks(path: Path, chunks: Sequence[Chunk], article_ids: Sequence[str]) -> None:
    """Write the chunk columns and their headings."""
    number = {a: i for i, a in enumerate(article_ids)}
    headings: dict[str, int] = {}
    table = np.zeros(len(chunks), dtype=CHUNK_COLUMNS)
    for i, c in enumerate(chunks):
        h = -1 if c.heading is None else headings.setdefault(c.heading, len(headings))
        table[i] = (number[c.article], c.start, c.end, c.first_paragraph, c.last_paragraph, h)
    with open(path, "wb") as fh:
        np.save(fh, table, allow_pickle=False)
    headings_path(path).write_text(json.dumps(list(headings), ensure_ascii=False), "utf-8")


class ArticleTable(Mapping[str, Article]):
    """Articles by id, parsed from the file on first use.

    The file stays open, so an index whose files a rebuild has since replaced keeps
    answering until it is let go.
    """

    def __init__(self, path: Path) -> None:
        try:
            meta = json.loads(index_path(path).read_text("utf-8"))
            self.ids: list[str] = list(meta["ids"])
            self._offsets = np.asarray(meta["offsets"], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"{index_path(path)} is missing or corrupt ({exc}); "
                                    f"rebuild with `newsqa index --rebuild`") from exc
        self.path = path
        self._number = {a: i for i, a in enumerate(self.ids)}
        self._fd: int | None = os.open(path, os.O_RDONLY)
        size = os.fstat(self._fd).st_size
        if len(self._offsets) != len(self.ids) + 1 or len(self._number) != len(self.ids) or \
                np.any(np.diff(self._offsets) <= 0) or (len(self.ids) and self._offsets[-1] != size):
            os.close(self._fd)
            self._fd = None
            raise IndexCorruptError(f"{index_path(path)} does not match {path}; rebuild with "
                                    f"`newsqa index --rebuild`")
        self._cache: OrderedDict[int, Article] = OrderedDict()
        self._lock = threading.Lock()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def number(self, article_id: str) -> int:
        """Position of ``article_id`` in the file (KeyError if absent)."""
        return self._number[article_id]

    def at(self, i: int) -> Article:
        """The ``i``-th article of the file."""
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        raw = os.pread(self._fd, end - start, start)
        try:
            article = article_from_dict(json.loads(raw))
            if article.id != self.ids[i]:
                raise ValueError(f"line {i + 1} holds {article.id!r}, not {self.ids[i]!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"the article file {self.path} is corrupt ({exc}); rebuild "
                                    f"with `newsqa index --rebuild`") from exc
        with self._lock:
            self._cache[i] = article
            if len(self._cache) > CACHED_ARTICLES:
                self._cache.popitem(last=False)
        return article

    def __getitem__(self, article_id: str) -> Article:
        return self.at(self._number[article_id])

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._number

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


class ChunkTable(Sequence[Chunk]):
    """Chunks made from their columns on access; text sliced from the article."""

    def __init__(self, path: Path, articles: ArticleTable) -> None:
        try:
            self._table = np.load(path, mmap_mode="r", allow_pickle=False)
            headings = json.loads(headings_path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"the chunk file {path} is corrupt ({exc}); rebuild with "
                                    f"`newsqa index --rebuild`") from exc
        if self._table.dtype != CHUNK_COLUMNS or self._table.ndim != 1 or \
                not isinstance(headings, list) or (len(self._table) and (
                int(self._table["article"].max()) >= len(articles) or
                int(self._table["heading"].max()) >= len(headings))):
            raise IndexCorruptError(f"the chunk file {path} does not match its articles; "
                                    f"rebuild with `newsqa index --rebuild`")
        self._headings: list[str] = headings
        self._articles = articles

    def article_numbers(self) -> np.ndarray:
        """Each chunk's article, as positions in the article file (no article parsed)."""
        return np.asarray(self._table["article"])

    def __len__(self) -> int:
        return len(self._table)

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...

    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"chunk {i} out of range")
        a, start, end, first, last, h = self._table[i].tolist()
        article = self._articles.at(a)
        return Chunk(i, article.id, start, end, first, last,
                     self._headings[h] if h >= 0 else None, article.text[start:end])

    def __iter__(self) -> Iterator[Chunk]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and \
            all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]
