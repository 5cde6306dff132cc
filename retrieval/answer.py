"""Extractive, cited answers: the best one to three sentences, quoted exactly.

Sentences are scored by how well they answer, not only by overlap: idf-
weighted question words in the sentence (and, at half weight, in the one
before it, which often names the subject), whether the sentence holds the
kind of thing asked for (a number for 多少, a date for 什么时候, a person for
谁, a place or organization for 哪个村), and how the question's words
around its question word line up in the sentence, which also marks the span
most likely to be the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from .corpus import Article
from .index import Index
from .lexical import QUESTION_WORDS, tokenize
from .search import Hit, Searcher
from .text import Script, reply_script, split_sentences, to_script, to_simplified

# Below this evidence the articles are taken not to answer (calibrated on the
# gold set, off-topic questions included: see README, "Answer quality").
DECLINE_BELOW = 0.25
MAX_SENTENCES = 3
# A runner-up sentence from the same article is added when it scores at least
# this share of the best one and the two stay short (measured on CMRC 2018).
RUNNER_UP = 0.6
MAX_ANSWER_CHARS = 160
# A candidate sentence's score: WEIGHTS · (overlap, typed, align, 1/rank, short, agreement)
# + SEM_WEIGHT * (cosine - SEM_BASE) + SEM_GAP_WEIGHT * (cosine - best cosine). Fitted on
# CMRC 2018 trial (python benchmarks/fit_composer.py), reported on dev: the first sentence
# holds the gold 0.774 -> 0.784 there. CMRC's questions seldom name a place, so the
# agreement weight cannot be fitted on it: it keeps its hand-set 1:1 ratio to the overlap.
WEIGHTS = (1.0, 0.25, 0.2, 0.04, -0.2, 1.0)
SEM_WEIGHT = 2.0
SEM_BASE = 0.8
SEM_GAP_WEIGHT = 0.0
# Evidence from meaning: overlap + weight * (best sentence cosine - base), when higher than
# the overlap alone (fitted on the seeds gold set's odd-numbered questions; README).
SEM_EVIDENCE_WEIGHT = 6.0
SEM_EVIDENCE_BASE = 0.86

_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("date", re.compile(r"什么时候|何时|哪一?年|哪一?天|哪个月|几月|几号|几日|什么时间|哪个时间|日期|年份"
                        r"|哪一?时期|哪个年代|几几年")),
    ("number", re.compile(r"多少|几|多大|多长|多久|多高|多重|多远|多深|多宽|百分之|比例|比率|占比|数量|人数"
                          r"|面积|金额|产值|营收|销售额|排名第")),
    ("person", re.compile(r"谁|哪位|哪一位|什么人|名字|姓名|哪个人")),
    ("place", re.compile(r"哪里|哪儿|什么地方|在哪|何地|哪[个家些所座一]?[^\s，,？?]{0,2}"
                         r"(村|镇|乡|县|区|市|省|国|城|地|社区|街道|公司|企业|单位|部门|机构|学校|组织|集团|大学|团队)")),
)
_UNITS = ("平方公里|平方米|公里|千米|公顷|公斤|千克|万元|亿元|元钱|小时|分钟|个月|多人|余人|余名|余户|余个|余家"
          "|[个名件项户人亩元次年倍家座所条位岁天月日秒场笔盏辆台张本套间栋层批处支类种份片株头只块吨斤米倍期届枚辆艘架]")
_ENTITY = {
    # A number with its multiplier and measure word (1200余亩, 64项, 1.72亿元, 80.2%), never the
    # next word's first character (1200余亩土): units are listed, not guessed.
    "number": re.compile(r"[0-9０-９]+(?:[.．][0-9]+)?\s*(?:[%％]|个百分点|(?:[万亿千百余多]+)?"
                         rf"(?:{_UNITS})?)|(?<![一二两三四五六七八九十百千万亿])"
                         r"(?:[二两三四五六七八九十百千万亿][一二两三四五六七八九十百千万亿]*|一[一二两三四五六七八九十百千万亿]+)"
                         r"[个名件项户人亩元次年倍家座所条位]"),
    "date": re.compile(r"[0-9]{4}\s*年(?:[0-9]{1,2}\s*月)?(?:[0-9]{1,2}\s*日)?|[0-9]{1,2}\s*月[0-9]{1,2}\s*日"
                       r"|[0-9]{1,2}\s*月|去年|今年|前年|明年|[上下]半年|年底|年初|[0-9]+世纪[0-9]*年代"
                       r"|[一二三四五六七八九十〇零]{2,4}年"),
    "person": re.compile(r"(?:书记|主任|处长|队长|董事长|总经理|经理|负责人|局长|市长|县长|镇长|村长|主席|"
                         r"院长|校长|教授|博士|先生|女士|部长|厅长|委员|总裁|创始人|导演|作者)"
                         r"[\u4e00-\u9fff]{2,3}|[\u4e00-\u9fff]{2,3}(?=说|介绍|表示|指出|认为|称)"),
    "place": re.compile(r"[\u4e00-\u9fff]{1,10}?(?:(?<!驻)村(?![集民干委级庄里工])|镇|乡|县|区(?![域别])|市(?![场民])"
                        r"|省|街道|社区|小区|公司|集团|合作社|园区|开发区|大学|学院|医院|银行|委员会|协会|中心)"),
}
_FUNCTION_CHARS = frozenset("在该本全各每此这那为到让把向从和与及的是了由于将对")
# A place or organisation the question names ("幸福里社区", "北京市"): if the two
# characters before the suffix never occur in the corpus, the articles cannot be
# about it, however well the rest of the question matches; without this rule the
# composer answers about a different 社区 (measured: see README, "Answer quality").
_PLACE_SUFFIX = re.compile(r"社区|街道|小区|合作社|公司|集团|村|镇|乡|县|市|区|省")
_NOT_NAME_CHARS = _FUNCTION_CHARS | frozenset("个些们其么什")
_QWORD = re.compile("|".join(map(re.escape, sorted(QUESTION_WORDS, key=len, reverse=True))))


@dataclass(frozen=True)
class Citation:
    """One quoted sentence and where it comes from.

    Attributes:
        n: Citation number, as in the answer's ``[n]`` markers.
        article: Article id (file stem).
        title: Headline.
        source: Outlet.
        date: ISO date.
        paragraph: Paragraph number in the article.
        heading: Section heading.
        quote: The sentence exactly as in the article (original script).
        start: Offset of the quote in the article text.
        span: ``(start, end)`` of the likely answer inside ``quote``, or None.
        display: The quote in the asker's script.
        display_span: ``span`` inside ``display``.
    """

    n: int
    article: str
    title: str
    source: str | None
    date: str | None
    paragraph: int
    heading: str | None
    quote: str
    start: int
    span: tuple[int, int] | None
    display: str
    display_span: tuple[int, int] | None


@dataclass(frozen=True)
class Answer:
    """The reply to one question.

    Attributes:
        question: As asked.
        answered: False when the articles do not say (then ``citations`` is empty).
        text: The answer in the asker's script: quotes followed by ``[n]`` markers.
        script: "hans" or "hant", the asker's script.
        citations: Quoted sentences, in reading order.
        hits: The retrieved passages, best first (the nearest sources when not answered).
        evidence: Score the answer decision was based on (0..1+).
    """

    question: str
    answered: bool
    text: str
    script: Script
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    evidence: float

    @property
    def answer_span(self) -> str | None:
        """The shortest text that answers (the bold span), in the asker's script."""
        for c in self.citations:
            if c.display_span:
                return c.display[c.display_span[0]:c.display_span[1]]
        return None


