"""Turning answers into terminal text, JSON and Telegram HTML.

Handlers and commands only format what :mod:`retrieval` returns.
"""

from __future__ import annotations

import html
from typing import Any

from retrieval import Answer, Article, Citation, Hit, Index
from retrieval.text import Script, to_script

BOLD, RESET = "\033[1m", "\033[0m"
_LABELS = {"sources": "来源", "nearest": "最相关的来源", "para": "第{n}段"}


def label(key: str, script: Script) -> str:
    """A UI label in the asker's script."""
    return to_script(_LABELS[key], script)


def source_line(article: Article | None, paragraph: int | None, script: Script,
                title: str = "", source: str | None = None, date: str | None = None) -> str:
    """``headline — outlet, date, ¶ n`` in the asker's script."""
    if article is not None:
        title, source, date = article.title, article.source, article.date
    parts = [to_script(title, script)]
    tail = ", ".join(x for x in (to_script(source, script) if source else None, date) if x)
    line = f"{parts[0]} — {tail}" if tail else parts[0]
    return f"{line}, ¶ {paragraph}" if paragraph else line


def citation_text(c: Citation, bold: tuple[str, str] = ("", "")) -> str:
    """The displayed quote with its answer span wrapped in ``bold``."""
    if not c.display_span:
        return c.display
    a, b = c.display_span
    return f"{c.display[:a]}{bold[0]}{c.display[a:b]}{bold[1]}{c.display[b:]}"


def terminal(answer: Answer, index: Index, color: bool = False) -> str:
    """The answer and its numbered sources, for a terminal."""
    bold = (BOLD, RESET) if color else ("", "")
    if not answer.answered:
        lines = [answer.text, "", label("nearest", answer.script) + ":"]
        lines += [f"  {h.rank}. " + source_line(index.articles[h.chunk.article],
                                                  h.chunk.first_paragraph, answer.script)
                  for h in answer.hits[:3]]
        return "\n".join(lines)
    body = "".join(f"{citation_text(c, bold)}[{c.n}]" for c in answer.citations)
    lines = [body, "", label("sources", answer.script) + ":"]
    lines += [f"  [{c.n}] " + source_line(None, c.paragraph, answer.script, c.title, c.source,
                                          c.date) for c in answer.citations]
    return "\n".join(lines)


def to_json(answer: Answer, index: Index) -> dict[str, Any]:
    """The ``ask --json`` object (schema in the README)."""
    return {
        "question": answer.question,
        "answered": answer.answered,
        "answer": answer.text,
        "script": answer.script,
        "citations": [{"n": c.n, "article": c.article, "title": c.title, "source": c.source,
                       "date": c.date, "paragraph": c.paragraph, "quote": c.quote,
                       "span": list(c.span) if c.span else None} for c in answer.citations],
        "passages": [passage_json(h) for h in answer.hits],
    }


def passage_json(h: Hit) -> dict[str, Any]:
    """One retrieved passage for JSON output."""
    return {"rank": h.rank, "article": h.chunk.article, "chunk": h.chunk.id,
            "score": round(h.score, 6), "text": h.chunk.text}


def telegram_html(answer: Answer, index: Index) -> str:
    """The answer in Telegram HTML, every user and article string escaped."""
    esc = html.escape
    if not answer.answered:
        lines = [esc(answer.text), "", f"<i>{esc(label('nearest', answer.script))}:</i>"]
        lines += [f"{h.rank}. " + esc(source_line(index.articles[h.chunk.article],
                                                  h.chunk.first_paragraph, answer.script))
                  for h in answer.hits[:3]]
        return "\n".join(lines)
    parts = []
    for c in answer.citations:
        if c.display_span:
            a, b = c.display_span
            quote = (f"{esc(c.display[:a])}<b>{esc(c.display[a:b])}</b>"
                     f"{esc(c.display[b:])}")
        else:
            quote = esc(c.display)
        parts.append(f"{quote}[{c.n}]")
    lines = ["".join(parts), "", f"<i>{esc(label('sources', answer.script))}:</i>"]
    lines += [f"[{c.n}] " + esc(source_line(None, c.paragraph, answer.script, c.title, c.source,
                                            c.date)) for c in answer.citations]
    return "\n".join(lines)
