"""Conversations: what a question means given the ones before it.

People do not repeat the subject in a chat: "她任职多少年了？", "那个村种了多少亩芹菜？",
"税收呢？", "还有吗？". A question that lacks its own subject is rewritten against the
conversation (the entities named and the previous question), deterministically, and the
rewrite is shown so a wrong guess is visible at once. A question that names its own
subject is left as asked. A question that fits several entities about equally gets a
choice, not a guess. The state is a small frozen object with no I/O: the CLI and the bot
share it, and it is forgotten when they say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .answer import Answer, ask
from .errors import QuestionError
from .places import _KINDS, _QWORD, _bad_name, named_entities, place_names
from .search import Searcher
from .spans import _TITLE, question_type
from .text import Script, reply_script, split_sentences, to_script, to_simplified

MAX_ENTITIES = 8
MAX_CHOICES = 6

_MORE = re.compile(r"^(?:还有吗|还有呢|还有没有|还有别的吗|还有其他的吗|其他的呢|其它的呢|别的呢|更多|下一个"
                   r"|/more|more|anything else|what else)[\s?？!！。.]*$", re.IGNORECASE)
_PERSON = re.compile(r"他们|她们|他|她")
_THING = re.compile(r"它们|它")
_DEICTIC = re.compile(rf"(?:这个|那个|这家|那家|该|这|那|此)({_KINDS})")
_THERE = re.compile(r"那里|那儿|这里|这儿")
_BARE_START = re.compile(r"^(?:为什么|为啥|具体|怎么|如何|原因|结果|效果|后来|然后)")
_GENERIC = re.compile(rf"(?<![\u4e00-\u9fffA-Za-z0-9])({_KINDS})|^(?:村|社区)")
_PERSON_NAME = re.compile(r"(?:书记|主任|处长|队长|董事长|总经理|经理|负责人|局长|市长|县长|镇长|村长|主席|院长|"
                          r"校长|部长|委员)([\u4e00-\u9fff]{2,3}?)(?=说|介绍|表示|指出|认为|称|来到|安抚|制定|发挥|以|[,，。、])"
                          r"|([\u4e00-\u9fff]{2,3})(?=说|介绍|表示|指出)")


@dataclass(frozen=True)
class Entity:
    """A person, place or organisation the conversation has named.

    Attributes:
        name: As the articles write it, Simplified (赵玉红, 高岭村).
        kind: "person", or the place's kind (村, 社区, 公司 …).
        description: How the conversation introduced a person (高岭村的党支部书记).
    """

    name: str
    kind: str
    description: str = ""

    def phrase(self) -> str:
        """How a rewritten question names it: description and name (高岭村的党支部书记赵玉红)."""
        return f"{self.description}{self.name}" if self.description else self.name


@dataclass(frozen=True)
class Conversation:
    """What a conversation has established so far (most recent first).

    Attributes:
        entities: Named people and places, most recent first.
        last: The previous question as searched (Simplified), for "more" and bare attributes.
        shown: Sentences (article id, start) quoted for ``last``, which "more" skips.
        choices: Questions offered in the last reply, picked by number.
        turns: Questions asked so far.
    """

    entities: tuple[Entity, ...] = ()
    last: str = ""
    shown: frozenset[tuple[str, int]] = frozenset()
    choices: tuple[str, ...] = ()
    turns: int = 0


@dataclass(frozen=True)
class Reply:
    """One turn's outcome.

    Attributes:
        question: As asked.
        interpreted: The question as searched, in the asker's script (== question when
            nothing was added).
        kind: "question", "follow-up", "more", "pick" (a choice taken by number) or "choice".
        answer: The answer (None when the reply is a choice).
        choices: Full questions offered instead of a guess (in the asker's script).
        note: A one-line message instead of an answer ("no more").
    """

    question: str
    interpreted: str
    kind: str
    answer: Answer | None
    choices: tuple[str, ...] = ()
    note: str = ""
    script: Script = field(default="hans")

    @property
    def rewritten(self) -> bool:
        """Whether the question was understood as something other than its own words."""
        return self.interpreted != self.question


def converse(searcher: Searcher, state: Conversation, question: str) -> tuple[Reply, Conversation]:
    """Answer ``question`` in the light of ``state``; return the reply and the next state.

    Raises:
        QuestionError: The question is empty, too long or has no words.
    """
    asked = searcher.check(question)
    script = reply_script(asked)
    kind = "question"
    text = asked
    if state.choices and asked.isdigit() and 1 <= int(asked) <= len(state.choices):
        text, kind = state.choices[int(asked) - 1], "pick"
        script = reply_script(text)
    norm = to_simplified(text)
    if kind == "question" and _MORE.match(norm):
        return _more(searcher, state, asked, script)
    interpreted = rewrite(norm, state) if kind == "question" else norm
    if interpreted != norm:
        kind = "follow-up"
    else:
        options = ambiguous(searcher, norm, state)
        if len(options) > 1:
            shown = tuple(to_script(o, script) for o in options)
            reply = Reply(asked, text, "choice", None, shown, script=script)
            return reply, replace(state, choices=tuple(options), turns=state.turns + 1)
    answer = ask(searcher, interpreted, script)
    shown_text = asked if interpreted == norm and kind == "question" else to_script(interpreted, script)
    reply = Reply(asked, shown_text, kind, answer, script=script)
    return reply, remember(state, interpreted, answer, _texts(searcher, answer))


def _more(searcher: Searcher, state: Conversation, asked: str,
          script: Script) -> tuple[Reply, Conversation]:
    if not state.last:
        note = "Nothing to continue yet: ask a question first." if script == "en" else \
            to_script("还没有可以接着说的问题，请先提一个问题。", script)
        return Reply(asked, asked, "more", None, note=note, script=script), state
    answer = ask(searcher, state.last, script, exclude=state.shown, k=searcher.settings.top_k * 3)
    interpreted = to_script(state.last, script)
    if not answer.answered:
        note = "The articles say nothing more about this." if script == "en" else \
            to_script("文章中没有更多相关内容了。", script)
        return Reply(asked, interpreted, "more", None, note=note, script=script), state
    shown = state.shown | {(c.article, c.start) for c in answer.citations}
    reply = Reply(asked, interpreted, "more", answer, script=script)
    return reply, replace(remember(state, state.last, answer, _texts(searcher, answer)), shown=shown)


def rewrite(norm: str, state: Conversation) -> str:
    """``norm`` (Simplified) with a missing subject filled in from ``state``, or unchanged.

    Pronouns (他/她) become the last person named, with how the conversation introduced
    them; 这个村/该社区/那里 the last place of that kind; a bare attribute ("税收呢？",
    "为什么？") is asked about the previous question's subject. A question that names its
    own subject is returned as it is.
    """
    if not state.entities and not state.last:
        return norm
    people = [e for e in state.entities if e.kind == "person"]
    m = _PERSON.search(norm)
    if m and people:
        return norm[:m.start()] + people[0].phrase() + norm[m.end():]
    m = _DEICTIC.search(norm)
    if m:
        place = next((e for e in state.entities if e.kind == m.group(1) or
                      (m.group(1) in ("公司", "企业", "集团") and e.kind in ("公司", "企业", "集团"))),
                     None)
        if place:
            return norm[:m.start()] + place.name + norm[m.end():]
    m = _THERE.search(norm)
    places = [e for e in state.entities if e.kind != "person"]
    if m and places:
        return norm[:m.start()] + places[0].name + norm[m.end():]
    m = _THING.search(norm)
    if m and places:
        return norm[:m.start()] + places[0].name + norm[m.end():]
    if _is_bare(norm) and state.last:
        return _bare(norm, state)
    return norm


def _texts(searcher: Searcher, answer: Answer) -> dict[str, str]:
    return {c.article: to_simplified(searcher.index.articles[c.article].text) for c in answer.citations}


def _words(text: str) -> str:
    return re.sub(r"[\W_]+", "", text)


def _is_bare(norm: str) -> bool:
    """A question with no subject of its own: "税收呢？", "金额是多少？", "为什么？"."""
    core = _words(norm)
    if not core or named_entities(norm) or _PERSON_NAME.search(norm):
        return False
    if core.endswith("呢") and len(core) <= 8:
        return True
    return len(core) <= 8 and bool(_BARE_START.match(core) or _QWORD.fullmatch(core) or re.fullmatch(
        r"[\u4e00-\u9fff]{0,2}?(?:是|有)?(?:多少|几|什么时候|哪里|谁|什么)(?:呢|啊)?", core))


def _bare(norm: str, state: Conversation) -> str:
    """Ask a bare attribute about the previous question's subject."""
    core = _words(norm).removesuffix("呢")
    last = state.last
    m = _QWORD.search(last)
    head = _words(last[:m.start()] if m else last)
    if _BARE_START.match(core) or not core:
        return f"{_words(last)}，{_words(norm)}"
    # "税收呢" after "天津同仁堂去年实现产值多少": the two characters before the question word
    # are the previous attribute; the new one takes their place, and the question word stays.
    subject = head[:-2] if len(head) > 4 else head
    qword = m.group(0) if m and not _QWORD.search(core) else ""
    return f"{subject}{core}{qword}"


def ambiguous(searcher: Searcher, norm: str, state: Conversation) -> list[str]:
    """Full questions, one per place, when ``norm`` asks about a kind of place (村, 社区 …)
    without naming one and the articles name several that fit; else []."""
    if named_entities(norm):
        return []
    m = _GENERIC.search(_QWORD.sub(" ", norm))
    if not m or re.search(rf"(?:哪|什么|几)[个家些所座]?(?:{_KINDS})", norm):
        return []  # "哪个村…" asks for the place: that is the answer, not an ambiguity
    kind = m.group(1) or m.group(0)
    if any(e.kind == kind for e in state.entities):
        return []
    rest = norm[m.end():] if m.group(1) else norm[len(kind):]
    keys = {rest[i:i + 2] for i in range(len(rest) - 1) if _is_han(rest[i:i + 2])}
    keys -= {"是谁", "多少", "什么", "哪个", "哪里"}
    names: list[str] = []
    try:
        hits = searcher.search(norm, max(10, searcher.settings.top_k))
    except QuestionError:
        return []
    index = searcher.index
    for hit in hits:
        article = index.articles[hit.chunk.article]
        whole = to_simplified(article.text)
        for a, b in split_sentences(article.text, hit.chunk.start, hit.chunk.end):
            sent = to_simplified(article.text[a:b])
            if keys and not any(k in sent for k in keys):
                continue
            for full, found, _ in place_names(sent, whole):
                if found == kind and full not in names:
                    names.append(full)
    if len(names) < 2:
        return []
    question = norm if not m.group(1) else norm[:m.start()] + "{}" + norm[m.end():]
    if "{}" not in question:
        question = "{}" + norm[len(kind):]
    return [question.format(n) for n in names[:MAX_CHOICES]]


def _is_han(text: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in text)


def remember(state: Conversation, interpreted: str, answer: Answer,
             articles: dict[str, str] | None = None) -> Conversation:
    """The state after ``answer`` to ``interpreted`` (Simplified): who and what it named.

    ``articles`` (id -> Simplified text) lets a place named once in a quote count when its
    article names it again."""
    whole = articles or {}
    found: list[Entity] = []
    qtype = question_type(interpreted)
    span = to_simplified(answer.answer_span or "") if answer.answered else ""
    description = ""
    if qtype == "person":
        description = _words(re.sub(r"是谁|叫什么名字|是哪位|谁是", "", interpreted))
    quoted = " ".join(to_simplified(c.quote) for c in answer.citations)
    title = _TITLE.match(span)
    span = span[title.end():] if title else span  # the person, not 书记赵玉红
    if span and qtype == "person" and 2 <= len(span) <= 4:
        found.append(Entity(span, "person", description if description != span else ""))
    for m in _PERSON_NAME.finditer(quoted):
        name = m.group(1) or m.group(2)
        if name and not _bad_name(name):
            found.append(Entity(name, "person"))
    for name, kind in named_entities(interpreted):
        found.append(Entity(name + kind, kind))
    if span and qtype == "place":
        for name, kind in named_entities(span + "的"):
            found.append(Entity(name + kind, kind))
    for c in answer.citations:
        text = to_simplified(c.quote)
        found.extend(Entity(full, kind) for full, kind, _ in place_names(text, whole.get(c.article)))
    merged: list[Entity] = []
    for e in [*found, *state.entities]:
        if all(e.name != x.name for x in merged):
            merged.append(e)
    shown = frozenset((c.article, c.start) for c in answer.citations)
    return Conversation(tuple(merged[:MAX_ENTITIES]), interpreted, shown, (), state.turns + 1)


def forget() -> Conversation:
    """A new conversation (``/new``)."""
    return Conversation()