@dataclass(frozen=True)
class _Candidate:
    article: Article
    start: int
    end: int
    paragraph: int
    heading: str | None
    score: float
    overlap: float
    span: tuple[int, int] | None  # offsets in the article text
    rank: int
    sem: float | None = None  # cosine of the sentence with the question
    # overlap, typed, align, 1/rank, short, agreement: what the score weighs (see _score)
    features: tuple[float, ...] = ()


def question_type(question_norm: str) -> str | None:
    """"date", "number", "person", "place", or None, from the question's wording."""
    for name, pattern in _TYPES:
        if pattern.search(question_norm):
            return name
    return None


def ask(searcher: Searcher, question: str, script: Script | None = None,
        exclude: frozenset[tuple[str, int]] = frozenset(), k: int | None = None) -> Answer:
    """Search for ``question`` and compose the answer, meaning included.

    Args:
        searcher: Over the index to answer from.
        question: As asked (or as a conversation rewrote it).
        script: Script to answer in; by default the question's.
        exclude: Sentences (article id, start) not to quote again ("more").
        k: Passages to retrieve (default: the searcher's ``top_k``).

    Raises:
        QuestionError: The question is empty, too long or has no words.
    """
    question = searcher.check(question)  # as answered: without CR, BOM or surrounding space
    hits, vector = searcher.search_with_vector(question, k)
    return compose(question, hits, searcher.index, script, query_vector=vector, exclude=exclude)


