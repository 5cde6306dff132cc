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
