"""Turning answers into terminal text, JSON and Telegram HTML.

Handlers and commands only format what :mod:`retrieval` returns.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

from retrieval import Answer, Article, Citation, Hit, Index
from retrieval.conversation import Reply
from retrieval.text import Script, to_script

BOLD, RESET = "\033[1m", "\033[0m"
_LABELS = {"sources": "来源", "nearest": "最相关的来源", "para": "第{n}段"}
_LABELS.update({"understood": "按“{q}”理解", "choose": "你问的是哪一个？回复编号即可：",
                "choose_tg": "你问的是哪一个？点下面的按钮："})
_ENGLISH = {"sources": "Sources", "nearest": "Nearest sources", "para": "paragraph {n}",
            "understood": "Understood as “{q}”", "choose": "Which one do you mean? Reply with its number:",
            "choose_tg": "Which one do you mean? Tap one:"}


def label(key: str, script: Script, **values: str) -> str:
    """A UI label in the asker's script (English for a question in English)."""
    text = _ENGLISH[key] if script == "en" else to_script(_LABELS[key], script)
    return text.format(**values) if values else text


def reply_terminal(reply: Reply, index: Index, color: bool = False) -> str:
    """One conversation turn for a terminal: how it was understood, then the answer or the
    numbered choices."""
    lines = []
    if reply.rewritten and reply.kind != "choice":
        lines.append(label("understood", reply.script, q=reply.interpreted))
    if reply.choices:
        lines.append(label("choose", reply.script))
        lines += [f"  {i}. {q}" for i, q in enumerate(reply.choices, 1)]
    elif reply.answer is not None:
        lines.append(terminal(reply.answer, index, color))
    else:
        lines.append(reply.note)
    return "\n".join(lines)


def reply_json(reply: Reply, index: Index) -> dict[str, Any]:
    """The ``ask --follow-ups --json`` object: the answer's, plus how it was understood."""
    if reply.answer is not None:
        out = to_json(reply.answer, index)
        out["question"] = reply.question
    else:
        out = {"question": reply.question, "answered": False, "answer": reply.note,
               "answer_span": None, "script": reply.script, "citations": [], "passages": []}
    out["interpreted"] = reply.interpreted
    out["choices"] = list(reply.choices)
    return out


def reply_html(reply: Reply, index: Index) -> str:
    """One conversation turn in Telegram HTML (choices come as buttons)."""
    head = ""
    if reply.rewritten and reply.kind != "choice":
        head = f"<i>{html.escape(label('understood', reply.script, q=reply.interpreted))}</i>\n\n"
    if reply.choices:
        return head + html.escape(label("choose_tg", reply.script))
    if reply.answer is not None:
        return head + telegram_html(reply.answer, index)
    return head + html.escape(reply.note)


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
        lines = [answer.text]
        if answer.hits:  # nothing retrieved: no empty heading
            lines += ["", label("nearest", answer.script) + ":"]
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
        "answer_span": answer.answer_span,
        "script": answer.script,
        "citations": [{"n": c.n, "article": c.article, "title": c.title, "source": c.source,
                       "date": c.date, "paragraph": c.paragraph, "quote": c.quote,
                       "span": list(c.span) if c.span else None} for c in answer.citations],
        "passages": [passage_json(h) for h in answer.hits],
        "interpreted": answer.question,
        "choices": [],
    }


def passage_json(h: Hit) -> dict[str, Any]:
    """One retrieved passage for JSON output."""
    return {"rank": h.rank, "article": h.chunk.article, "chunk": h.chunk.id,
            "score": round(h.score, 6), "text": h.chunk.text}


def telegram_html(answer: Answer, index: Index) -> str:
    """The answer in Telegram HTML, every user and article string escaped."""
    esc = html.escape
    if not answer.answered:
        lines = [esc(answer.text)]
        if answer.hits:
            lines += ["", f"<i>{esc(label('nearest', answer.script))}:</i>"]
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


# --- Telegram message limits -------------------------------------------------

TELEGRAM_LIMIT = 4096  # characters after entity parsing, counted in UTF-16 code units
_BREAKS = ("\n\n", "\n", "。", "！", "？", "；", "!", "?", ";", "，", ",", " ")
_CLOSERS = "」』”’）)】》"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