def compose(question: str, hits: list[Hit], index: Index, script: Script | None = None,
            decline_below: float = DECLINE_BELOW,
            query_vector: np.ndarray | None = None,
            exclude: frozenset[tuple[str, int]] = frozenset()) -> Answer:
    """Compose a cited answer to ``question`` from ``hits``.

    Args:
        question: The question as asked (either script).
        hits: Ranked passages from :class:`~retrieval.search.Searcher`.
        index: The index the hits come from (for article texts and idf).
        script: Script to answer in; by default the question's.
        decline_below: Evidence threshold under which the answer is "not in the articles".
        query_vector: The question's vector (from :meth:`Searcher.search_with_vector`); with
            the index's sentence vectors it weighs candidate sentences by meaning.
        exclude: Sentences (article id, start) already shown, never quoted again.
    """
    script = script or reply_script(question)
    norm = to_simplified(question)
    qtype = question_type(norm)
    unknown = unknown_places(norm, index)
    if unknown:
        return Answer(question, False, _not_found(script, unknown), script, (), tuple(hits), 0.0)
    weights = _weights(norm, index)
    candidates = _candidates(norm, qtype, weights, hits, index)
    candidates = _with_meaning(candidates, index, query_vector)
    if exclude:
        candidates = [c for c in candidates if (c.article.id, c.start) not in exclude]
    best = candidates[0] if candidates else None
    evidence = _evidence(candidates)
    if best is None or evidence < decline_below or _function_words_only(norm):
        return Answer(question, False, _not_found(script), script, (), tuple(hits), evidence)
    chosen = _choose(candidates, qtype, index, named_entities(norm))
    citations = tuple(_cite(i + 1, c, script) for i, c in enumerate(chosen))
    text = "".join(f"{c.display}[{c.n}]" for c in citations)
    return Answer(question, True, text, script, citations, tuple(hits), evidence)


def _evidence(cands: list[_Candidate]) -> float:
    """How strongly the best sentences answer: the share of the question's words they hold,
    raised (never lowered) by how close the closest one is in meaning. Calibrated on the
    seeds gold set's odd-numbered questions, off-topic ones included (README)."""
    if not cands:
        return 0.0
    lexical = max(c.overlap for c in cands)
    sems = [c.sem for c in cands if c.sem is not None]
    if not sems:
        return lexical
    return max(lexical, lexical + SEM_EVIDENCE_WEIGHT * (max(sems) - SEM_EVIDENCE_BASE))


def _function_words_only(norm: str) -> bool:
    """A "question" of function words alone (的, 是, 什么): nothing to look up."""
    letters = [ch for ch in norm if ch.isalnum()]
    return bool(letters) and all(ch in _FUNCTION_CHARS or ch in _NOT_NAME_CHARS or
                                 ch in "吗呢吧啊呀哪谁多少几" for ch in letters)


