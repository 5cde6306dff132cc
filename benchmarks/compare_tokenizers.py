"""Compare BM25 tokenizations on the seeds gold set and CMRC 2018 (lexical only).

Run from the repository root: ``python benchmarks/compare_tokenizers.py [CMRC_DIR]``.
The jieba modes need ``pip install jieba``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from retrieval import Searcher, Settings, build_index
from retrieval.evaluate import evaluate, load_cmrc, load_gold


def main() -> None:
    logging.disable(logging.WARNING)
    cmrc_dir = sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/cmrc2018"
    cmrc_corpus, cmrc_questions = load_cmrc(cmrc_dir, Path(".newsqa/cmrc2018-corpus"))
    gold = load_gold("retrieval/gold/seeds.jsonl")
    for tok in ("bigram", "unibigram", "jieba", "jieba+bigram"):
        st = Settings(model="", tokenizer=tok)
        seeds_index, _ = build_index("seeds", tempfile.mkdtemp(), st)
        cmrc_index, _ = build_index(cmrc_corpus, tempfile.mkdtemp(), st)
        seeds = evaluate(Searcher(seeds_index, st), gold)
        cmrc = evaluate(Searcher(cmrc_index, st), cmrc_questions)["overall"]
        a = seeds["answerable"]
        print(f"{tok:13s} seeds hit@1={a['hit@1']:.3f} passage@1={a['passage_hit@1']:.3f} "
              f"contains={a['contains']:.3f} declined={seeds['by_kind']['offtopic']['declined']:.2f}"
              f" | CMRC hit@1={cmrc['hit@1']:.3f} mrr={cmrc['mrr']:.3f} "
              f"contains={cmrc['contains']:.3f} ms={cmrc['ms_per_question']:.1f}")


if __name__ == "__main__":
    main()
