"""``newsqa chat``: an interactive session with line editing and history."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TextIO

from retrieval import Answer, QuestionError, Searcher
from retrieval.conversation import Conversation, converse
from retrieval.text import to_script

from . import render

HELP = """Ask a question in Chinese (Simplified or Traditional) or English. Follow-up questions
("她任职多少年了？", "税收呢？") are understood against the conversation; the reply says how.
Commands:
  N           pick choice N when the reply lists choices
  /more       more of the last answer (also 还有吗？)
  /new        start a new conversation
  /sources    the articles in the index
  /source N   the full paragraph behind citation [N] of the last answer
  /help       this text
  /quit       leave (Ctrl-D works too)"""


def _setup_readline() -> Path | None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        return None
    history = Path(os.path.expanduser("~/.newsqa_history"))
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    readline.set_history_length(1000)
    return history


def run_chat(searcher: Searcher, stdin: TextIO, out: TextIO) -> int:
    """Read questions and commands until /quit or end of input."""
    interactive = stdin.isatty() and out.isatty()
    history = _setup_readline() if interactive else None
    index = searcher.index
    last: Answer | None = None
    state = Conversation()
    out.write(f"newsqa chat — {len(index.articles)} articles. /help for commands.\n")
    while True:
        try:
            line = input("问> ") if interactive else stdin.readline()
        except EOFError:
            if interactive:
                out.write("\n")
            break
        except KeyboardInterrupt:  # as in a shell: the line is dropped, the session goes on
            out.write("^C\n")
            continue
        if not interactive and line == "":
            break
        line = line.strip()
        if history is not None and line:
            _save_history(history)  # every line at once: history survives any way of leaving
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            break
        if line == "/help":
            out.write(HELP + "\n")
        elif line == "/sources":
            for i, a in enumerate(index.articles.values(), 1):
                out.write(f"{i}. {render.source_line(a, None, a.script)}\n")
        elif line.startswith("/source"):
            out.write(_source(line, last, searcher) + "\n")
        elif line == "/new":
            state, last = Conversation(), None
            out.write("new conversation\n")
        elif line.startswith("/") and line != "/more":
            out.write(f"unknown command {line.split()[0]}; /help lists them\n")
        else:
            try:
                reply, state = converse(searcher, state, "还有吗" if line == "/more" else line)
            except QuestionError as exc:
                out.write(f"{exc}\n")
                continue
            except KeyboardInterrupt:  # a question taking too long: dropped, the session goes on
                out.write("^C\n")
                continue
            last = reply.answer or last
            out.write(render.reply_terminal(reply, index, color=interactive) + "\n")
        out.flush()
    return 0


def _save_history(history: Path) -> None:
    import readline

    with contextlib.suppress(OSError):
        readline.write_history_file(history)


def _source(line: str, last: Answer | None, searcher: Searcher) -> str:
    parts = line.split()
    if last is None or not last.citations:
        return "no citations yet: ask a question first"
    if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(last.citations):
        return f"usage: /source N, with N from 1 to {len(last.citations)}"
    c = last.citations[int(parts[1]) - 1]
    article = searcher.index.articles[c.article]
    para = article.paragraph_at(c.start)
    text = article.paragraph_text(para) if para else c.quote
    head = render.source_line(article, c.paragraph, last.script)
    original = text if article.script == last.script else f"{to_script(text, last.script)}\n\n({text})"
    return f"[{c.n}] {head}\n{original}"