def _not_found(script: Script, unknown: list[str] | None = None) -> str:
    if script == "en":
        if unknown:
            return "The articles do not mention " + ", ".join(f"“{u}”" for u in unknown) + "."
        return "The articles do not answer this question."
    if unknown:
        return to_script("文章中没有提到" + "、".join(f"“{u}”" for u in unknown) + "。", script)
    return to_script("文章中没有找到这个问题的答案。", script)


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


def _weights(norm: str, index: Index) -> dict[str, float]:
    """idf of the question's bigrams (weight 1) and characters (weight 0.3)."""
    text = _QWORD.sub(" ", norm)
    bigrams = {t for t in tokenize(text, "bigram") if len(t) > 1 or t.isascii()}
    chars = {t for t in tokenize(text, "unibigram") if len(t) == 1 and not t.isascii()}
    idf = index.lexical.idf(sorted(bigrams | chars))
    return {**{t: idf[t] for t in bigrams}, **{t: 0.3 * idf[t] for t in chars}}


def _candidates(norm: str, qtype: str | None, weights: dict[str, float], hits: list[Hit],
                index: Index) -> list[_Candidate]:
    total = sum(weights.values()) or 1.0
    named = named_entities(norm)
    wholes: dict[str, str] = {}  # article id -> Simplified text (same offsets: t2s is 1:1)
    seen: set[tuple[str, int]] = set()
    out: list[_Candidate] = []
    titles: dict[str, set[str]] = {}
    for hit in hits:
        article = index.articles[hit.chunk.article]
        if article.id not in titles:
            titles[article.id] = set(tokenize(to_simplified(article.title), "unibigram"))
        title = titles[article.id]
        prev: set[str] = set()
        for a, b in split_sentences(article.text, hit.chunk.start, hit.chunk.end):
            sent = to_simplified(article.text[a:b])
            toks = set(tokenize(sent, "unibigram"))
            before, prev = prev, toks
            if (article.id, a) in seen:
                continue
            seen.add((article.id, a))
            got = sum(w for t, w in weights.items() if t in toks)
            ctx = sum(w for t, w in weights.items() if t not in toks and (t in before or t in title))
            whole = wholes.get(article.id)
            if whole is None:
                whole = wholes[article.id] = to_simplified(article.text)
            agreement = _agreement(named, whole, a, b)
            if named and agreement == 0:  # the place is established by what comes before
                named_toks = {t for n, k in named for t in tokenize(n + k, "unibigram")}
                got += sum(w for t, w in weights.items() if t in named_toks and t not in toks)
            overlap = (got + 0.5 * ctx) / total
            span, align = _answer_span(norm, qtype, sent, weights, whole)
            typed = 1.0 if (qtype and span is not None) else 0.0
            features = (overlap, typed, align, 1.0 / hit.rank, float(len(sent) < 6), agreement)
            para = article.paragraph_at(a)
            out.append(_Candidate(article, a, b, para.number if para else hit.chunk.first_paragraph,
                                  hit.chunk.heading, _score(features), overlap,
                                  (a + span[0], a + span[1]) if span else None, hit.rank,
                                  features=features))
    out.sort(key=lambda c: -c.score)
    return out


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


def _with_meaning(cands: list[_Candidate], index: Index,
                  query_vector: np.ndarray | None) -> list[_Candidate]:
    """Candidates with their sentence's cosine to the question, re-ranked by it."""
    store = index.sentences if query_vector is not None else None
    if store is None or not cands:
        return cands
    sims = store.similarity(query_vector, [(c.article.id, c.start) for c in cands])
    known = [x for x in sims if x is not None]
    if not known:
        return cands
    best = max(known)
    out = [replace(c, sem=x, score=_score(c.features, x, best)) if x is not None else c
           for c, x in zip(cands, sims, strict=True)]
    out.sort(key=lambda c: -c.score)
    return out


