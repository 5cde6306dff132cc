"""Serving probe, run in a fresh process: load an index, answer questions, report JSON.

``python benchmarks/probe.py INDEX QUESTIONS.txt [--model PATH]`` prints load
time, warm latencies (p50/p99 in ms) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("index")
    p.add_argument("questions")
    p.add_argument("--limit", type=int, default=300)
    args = p.parse_args()
    began = time.perf_counter()
    from retrieval import Index, Searcher, Settings, compose
    from retrieval.text import to_simplified

    index = Index.load(args.index)
    load_s = time.perf_counter() - began
    searcher = Searcher(index, Settings())
    searcher.warm_up()
    with open(args.questions, encoding="utf-8") as f:
        questions = f.read().split("\n")[: args.limit]
    questions = [q for q in questions if q.strip()]
    lex, full = [], []
    for q in questions:
        t = time.perf_counter()
        index.lexical.scores(to_simplified(q))
        lex.append(time.perf_counter() - t)
        t = time.perf_counter()
        compose(q, searcher.search(q), index)
        full.append(time.perf_counter() - t)
    rss = peak_rss_mb()
    print(json.dumps({"load_s": load_s, "lexical_ms": pct(lex), "answer_ms": pct(full),
                      "rss_mb": rss, "retrievers": list(searcher.retrievers)}))


def peak_rss_mb() -> float:
    """VmHWM: unlike ru_maxrss, it is not inherited from the process that exec'd us."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float]) -> dict[str, float]:
    """p50/p99 in milliseconds of durations in seconds."""
    xs = sorted(xs)
    return {"p50": round(1000 * xs[len(xs) // 2], 3),
            "p99": round(1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))], 3)}


if __name__ == "__main__":
    main()
