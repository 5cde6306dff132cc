import itertools
from pathlib import Path

from retrieval import chunk_article, chunk_articles, load_corpus, parse_article
from retrieval.text import split_sentences


def test_chunks_are_exact_slices_of_whole_sentences(seeds_dir: Path) -> None:
    articles = {a.id: a for a in load_corpus(seeds_dir)}
    for size in (60, 200, 800):
        chunks = chunk_articles(articles.values(), size, 1)
        assert [c.id for c in chunks] == list(range(len(chunks)))
        for c in chunks:
            a = articles[c.article]
            assert a.text[c.start:c.end] == c.text
            starts = {s for p in a.paragraphs for s, _ in split_sentences(a.text, p.start, p.end)}
            ends = {e for p in a.paragraphs for _, e in split_sentences(a.text, p.start, p.end)}
            assert c.start in starts and c.end in ends  # never cuts a sentence
            assert a.paragraph_at(c.start).number == c.first_paragraph
            assert a.paragraph_at(c.end - 1).number == c.last_paragraph
            assert a.paragraph_at(c.start).heading == c.heading


def test_chunk_size_and_overlap(seeds_dir: Path) -> None:
    a = load_corpus(seeds_dir)[0]
    small = chunk_article(a, 60, 1)
    # Over the target only when the overlap sentence plus one more already exceed it.
    assert all(len(c.text) <= 60 or len(split_sentences(c.text)) <= 2 for c in small)
    big = chunk_article(a, 2000, 0)
    by_number = {p.number: p.heading for p in a.paragraphs}
    for c in big:  # long paragraphs merge, but never across a section heading
        assert len({by_number[n] for n in range(c.first_paragraph, c.last_paragraph + 1)}) == 1
    assert len(big) < len(a.paragraphs)
    overlapping = [(x, y) for x, y in itertools.pairwise(small) if y.start < x.end]
    assert overlapping and all(x.first_paragraph == y.last_paragraph or
                               x.last_paragraph == y.first_paragraph for x, y in overlapping)


def test_repeated_paragraph_indexed_once() -> None:
    simp = parse_article("s", "标题\n\n茶棚村常住人口400多人,只有700多亩耕地。\n\n另一段话。\n")
    trad = parse_article("t", "標題\n\n茶棚村常住人口400多人，隻有700多畝耕地。\n\n第三段話。\n")
    chunks = chunk_articles([simp, trad], 200, 1)
    texts = [c.text for c in chunks]
    assert sum("茶棚村" in t for t in texts) == 1
    assert any("第三段話" in t for t in texts)