def _score(features: tuple[float, ...], sem: float | None = None,
           best_sem: float | None = None) -> float:
    """How well a sentence answers: a weighted sum of its features, and with sentence vectors
    its cosine to the question (absolute, and behind the closest candidate's)."""
    score = sum(w * f for w, f in zip(WEIGHTS, features, strict=True))
    if sem is not None and best_sem is not None:
        score += SEM_WEIGHT * (sem - SEM_BASE) + SEM_GAP_WEIGHT * (sem - best_sem)
    return score


def _answer_span(norm: str, qtype: str | None, sent: str, weights: dict[str, float],
                 whole: str | None = None) -> tuple[tuple[int, int] | None, float]:
    """Likely answer span in sentence ``sent`` and how well the question aligns (0..1).

    The question's words right before and after its question word are looked
    up in the sentence: text found between them is the answer. Otherwise the
    entity of the asked-for type nearest the question's words is.
    """
    m = _QWORD.search(norm)
    align, gap = 0.0, None
    if m:
        left = re.sub(r"\W", "", norm[:m.start()])[-4:]
        right = re.sub(r"\W", "", norm[m.end():])[:4]
        lpos = _find_tail(sent, left)
        rpos = _find_head(sent, right, lpos[1] if lpos else 0)
        if lpos and rpos and 0 < rpos[0] - lpos[1] <= 40:
            gap, align = (lpos[1], rpos[0]), 1.0
        elif lpos and not right and len(sent) - lpos[1] > 0:
            gap, align = (lpos[1], min(len(sent), lpos[1] + 30)), 0.5
        elif rpos and not left and rpos[0] > 0:
            gap, align = (max(0, rpos[0] - 30), rpos[0]), 0.5
    if qtype == "place":  # a name after its administrative unit, else the pattern's guess
        asked = re.search(rf"(?:哪|什么)[个家些所座一]?({_KINDS})", norm)
        names = [(n, k, a) for n, k, a in place_names(sent, whole) if n not in norm]
        named = [(a, a + len(n)) for n, k, a in names if not asked or k == asked.group(1)]
        if named:
            return named[0], max(align, 0.5)
    if qtype in _ENTITY:
        found = [_clean_entity(sent, (e.start(), e.end())) if qtype == "person" else (e.start(), e.end())
                 for e in _ENTITY[qtype].finditer(sent)
                 if e.group(0) not in norm and not sent.startswith(("代", "年代"), e.end())]
        if gap:
            inside = [f for f in found if f[0] >= gap[0] and f[1] <= gap[1] + 2]
            if inside:
                return (inside[0][0], min(inside[0][1], len(sent))), align
        # Numbers in quotes (“3+2”平台) are names, not amounts.
        found = [f for f in found if not (f[0] and sent[f[0] - 1] in "“「《\"+")] or found
        if found:
            focus = _focus(norm, m, sent)
            if focus:  # the thing counted or dated: 化解矛盾52件, 1200余亩土地
                def distance(f: tuple[int, int]) -> int:
                    return min(abs(f[0] - p[1]) if f[0] >= p[1] else abs(p[0] - f[1]) for p in focus)

                best = min(found, key=distance)
                if distance(best) <= 3:  # right beside what is counted: the sentence answers
                    align = max(align, 1.0)
            else:
                anchor = _anchor(sent, weights)
                best = min(found, key=lambda f: abs((f[0] + f[1]) / 2 - anchor))
            return best, align
        return (_trim(sent, gap), align * 0.5) if gap else (None, 0.0)
    return (_trim(sent, gap) if gap else None), align


def _focus(norm: str, m: re.Match[str] | None, sent: str) -> list[tuple[int, int]]:
    """Where the words right after (else right before) the question word occur in ``sent``."""
    if m is None:
        return []
    right = re.sub(r"\W", "", norm[m.end():]).lstrip("个名位项件次户亩人元年天")
    left = re.sub(r"\W", "", norm[:m.start()]).rstrip("了的是有在为共达到")
    for word in (right[:2], left[-2:]):
        if len(word) == 2 and word in sent:
            return [(i.start(), i.end()) for i in re.finditer(re.escape(word), sent)]
    return []


