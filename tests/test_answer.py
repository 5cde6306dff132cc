from pathlib import Path

import pytest

from retrieval import Hit, Index, Searcher, Settings, compose, question_type
from retrieval.answer import unknown_places
from retrieval.evaluate import load_gold
from retrieval.text import detect_script, to_simplified
from tests.conftest import ROOT, SIMP, TRAD

GOLD = load_gold(ROOT / "retrieval" / "gold" / "seeds.jsonl")


def _hit(index: Index, article: str, paragraph: int, rank: int = 1) -> Hit:
    chunk = next(c for c in index.chunks if c.article == article and
                 c.first_paragraph <= paragraph <= c.last_paragraph)
    return Hit(rank, chunk, 1.0 / rank, 1.0, None, 1.0)


@pytest.mark.parametrize(("question", "kind"), [
    ("单光屯社区化解了多少矛盾？", "number"), ("葡香村下辖几个自然村？", "number"),
    ("鄭永強是誰？", "person"), ("哪个村种芹菜？", "place"),
    ("会议是什么时候召开的？", "date"), ("纸坊村的四民工作法是什么？", None),
])
def test_question_types(question: str, kind: str | None) -> None:
    assert question_type(to_simplified(question)) == kind


def test_number_question_marks_the_number(lexical_index: Index) -> None:
    a = compose("单光屯社区化解了多少矛盾？", [_hit(lexical_index, SIMP, 5)], lexical_index)
    assert a.answered and a.script == "hans"
    spans = [c.display[c.display_span[0]:c.display_span[1]] for c in a.citations if c.display_span]
    assert "52件" in spans


def test_person_and_place_questions(lexical_index: Index) -> None:
    a = compose("鄭永強是誰？", [_hit(lexical_index, TRAD, 5)], lexical_index)
    assert a.answered and "天津市城管委廢管處副處長鄭永強" in a.text
    b = compose("哪个村种芹菜？", [_hit(lexical_index, SIMP, 8)], lexical_index)
    assert "高岭村" in b.text and "芹菜" in b.text


def test_answer_mirrors_the_askers_script(lexical_index: Index) -> None:
    trad = compose("單光屯社區化解了多少矛盾？", [_hit(lexical_index, SIMP, 5)], lexical_index)
    assert trad.script == "hant" and detect_script(trad.text) == "hant"
    assert "單光屯社區" in trad.text and "单光屯社区" in trad.citations[0].quote + \
        "".join(c.quote for c in trad.citations)
    simp = compose("郑永强是谁？", [_hit(lexical_index, TRAD, 5)], lexical_index)
    assert simp.script == "hans" and "郑永强" in simp.text
    assert "鄭永強" in simp.citations[0].quote  # the quote stays in the original script


def test_quotes_are_exact_and_answers_cite_in_reading_order(lexical_index: Index) -> None:
    s = Searcher(lexical_index, Settings(model=""))
    for q in GOLD:
        a = compose(q.question, s.search(q.question), lexical_index)
        for c in a.citations:
            article = lexical_index.articles[c.article]
            assert article.text[c.start:c.start + len(c.quote)] == c.quote
            assert article.paragraph_at(c.start).number == c.paragraph
            if c.span:
                assert 0 <= c.span[0] < c.span[1] <= len(c.quote)
            assert f"[{c.n}]" in a.text
        assert 1 <= len(a.citations) <= 3 or not a.answered


def test_off_topic_is_declined_with_nearest_sources(lexical_index: Index) -> None:
    s = Searcher(lexical_index, Settings(model=""))
    for q in (g for g in GOLD if g.article is None):
        a = compose(q.question, s.search(q.question), lexical_index)
        assert not a.answered and not a.citations, q.question
    a = compose("上海迪士尼樂園的門票多少錢？", s.search("上海迪士尼樂園的門票多少錢？"), lexical_index)
    assert a.text == "文章中沒有找到這個問題的答案。" and a.hits


@pytest.mark.parametrize(("question", "named"), [
    ("幸福里社区化解了多少矛盾？", "“幸福里社区”"),  # the rest matches 单光屯社区 well
    ("北京市开展了多少项专项整治？", "“北京市”"),  # 天津's 10 项 would be quoted otherwise
    ("蘋果公司的執行長是誰？", "“蘋果公司”"),
])
def test_a_place_the_articles_never_name_is_declined_by_name(lexical_index: Index, question: str,
                                                             named: str) -> None:
    s = Searcher(lexical_index, Settings(model=""))
    a = compose(question, s.search(question), lexical_index)
    assert not a.answered and not a.citations and named in a.text and a.hits


@pytest.mark.parametrize("question", [
    "单光屯社区化解了多少矛盾？", "杨本凯汇聚了多少名合伙人返乡创业？",  # 返乡: a word, not a 乡
    "城市社区治理有什么经验？", "高嶺村流轉了多少畝土地？",
])
def test_places_the_articles_name_and_generic_words_are_not_flagged(lexical_index: Index,
                                                                    question: str) -> None:
    assert unknown_places(to_simplified(question), lexical_index) == []


