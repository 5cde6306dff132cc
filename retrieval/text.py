"""Chinese script handling and sentence splitting.

Everything that is matched or embedded goes through :func:`to_simplified`
first; the original text is kept for quoting. OpenCC's ``t2s``/``s2t`` are
character-for-character for the text we handle, but offsets are never
assumed to survive conversion: quotes are always cut from the original.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

# "en": a question with Latin letters and no Chinese; answered with the articles' own text
# (quotes stay as written) and English labels.
Script = Literal["hans", "hant", "en"]

# Sentence ends: the brief's 。！？；!? plus the small-form semicolon ﹔ and the
# ASCII semicolon, both of which real pages (人民網) use in place of ；.
_TERMINALS = frozenset("。！？；!?;﹔")
# Closing quotes and brackets stay with the sentence they close.
_CLOSERS = frozenset("」』”’）)】》〉\"'")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=2)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Convert Traditional characters to Simplified (OpenCC ``t2s``)."""
    return _convert("t2s", text)


def to_traditional(text: str) -> str:
    """Convert Simplified characters to Traditional (OpenCC ``s2tw``).

    ``s2tw`` gives the 為/裡 forms readers see in Taiwan and on 人民網 pages.
    """
    return _convert("s2tw", text)


def _convert(config: str, text: str) -> str:
    if not text:
        return text
    try:
        return _converter(config).convert(text)
    except UnicodeEncodeError:  # lone surrogates (undecodable input bytes): keep the length
        return _converter(config).convert(re.sub("[\ud800-\udfff]", "\ufffd", text))


def to_script(text: str, script: Script) -> str:
    """Return ``text`` in ``script`` ("hans" or "hant"; "en" leaves it as written)."""
    if script == "en":
        return text
    return to_traditional(text) if script == "hant" else to_simplified(text)


def reply_script(question: str) -> Script:
    """The script to answer ``question`` in: its own, or "en" for a question in English (or
    another Latin-script language) with no Chinese characters."""
    if not has_cjk(question) and re.search(r"[A-Za-z]{2}", question):
        return "en"
    return detect_script(question)


# Characters s2t rewrites that are also standard Traditional characters in other
# words (公里, 干戈, 皇后, 台灣, 徵/征服, 人云亦云, 茶几, 姓范, 其余, 北斗, 小丑, 白朴):
# they say nothing about the script ("幸福里社區" is Traditional).
_BOTH_SCRIPTS = frozenset("里干后台征云几范余斗丑朴")


@lru_cache(maxsize=65536)
def _char_kind(ch: str) -> int:
    """1 if ``ch`` is Traditional-only, -1 if Simplified-only, else 0."""
    if to_simplified(ch) != ch:
        return 1
    if to_traditional(ch) != ch and ch not in _BOTH_SCRIPTS:
        return -1
    return 0


def detect_script(text: str, sample: int = 4000) -> Script:
    """Guess whether ``text`` is written in Simplified or Traditional characters.

    Counts characters that only exist in one script; ties (including text
    with no Chinese at all) count as Simplified.

    Args:
        text: Any text.
        sample: Only the first ``sample`` characters are looked at.

    Returns:
        "hant" or "hans".
    """
    score = sum(_char_kind(ch) for ch in text[:sample] if _CJK.match(ch))
    return "hant" if score > 0 else "hans"


def has_cjk(text: str) -> bool:
    """True when ``text`` contains at least one Chinese character."""
    return _CJK.search(text) is not None


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into sentences.

    A sentence ends after a run of 。！？；!?﹔; closing quotes and brackets
    right after it (」』”’）) belong to that sentence. Line breaks also end a
    sentence. Leading and trailing whitespace is left out of every span.

    Returns:
        ``(start, end)`` offsets into ``text``, in order, never empty.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    i = start
    sent_start = start
    while i < end:
        ch = text[i]
        if ch in _TERMINALS or ch == "\n":
            j = i + 1
            if ch != "\n":
                while j < end and text[j] in _TERMINALS:
                    j += 1
                while j < end and text[j] in _CLOSERS:
                    j += 1
            _add_span(text, sent_start, j, spans)
            sent_start = i = j
            continue
        i += 1
    _add_span(text, sent_start, end, spans)
    return spans


def _add_span(text: str, a: int, b: int, spans: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        spans.append((a, b))