def _trim(sent: str, gap: tuple[int, int]) -> tuple[int, int] | None:
    a, b = gap
    while a < b and not sent[a].isalnum():
        a += 1
    while b > a and not sent[b - 1].isalnum() and sent[b - 1] not in "”」》）)":
        b -= 1
    return (a, b) if b > a else None


def _find_tail(sent: str, left: str) -> tuple[int, int] | None:
    """Where the longest suffix (≥2 chars) of ``left`` occurs in ``sent``."""
    for size in range(len(left), 1, -1):
        i = sent.find(left[-size:])
        if i >= 0:
            return i, i + size
    return None


def _find_head(sent: str, right: str, after: int) -> tuple[int, int] | None:
    """Where the longest prefix (≥2 chars) of ``right`` occurs in ``sent`` after ``after``."""
    for size in range(len(right), 1, -1):
        i = sent.find(right[:size], after)
        if i >= 0:
            return i, i + size
    return None


def _anchor(sent: str, weights: dict[str, float]) -> float:
    """Centre of the question's heaviest words in the sentence."""
    pos = [(sent.find(t), w) for t, w in weights.items() if len(t) > 1 and t in sent]
    if not pos:
        return len(sent) / 2
    total = sum(w for _, w in pos)
    return sum(p * w for p, w in pos) / total


def _choose(cands: list[_Candidate], qtype: str | None, index: Index,
            named: list[tuple[str, str]] | None = None) -> list[_Candidate]:
    """The best sentence, plus what it needs: the sentence naming whom or what its pronoun
    stands for, its neighbour when it does not hold the asked-for thing, and a close
    runner-up about the same subject. Only one sentence gets a span: the answer."""
    best = cands[0]
    chosen = [best]
    antecedent = None
    if qtype in ("place", "person") and _ANAPHOR.search(_sent(best)):
        antecedent = _antecedent(best, qtype)
    if antecedent is None and _LEADING_PRONOUN.match(_sent(best)):
        antecedent = _previous(best)
    if antecedent is not None:
        chosen.insert(0, antecedent)
    if qtype and best.span is None:
        nxt = _neighbour(best)
        if nxt is not None and nxt.span is not None:
            chosen.append(nxt)
    length = sum(c.end - c.start for c in chosen)
    starts = {(c.article.id, c.start) for c in chosen}
    for c in cands[1:]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if (c.article.id, c.start) in starts or not _same_subject(c, best, named or []):
            continue
        other = c.article.id != best.article.id
        if other and c.score >= 0.9 * best.score and c.overlap >= best.overlap * 0.9:
            chosen.append(c)  # the answer spans two articles
            break
        if (not other and c.score >= RUNNER_UP * best.score
                and length + c.end - c.start <= MAX_ANSWER_CHARS):
            chosen.append(c)
            length += c.end - c.start
            break
    keep = (antecedent if antecedent is not None and antecedent.span is not None else None) or \
        next((c for c in chosen if c.span is not None and c is best), None) or \
        next((c for c in chosen if c.span is not None), None)
    chosen = [c if c is keep else replace(c, span=None) for c in chosen]
    return sorted(chosen, key=lambda c: (c.article.id != best.article.id, c.article.id, c.start))


def _same_subject(c: _Candidate, best: _Candidate, named: list[tuple[str, str]]) -> bool:
    """Whether runner-up ``c`` is about what the question asks: never a sentence about
    another place of the kind the question names, and, when the question names one, only
    a sentence that names it or stands right beside the best one."""
    if _agreement(named, c.article.text, c.start, c.end) < 0:
        return False
    if not named:
        return True
    sent = _sent(c)
    beside = c.article.id == best.article.id and (
        0 <= c.start - best.end <= 2 or 0 <= best.start - c.end <= 2)
    return beside or all(name in sent for name, _ in named)


