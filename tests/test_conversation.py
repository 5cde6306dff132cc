"""Follow-up questions: the resolver on hand-made states, and every front end end to end."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.chat import run_chat
from retrieval import Index, Searcher, Settings
from retrieval.conversation import Conversation, Entity, converse, rewrite

LEXICAL = Settings(model="")


def state(*entities: Entity, last: str = "") -> Conversation:
    return Conversation(entities=tuple(entities), last=last)


ZHAO = Entity("赵玉红", "person", "高岭村的党支部书记")
GAOLING = Entity("高岭村", "村")


@pytest.mark.parametrize(("question", "before", "expected"), [
    ("她任职多少年了？", state(ZHAO, GAOLING), "高岭村的党支部书记赵玉红任职多少年了？"),
    ("他是谁？", state(Entity("陈长胜", "person")), "陈长胜是谁？"),
    ("那个村种了多少亩芹菜？", state(ZHAO, GAOLING), "高岭村种了多少亩芹菜？"),
    ("该社区化解了多少矛盾？", state(Entity("单光屯社区", "社区")), "单光屯社区化解了多少矛盾？"),
    ("那里有多少亩耕地？", state(Entity("茶棚村", "村")), "茶棚村有多少亩耕地？"),
    ("这家公司获得了多少项发明专利？", state(Entity("恒银金融科技股份有限公司", "公司")),
     "恒银金融科技股份有限公司获得了多少项发明专利？"),
    ("税收呢？", state(last="天津同仁堂去年实现产值多少？"), "天津同仁堂去年实现税收多少"),
    ("为什么？", state(last="东胡村托管了多少亩大田？"), "东胡村托管了多少亩大田，为什么"),
    # Topic switches stay as asked, even right after another topic.
    ("天津非公企业党组织覆盖率是多少？", state(ZHAO, GAOLING, last="高岭村的党支部书记是谁？"),
     "天津非公企业党组织覆盖率是多少？"),
    ("冯雅彬是谁？", state(Entity("孙茜", "person"), last="孙茜是谁？"), "冯雅彬是谁？"),
    ("大杨庄村党支部书记是谁？", state(ZHAO, GAOLING), "大杨庄村党支部书记是谁？"),
    # Nothing to go on: unchanged.
    ("她任职多少年了？", Conversation(), "她任职多少年了？"),
])
def test_rewrite(question: str, before: Conversation, expected: str) -> None:
    assert rewrite(question, before) == expected


def test_converse_follows_the_subject_across_scripts(lexical_index: Index) -> None:
    s = Searcher(lexical_index, LEXICAL)
    first, st = converse(s, Conversation(), "鄭永強是誰？")
    assert first.kind == "question" and not first.rewritten and first.answer.answered
    assert any(e.name == "郑永强" for e in st.entities)
    second, st = converse(s, st, "他来到哪个村？")  # Simplified after Traditional
    assert second.rewritten and "郑永强" in second.interpreted and second.answer.answer_span == "茶棚村"
    third, st = converse(s, st, "那個村常住人口有多少？")
    assert third.interpreted == "茶棚村常住人口有多少？"  # shown in the asker's script
    assert third.answer.answer_span == "400多人"


def test_ambiguous_question_gets_a_choice_then_a_number_picks(lexical_index: Index) -> None:
    s = Searcher(lexical_index, LEXICAL)
    reply, st = converse(s, Conversation(), "村党支部书记是谁？")
    assert reply.answer is None and len(reply.choices) >= 3
    assert "高岭村党支部书记是谁？" in reply.choices and "大杨庄村党支部书记是谁？" in reply.choices
    n = reply.choices.index("大杨庄村党支部书记是谁？") + 1
    picked, st = converse(s, st, str(n))
    assert picked.kind == "pick" and picked.answer.answer_span == "杨本凯"
    # Once a village is in the conversation, the same question is a follow-up, not a choice.
    again, _ = converse(s, st, "村党支部书记是谁？")
    assert not again.choices


def test_a_name_in_latin_letters_is_a_name(lexical_index: Index) -> None:
    from retrieval.conversation import ambiguous

    s = Searcher(lexical_index, LEXICAL)
    assert ambiguous(s, "J Storm公司目前的社长是谁？", Conversation()) == []
    assert ambiguous(s, "村党支部书记是谁？", Conversation())  # a bare kind still gets a choice


def test_more_gives_the_next_and_then_says_there_is_no_more(lexical_index: Index) -> None:
    s = Searcher(lexical_index, LEXICAL)
    first, st = converse(s, Conversation(), "哪个村种芹菜？")
    seen = {(c.article, c.start) for c in first.answer.citations}
    nothing, _ = converse(s, Conversation(), "还有吗？")
    assert nothing.answer is None and nothing.note
    for _ in range(6):
        reply, st = converse(s, st, "还有吗？")
        assert reply.kind == "more"
        if reply.answer is None:
            assert "没有更多" in reply.note
            break
        now = {(c.article, c.start) for c in reply.answer.citations}
        assert not now & seen  # never the same sentence twice
        seen |= now
    else:
        pytest.fail("more never ran out")


def test_ask_follow_ups_json_end_to_end(corpus: Path, tmp_path: Path) -> None:
    from tests.test_cli import run

    turns = "高岭村的党支部书记是谁？\n她任职多少年了？\n\n村党支部书记是谁？\n她任职多少年了？\n"
    out = run(["ask", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--follow-ups",
               "--json"], tmp_path, stdin=turns)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["question"] for r in rows] == [t for t in turns.splitlines() if t]
    assert rows[0]["interpreted"] == rows[0]["question"] and rows[0]["choices"] == []
    assert rows[1]["interpreted"] == "高岭村的党支部书记赵玉红任职多少年了？"
    assert rows[1]["answer_span"] == "10年"
    assert rows[2]["choices"] and not rows[2]["answered"]  # the empty line started over
    assert rows[3]["interpreted"] == rows[3]["question"]
    # Without --follow-ups every line stays independent.
    plain = run(["ask", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--json"],
                tmp_path, stdin="高岭村的党支部书记是谁？\n她任职多少年了？\n")
    second = json.loads(plain.stdout.splitlines()[1])
    assert second["interpreted"] == "她任职多少年了？"


def test_chat_through_standard_input(lexical_index: Index) -> None:
    out = io.StringIO()
    run_chat(Searcher(lexical_index, LEXICAL),
             io.StringIO("天津同仁堂去年实现产值多少？\n税收呢？\n/new\n税收呢？\n村党支部书记是谁？\n1\n/quit\n"),
             out)
    text = out.getvalue()
    assert "按“天津同仁堂去年实现税收多少”理解" in text and "1.72亿元" in text
    assert "new conversation" in text
    assert "你问的是哪一个？" in text and "  1. " in text
    assert text.count("按“") == 2  # the pick is shown as understood;税收呢 after /new is not rewritten
