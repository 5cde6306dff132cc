"""Property-based tests (hypothesis): the invariants the pipeline's pieces promise, on any input."""

from __future__ import annotations

import html

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import plain_text, split_html, utf16_len
from retrieval import Index, Searcher, Settings, compose, parse_article
from retrieval.chunking import chunk_article
from retrieval.corpus import _FRONT
from retrieval.text import detect_script, reply_script, split_sentences, to_script, to_simplified

from .fake_telegram import parse_html

# The first call of a test loads OpenCC or the index: time per example is not what is tested.
settings.register_profile("newsqa", deadline=None)
settings.load_profile("newsqa")

# Chinese-heavy text with the punctuation, closers, spaces and oddities real pages have.
CHINESE = st.text(alphabet=st.sampled_from(
    [*"天津扎實推進黨建引領基層治理行動高岭村书记赵玉红。！？；!?﹔」』”’）)\n \u3000，、0123456789abc",
     "\ud7ff", "\U0001f600", "\x00", "\r", "\ufeff", "&", "<", ">"]), max_size=300)
ANY = st.text(max_size=200)


@given(ANY)
def test_script_conversion_and_detection_never_fail(text: str) -> None:
    assert isinstance(to_simplified(text), str) and isinstance(to_script(text, "hant"), str)
    assert detect_script(text) in ("hans", "hant")
    assert reply_script(text) in ("hans", "hant", "en")
    assert len(to_simplified(text)) == len(text) or max(text, default=" ") >= "\ud800"


@given(CHINESE)
def test_sentences_cover_the_text_in_order(text: str) -> None:
    spans = split_sentences(text)
    pos = 0
    for a, b in spans:
        assert pos <= a < b <= len(text)
        assert not text[pos:a].strip()  # only whitespace between sentences
        pos = b
    assert not text[pos:].strip()  # the pieces and the whitespace between them are the text


@given(CHINESE, st.integers(20, 400), st.integers(0, 3))
@settings(max_examples=60)
def test_chunks_are_slices_of_the_original(text: str, size: int, overlap: int) -> None:
    article = parse_article("a", "标题\n\n" + text)
    for chunk in chunk_article(article, size, overlap):
        assert chunk.text == article.text[chunk.start:chunk.end] or chunk.text.strip()
        assert 0 <= chunk.start < chunk.end <= len(article.text)
        for p in article.paragraphs:
            assert article.text[p.start:p.end].strip()


@given(st.text(max_size=80), st.text(max_size=200))
def test_front_matter_never_breaks_parsing(front: str, body: str) -> None:
    text = f"---\n{front}\n---\n{body}"
    article = parse_article("x", text)
    assert article.title and all(0 <= p.start < p.end <= len(text) for p in article.paragraphs)
    if _FRONT.match(text) is None:
        assert article.title != "---"


@given(st.lists(st.tuples(st.text(min_size=1, max_size=400), st.sampled_from(["", "b", "i"])),
                min_size=1, max_size=30), st.integers(50, 4096))
@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
def test_telegram_messages_always_parse_fit_and_keep_everything(runs, limit: int) -> None:
    body = "".join(f"<{t}>{html.escape(x)}</{t}>" if t else html.escape(x) for x, t in runs)
    pieces = split_html(body, limit)
    for piece in pieces:
        parse_html(piece)  # valid HTML, as Telegram checks it
        assert utf16_len(plain_text(piece)) <= limit
    assert "".join(plain_text(p) for p in pieces).replace("\n", "").replace(" ", "") == \
        plain_text(body).replace("\n", "").replace(" ", "")


@given(ANY)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_compose_answers_or_declines_any_question(lexical_index: Index, question: str) -> None:
    from retrieval import QuestionError

    searcher = Searcher(lexical_index, Settings(model=""))
    try:
        hits = searcher.search(question)
    except QuestionError as exc:
        assert exc.reason in ("empty", "too_long", "no_words", "not_text")
        return
    answer = compose(question, hits, lexical_index)
    assert answer.answered == bool(answer.citations)
    for c in answer.citations:
        assert lexical_index.articles[c.article].text[c.start:c.start + len(c.quote)] == c.quote
