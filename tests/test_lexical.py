import itertools
from pathlib import Path

import numpy as np
import pytest

from retrieval import Index
from retrieval.lexical import LexicalIndex, tokenize, tokenize_query
from retrieval.text import to_simplified

QUESTIONS = ("单光屯社区化解了多少矛盾", "郑永强是谁", "哪个村种芹菜", "党建引领基层治理",
             "天津开展了多少项专项整治", "BM25 2023年")


@pytest.mark.parametrize("batch", [1, 7, 20_000])
def test_streamed_build_scores_exactly_like_bm25s(lexical_index: Index, tmp_path: Path,
                                                  batch: int) -> None:
    """The batched, memory-mapped writer gives bm25s's own lucene scores, whatever the batch."""
    import bm25s

    texts = [to_simplified(lexical_index.passage(c)) for c in lexical_index.chunks]
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index([tokenize(t) for t in texts], show_progress=False)
    ours = LexicalIndex.write(texts, tmp_path / "bm25", "unibigram", 1.2, 0.75, batch=batch)
    assert ours.size == len(texts)
    assert not (tmp_path / "bm25" / "build.tmp").exists()
    for q in QUESTIONS:
        toks = [t for t in tokenize_query(q) if t in ref.vocab_dict]
        want = ref.get_scores(toks) if toks else np.zeros(len(texts))
        np.testing.assert_allclose(ours.scores(q), want, rtol=1e-5, atol=1e-6)
    assert ours.idf(["社区"])["社区"] == pytest.approx(
        np.log(1 + (len(texts) - sum("社区" in t for t in texts) + 0.5)
               / (sum("社区" in t for t in texts) + 0.5)), rel=1e-6)


def test_files_read_both_ways_with_bm25s(lexical_index: Index, tmp_path: Path) -> None:
    """Our reader scores bm25s's own saved index as bm25s does, and bm25s reads ours."""
    import json

    import bm25s

    texts = [to_simplified(lexical_index.passage(c)) for c in lexical_index.chunks]
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index([tokenize(t) for t in texts], show_progress=False)
    ref.save(str(tmp_path / "theirs"))
    (tmp_path / "theirs" / "tokenizer.json").write_text(json.dumps({"mode": "unibigram"}))
    theirs = LexicalIndex.load(tmp_path / "theirs")
    LexicalIndex.write(texts, tmp_path / "ours", "unibigram", 1.2, 0.75)
    ours_by_bm25s = bm25s.BM25.load(str(tmp_path / "ours"))
    for q in (*QUESTIONS, "社区社区"):  # a repeated token counts twice in both
        toks = [t for t in tokenize_query(q) if t in ref.vocab_dict]
        if toks:
            np.testing.assert_array_equal(theirs.scores(q), ref.get_scores(toks))
            np.testing.assert_allclose(ours_by_bm25s.get_scores(toks), ref.get_scores(toks),
                                       rtol=1e-5, atol=1e-6)
    assert theirs.size == len(texts) and theirs.knows("社区") and not theirs.knows("幸福里")


def test_damaged_bm25_files_are_reported(lexical_index: Index, tmp_path: Path) -> None:
    from retrieval import IndexCorruptError

    texts = [to_simplified(lexical_index.passage(c)) for c in lexical_index.chunks]
    folder = tmp_path / "bm25"
    LexicalIndex.write(texts, folder, "unibigram", 1.2, 0.75)
    indptr = np.load(folder / "indptr.csc.index.npy")
    np.save(folder / "indptr.csc.index.npy", indptr[:-1])
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        LexicalIndex.load(folder)
    (folder / "vocab.index.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="unreadable"):
        LexicalIndex.load(folder)


def test_each_column_lists_documents_in_order(lexical_index: Index, tmp_path: Path) -> None:
    texts = [to_simplified(lexical_index.passage(c)) for c in lexical_index.chunks]
    LexicalIndex.write(texts, tmp_path / "bm25", "unibigram", 1.2, 0.75, batch=5)
    indptr = np.load(tmp_path / "bm25" / "indptr.csc.index.npy")
    indices = np.load(tmp_path / "bm25" / "indices.csc.index.npy")
    for a, b in itertools.pairwise(indptr):
        assert np.all(np.diff(indices[a:b]) > 0)


def test_empty_corpus_writes_a_loadable_index(tmp_path: Path) -> None:
    index = LexicalIndex.write([], tmp_path / "bm25", "unibigram", 1.2, 0.75)
    assert index.size == 0
