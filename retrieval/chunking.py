"""Chunks: runs of whole sentences that follow paragraphs, with exact offsets."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .corpus import Article
from .text import split_sentences, to_simplified

_PUNCT_SPACE = re.compile(r"[\s\W_]+", re.U)


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: whole sentences of one or more paragraphs.

    Attributes:
        id: Position in the index (0-based).
        article: Article id.
        start: Offset of the first character in the article text.
        end: Offset after the last character.
        first_paragraph: Number of the first paragraph it covers.
        last_paragraph: Number of the last paragraph it covers.
        heading: Section heading the chunk sits under.
        text: ``article.text[start:end]``, in the original script.
    """

    id: int
    article: str
    start: int
    end: int
    first_paragraph: int
    last_paragraph: int
    heading: str | None
    text: str


def paragraph_key(text: str) -> str:
    """Script- and punctuation-insensitive key, so a repeated paragraph is indexed once."""
    return hashlib.sha1(_PUNCT_SPACE.sub("", to_simplified(text)).encode("utf-8")).hexdigest()


def chunk_articles(articles: Iterable[Article], chunk_size: int, overlap: int) -> list[Chunk]:
    """Chunk every article, numbering chunks in order and skipping repeated paragraphs."""
    seen: set[str] = set()
    chunks: list[Chunk] = []
    for article in articles:
        for c in chunk_article(article, chunk_size, overlap, seen):
            chunks.append(Chunk(len(chunks), c.article, c.start, c.end, c.first_paragraph,
                                c.last_paragraph, c.heading, c.text))
    return chunks


def chunk_article(article: Article, chunk_size: int, overlap: int,
                  seen: set[str] | None = None) -> list[Chunk]:
    """Split one article into chunks of about ``chunk_size`` characters.

    Sentences are never cut. Short paragraphs of the same section are merged;
    a long paragraph is split into sentence windows that repeat ``overlap``
    sentences. A chunk never spans two sections. Paragraphs whose
    :func:`paragraph_key` is in ``seen`` are skipped (and new keys added).
    """
    seen = set() if seen is None else seen
    # Units: (paragraph number, heading, sentence start, sentence end).
    units: list[tuple[int, str | None, int, int]] = []
    for p in article.paragraphs:
        key = paragraph_key(article.paragraph_text(p))
        if key in seen:
            continue
        seen.add(key)
        units.extend((p.number, p.heading, a, b)
                     for a, b in split_sentences(article.text, p.start, p.end))

    chunks: list[Chunk] = []
    current: list[tuple[int, str | None, int, int]] = []

    def emit() -> None:
        first, last = current[0], current[-1]
        chunks.append(Chunk(len(chunks), article.id, first[2], last[3], first[0], last[0],
                            first[1], article.text[first[2]:last[3]]))

    for unit in units:
        if current:
            size = unit[3] - current[0][2]
            new_section = unit[1] != current[-1][1]
            new_para = unit[0] != current[-1][0]
            if new_section or size > chunk_size or (new_para and size > chunk_size // 2 and
                                                    current[-1][3] - current[0][2] >= chunk_size // 2):
                emit()
                keep = current[-overlap:] if overlap and not new_para and not new_section else []
                # Overlap only within a paragraph, and never the whole previous chunk.
                current = keep if len(keep) < len(current) else []
        current.append(unit)
    if current:
        emit()
    return chunks


def passage_text(chunk: Chunk, title: str) -> str:
    """What is matched and embedded for ``chunk``: headline, heading and text, in Simplified.

    The headline names the subject that later sentences only refer to
    (他, 该村, 公司), so it is part of every passage.
    """
    head = f"{title} {chunk.heading}" if chunk.heading else title
    return to_simplified(f"{head}\n{chunk.text}")


def passage_key(passage: str) -> str:
    """Content hash of a passage; equal keys mean equal embeddings."""
    return hashlib.sha1(passage.encode("utf-8")).hexdigest()
