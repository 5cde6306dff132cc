"""Places and organisations in questions and sentences: which one a question names, and whether
a sentence is about it.

Chinese has no capital letters to mark a name, so a place is trusted when an administrative unit
stands right before it (冯官屯镇|高岭村) or its article repeats it, and a question that names a place
the corpus never mentions is declined by name (幸福里社区) instead of answered about another one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .lexical import QUESTION_WORDS

if TYPE_CHECKING:
    from .index import Index

_FUNCTION_CHARS = frozenset("在该本全各每此这那为到让把向从和与及的是了由于将对")


# A place or organisation the question names ("幸福里社区", "北京市"): if the two
# characters before the suffix never occur in the corpus, the articles cannot be
# about it, however well the rest of the question matches; without this rule the
# composer answers about a different 社区 (measured: see README, "Answer quality").
_PLACE_SUFFIX = re.compile(r"社区|街道|小区|合作社|公司|集团|村|镇|乡|县|市|区|省")


_NOT_NAME_CHARS = _FUNCTION_CHARS | frozenset("个些们其么什")


_QWORD = re.compile("|".join(map(re.escape, sorted(QUESTION_WORDS, key=len, reverse=True))))



def unknown_places(norm: str, index: Index) -> list[str]:
    """Places and organisations named in a Simplified question that the corpus never mentions.

    A name is the two characters before a suffix such as 社区, 村 or 市 (extended
    left to four for display); it counts as unknown when that character pair is
    not in the BM25 vocabulary, nor (for one-character suffixes) the pair its last
    character forms with the suffix: generic words (城市, 返乡, 这个村) pass because
    their characters do occur. Needs a bigram tokenizer; with "jieba" alone
    nothing is flagged.
    """
    if not index.lexical.has_bigrams:
        return []
    text = _QWORD.sub(" ", norm)
    out: list[str] = []
    for m in _PLACE_SUFFIX.finditer(text):
        a = m.start()
        key, suffix = text[max(a - 2, 0):a], m.group(0)
        if len(key) < 2 or not all(_is_han(ch) for ch in key) or _NOT_NAME_CHARS & set(key):
            continue
        if index.lexical.knows(key) or (len(suffix) == 1 and index.lexical.knows(key[1] + suffix)):
            continue  # a known pair, or a word ending in the suffix (返乡, 城市): not a name
        s = a - 2
        while s > 0 and a - s < 4 and _is_han(text[s - 1]) and text[s - 1] not in _NOT_NAME_CHARS:
            s -= 1
        out.append(text[s:m.end()])
    return out



def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


_NAMED = re.compile(r"([\u4e00-\u9fff]{2,4}?)(社区|街道|小区|合作社|集团|公司|村|镇|乡|县|区|市)")


_NAME_STOP = frozenset("的是在该这那哪个些每各其本全有了和与及为")


_KINDS = "社区|街道|小区|合作社|公司|企业|集团|村|镇|乡|县|市"


_ADMIN_BEFORE = re.compile(r"(?:省|市|区|县|镇|乡|街道)$")


_GENERIC_PLACE = re.compile(r"(?:乡|示范|自然|行政|薄弱|网格|无星|美丽|强|弱|新|全|各|本|该|此|农|驻)$")



def _bad_name(name: str) -> bool:
    """Not a name: function characters, an administrative unit inside, or a generic word
    before the kind (乡村, 示范村, 自然村)."""
    return (any(ch in "的是在该这那哪个各每全本我其有了和与及为" for ch in name)
            or re.search(r"[省市区县镇乡]|街道", name) is not None
            or _GENERIC_PLACE.search(name) is not None)



def place_names(text: str, whole: str | None = None) -> list[tuple[str, str, int]]:
    """Places and organisations named in Simplified ``text``: (name with kind, kind, start).

    Chinese has no capital letters, so a name is trusted when an administrative unit
    stands right before it (冯官屯镇|高岭村, 东城街道|单光屯社区) or when ``whole`` (the
    article) repeats it; "带领村" or "绿化村" (村庄) are not names.
    """
    out: list[tuple[str, str, int]] = []
    for m in re.finditer(rf"({_KINDS})", text):
        kind, end = m.group(1), m.start()
        if kind == "村" and text[m.end():m.end() + 1] in "庄民委干级集工里":
            continue
        if kind in ("公司", "集团"):  # 恒银金融科技股份有限公司: the name before the legal form
            end -= len(re.search(r"(?:集团)?(?:股份)?(?:有限)?$", text[:end]).group(0))
        for size in ((10, 9, 8, 7, 6, 5, 4, 3, 2) if kind in ("公司", "集团") else (5, 4, 3, 2)):
            a = end - size
            name = text[max(a, 0):end]
            if a < 0 or not all("\u4e00" <= ch <= "\u9fff" for ch in name) or _bad_name(name):
                continue
            if _ADMIN_BEFORE.search(text[max(0, a - 2):a]) or (whole and whole.count(name + kind) >= 2):
                full = text[a:m.end()]
                if all(n != full for n, _, _ in out):
                    out.append((full, kind, a))
                break
    return out



def named_entities(norm: str) -> list[tuple[str, str]]:
    """Places and organisations a Simplified question names: (name, kind), e.g. ("港云里", "社区")."""
    text = _QWORD.sub(" ", norm)
    out = []
    for m in _NAMED.finditer(text):
        name = m.group(1)
        while name and name[0] in _NAME_STOP:
            name = name[1:]
        if len(name) >= 2 and not _NAME_STOP & set(name[-1:]):
            out.append((name, m.group(2)))
    return out



def _agreement(named: list[tuple[str, str]], whole: str, a: int, b: int) -> float:
    """Whether the sentence ``whole[a:b]`` (Simplified article text) is about the place the
    question names.

    It is when it names it, or when the last place of that kind named before it (within a
    few paragraphs) is that one, as with 该社区 or a bare 社区党委书记; it is about another
    when it, or that last place, is a different one: 光采社区's secretary is no answer to
    who leads 港云里社区.
    """
    if not named:
        return 0.0
    sent = whole[a:b]
    score = 0.0
    for name, kind in named:
        if name in sent:
            continue
        if any(name not in n for n, _, _ in place_names(sent, whole)):  # about another place
            score -= 0.4
            continue
        start = max(0, a - 600)
        last = [n for n, k, _ in place_names(whole[start:a], whole) if k == kind]
        if last and name in last[-1]:
            continue
        score -= 0.4 if last else 0.1
    return score