def test_no_hits_declines(lexical_index: Index) -> None:
    a = compose("任何问题？", [], lexical_index)
    assert not a.answered and a.evidence == 0.0


def test_seeds_gold_quality_floor(lexical_index: Index) -> None:
    """Quality regressions fail here; the measured figures are in the README."""
    from retrieval.evaluate import evaluate

    # English questions need the model (no shared words): the dense tests cover them.
    report = evaluate(Searcher(lexical_index, Settings(model="")),
                      [g for g in GOLD if g.kind != "english"])
    assert report["answerable"]["hit@1"] >= 0.97
    assert report["by_kind"]["trap"]["neighbour"] <= 1
    assert report["by_kind"]["offtopic"]["declined"] == 1.0
    for kind in ("hans", "hant", "cross"):
        assert report["by_kind"][kind]["contains"] >= 0.9, kind
    from retrieval.evaluate import _COLS, format_report

    table = format_report(report).splitlines()
    assert table[0].split() == ["kind", *_COLS]  # every column name stands apart
    assert all(len(line.split()) == len(_COLS) + 1 for line in table[1:])


def test_path_fixture_exists() -> None:
    assert Path(ROOT / "seeds").is_dir()


class _Meaning:
    """Sentence vectors stand-in: the cosine of each sentence is set by a substring it holds."""

    def __init__(self, index: Index, cosines: dict[str, float], default: float = 0.80) -> None:
        self.index, self.cosines, self.default = index, cosines, default

    def similarity(self, query, keys):
        out = []
        for article, start in keys:
            text = self.index.articles[article].text[start:start + 200]
            sentence = text[:min((text.find(p) + 1 for p in "。！？" if p in text), default=200)]
            out.append(next((c for k, c in self.cosines.items() if k in sentence), self.default))
        return out


@pytest.fixture
def meaning_index(tmp_path: Path) -> Index:
    from retrieval import build_index

    index, _ = build_index(ROOT / "seeds", tmp_path / "idx", Settings(model=""))
    return index


def test_meaning_lets_a_paraphrase_through_and_picks_its_sentence(meaning_index: Index) -> None:
    import numpy as np

    q = "老小区停车难解决以后多出了几个停车位？"  # shares few words with 车位数一下增加了80个
    hits = [_hit(meaning_index, TRAD, p, r) for r, p in enumerate((12, 17), 1)]
    without = compose(q, hits, meaning_index)
    meaning_index._sentences = _Meaning(meaning_index, {"車位數一下增加": 0.93})
    with_meaning = compose(q, hits, meaning_index, query_vector=np.ones(4, dtype=np.float32))
    assert with_meaning.answered and with_meaning.evidence > without.evidence
    assert "車位數一下增加了80個" in with_meaning.citations[0].quote
    assert with_meaning.answer_span == "80个"


def test_meaning_never_lowers_the_evidence_and_off_topic_stays_declined(meaning_index: Index) -> None:
    import numpy as np

    meaning_index._sentences = _Meaning(meaning_index, {}, default=0.70)  # nothing is close
    s = Searcher(meaning_index, Settings(model=""))
    vec = np.ones(4, dtype=np.float32)
    direct = "单光屯社区化解了多少矛盾？"
    assert compose(direct, s.search(direct), meaning_index, query_vector=vec).answer_span == "52件"
    for q in ("比特币今天的价格是多少？", "红烧肉怎么做？"):
        assert not compose(q, s.search(q), meaning_index, query_vector=vec).answered


def test_a_question_of_function_words_is_declined(lexical_index: Index) -> None:
    s = Searcher(lexical_index, Settings(model=""))
    for q in ("的", "是", "的是什么？"):
        assert not compose(q, s.search(q), lexical_index).answered, q


def test_english_questions_get_english_messages(lexical_index: Index) -> None:
    s = Searcher(lexical_index, Settings(model=""))
    a = compose("What is the capital of France?", s.search("What is the capital of France?"),
                lexical_index)
    assert a.script == "en" and a.text == "The articles do not answer this question."


def test_answers_stay_on_the_entity_the_question_names(lexical_index: Index) -> None:
    s = Searcher(lexical_index, Settings(model=""))
    cases = {"港雲裡社區黨委書記是誰？": ("孫茜", "馮雅彬"), "光採社區黨委書記是誰？": ("馮雅彬", "孫茜"),
             "高岭村的党支部书记是谁？": ("赵玉红", "孙广斌"), "茶棚村常住人口有多少？": ("400多人", "70%")}
    for q, (right, neighbour) in cases.items():
        a = compose(q, s.search(q), lexical_index)
        assert a.answered and right in a.answer_span and neighbour not in a.text, (q, a.text)
    spans = {q: compose(q, s.search(q), lexical_index).answer_span for q in
             ("高岭村流转了多少亩土地种植芹菜？", "恒銀公司獲得了多少項發明專利？")}
    assert spans == {"高岭村流转了多少亩土地种植芹菜？": "1200余亩", "恒銀公司獲得了多少項發明專利？": "64項"}