_LEADING_PRONOUN = re.compile(r"^[“「\"]?(?:他们|她们|它们|他|她|它|其|该|此|这)")


def _previous(c: _Candidate) -> _Candidate | None:
    """The sentence before ``c`` in its paragraph, if any."""
    para = c.article.paragraph_at(c.start)
    if para is None:
        return None
    before = [s for s in split_sentences(c.article.text, para.start, para.end) if s[1] <= c.start]
    if not before:
        return None
    a, b = before[-1]
    return replace(c, start=a, end=b, span=None)


_ANAPHOR = re.compile(r"该[村镇乡县区市省社街公企集]|[他她其]")


def _sent(c: _Candidate) -> str:
    return to_simplified(c.article.text[c.start:c.end])


def _antecedent(c: _Candidate, qtype: str) -> _Candidate | None:
    """The nearest earlier sentence of the paragraph that names a place or person."""
    para = c.article.paragraph_at(c.start)
    if para is None:
        return None
    before = [s for s in split_sentences(c.article.text, para.start, para.end) if s[1] <= c.start]
    whole = to_simplified(c.article.text) if qtype == "place" else None
    for a, b in reversed(before):
        sent = to_simplified(c.article.text[a:b])
        spans = [(s, s + len(n)) for n, _, s in place_names(sent, whole)] if qtype == "place" else []
        spans += [(m.start(), m.end()) for m in _ENTITY[qtype].finditer(sent)
                  if m.group(0)[0] not in "该本全各其他她"]
        if spans:
            span = _clean_entity(sent, spans[0])
            return _Candidate(c.article, a, b, c.paragraph, c.heading, c.score, c.overlap,
                              (a + span[0], a + span[1]), c.rank)
    return None


_TITLE = re.compile(r"(?:党委书记|副书记|书记|副主任|主任|副处长|处长|队长|董事长|总经理|经理|负责人|局长|市长|县长|"
                    r"镇长|村长|主席|院长|校长|教授|博士|部长|厅长|委员|总裁|创始人|导演|作者)")


def _clean_entity(sent: str, span: tuple[int, int]) -> tuple[int, int]:
    """Drop leading function characters (在, 该, 为…) the entity pattern swallowed, and a
    person's title: the answer to 谁 is 赵玉红, not 书记赵玉红."""
    a, b = span
    while a < b - 2 and sent[a] in _FUNCTION_CHARS:
        a += 1
    m = _TITLE.match(sent, a)
    if m and b - m.end() >= 2:
        a = m.end()
        if b - a == 3 and sent[b - 1] in _VERB_START:  # 孙茜安(抚): names are 2 or 3 characters
            b -= 1
    return a, b


_VERB_START = frozenset("安说介表指认称来到任带制发以在是的和与等也都就将把被对向从为均已曾又再还")


def _neighbour(c: _Candidate) -> _Candidate | None:
    """The next sentence of the paragraph, its whole text marked when it holds a number."""
    para = c.article.paragraph_at(c.start)
    if para is None:
        return None
    for a, b in split_sentences(c.article.text, para.start, para.end):
        if a >= c.end:
            has_number = _ENTITY["number"].search(to_simplified(c.article.text[a:b]))
            return replace(c, start=a, end=b, span=(a, b) if has_number else None)
    return None


def _cite(n: int, c: _Candidate, script: Script) -> Citation:
    quote = c.article.text[c.start:c.end]
    span = (c.span[0] - c.start, c.span[1] - c.start) if c.span else None
    if span:
        head, mid, tail = (to_script(quote[:span[0]], script), to_script(quote[span[0]:span[1]],
                           script), to_script(quote[span[1]:], script))
        display, dspan = head + mid + tail, (len(head), len(head) + len(mid))
    else:
        display, dspan = to_script(quote, script), None
    return Citation(n, c.article.id, c.article.title, c.article.source, c.article.date,
                    c.paragraph, c.heading, quote, c.start, span, display, dspan)