class _Runs(HTMLParser):
    """Telegram HTML as runs of plain text, each with the tags open around it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.runs: list[tuple[str, tuple[str, ...]]] = []
        self._open: list[tuple[str, str]] = []  # (name, raw start tag)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open.append((tag, self.get_starttag_text() or f"<{tag}>"))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i]
                break

    def handle_data(self, data: str) -> None:
        self.runs.append((data, tuple(raw for _, raw in self._open)))


def plain_text(html_text: str) -> str:
    """The visible text of Telegram HTML (tags dropped, entities decoded)."""
    parser = _Runs()
    parser.feed(html_text)
    parser.close()
    return "".join(t for t, _ in parser.runs)


def split_html(html_text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into messages of at most ``limit`` visible characters.

    Cuts prefer a blank line, then a line end, then a sentence end, and never
    fall inside a tag or entity: each piece closes the tags open at its end
    and reopens them at the start of the next, so every piece parses alone.
    """
    if utf16_len(plain_text(html_text)) <= limit:
        return [html_text]
    parser = _Runs()
    parser.feed(html_text)
    parser.close()
    # One style per visible character keeps the cut arithmetic simple.
    chars: list[tuple[str, tuple[str, ...]]] = [(ch, tags) for t, tags in parser.runs for ch in t]
    text = "".join(ch for ch, _ in chars)
    pieces, pos = [], 0
    while pos < len(text):
        end = _cut(text, pos, limit)
        pieces.append(_render(chars[pos:end]).strip("\n"))
        pos = end
        while pos < len(text) and text[pos] == "\n":
            pos += 1
    return [p for p in pieces if p]


def _cut(text: str, pos: int, limit: int) -> int:
    end, used = pos, 0
    while end < len(text):
        width = 2 if ord(text[end]) > 0xFFFF else 1  # astral characters are surrogate pairs
        if used + width > limit:
            break
        used += width
        end += 1
    if end >= len(text):
        return len(text)
    window = text[pos:end]
    for mark in _BREAKS:
        i = window.rfind(mark)
        if i > len(window) // 3:  # a cut too early would make many tiny messages
            j = pos + i + len(mark)
            while j < end and text[j] in _CLOSERS:
                j += 1
            return j
    return end


def _render(chars: list[tuple[str, tuple[str, ...]]]) -> str:
    out: list[str] = []
    i = 0
    while i < len(chars):
        tags = chars[i][1]
        j = i
        while j < len(chars) and chars[j][1] == tags:
            j += 1
        body = html.escape("".join(ch for ch, _ in chars[i:j]), quote=False)
        closes = "".join(f"</{_tag_name(t)}>" for t in reversed(tags))
        out.append("".join(tags) + body + closes)
        i = j
    return "".join(out)


def _tag_name(raw: str) -> str:
    return raw[1:].split(">", 1)[0].split(None, 1)[0].lower()


def passage_html(article: Article, paragraph: int, quote: tuple[int, int] | None = None) -> str:
    """The full cited paragraph in its original text, the quote in bold."""
    para = next((p for p in article.paragraphs if p.number == paragraph), None)
    head = f"<b>{html.escape(source_line(article, paragraph, article.script))}</b>"
    if para is None:
        return head
    text = article.paragraph_text(para)
    if quote and para.start <= quote[0] < quote[1] <= para.end:
        a, b = quote[0] - para.start, quote[1] - para.start
        body = (f"{html.escape(text[:a])}<b>{html.escape(text[a:b])}</b>"
                f"{html.escape(text[b:])}")
    else:
        body = html.escape(text)
    return f"{head}\n\n{body}"


def sources_html(index: Index, script: Script) -> str:
    """The articles, numbered: headline — outlet, date."""
    lines = [f"<b>{html.escape(to_script('文章', script))}</b> ({len(index.articles)})"]
    lines += [f"{i}. " + html.escape(source_line(a, None, script))
              for i, a in enumerate(index.articles.values(), 1)]
    return "\n".join(lines)
