"""Where the answer is inside a sentence: the kind of thing a question asks for, and its span.

A number with its measure word (1200余亩, 64項), a date, a person without the title (赵玉红), a place
after its administrative unit; else the text between the question's words around its question word.
"""

from __future__ import annotations

import re

from .places import _FUNCTION_CHARS, _KINDS, _QWORD, place_names

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



def question_type(question_norm: str) -> str | None:
    """"date", "number", "person", "place", or None, from the question's wording."""
    for name, pattern in _TYPES:
        if pattern.search(question_norm):
            return name
    return None



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
