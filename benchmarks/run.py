"""The benchmark suite: newsqa against LangChain and txtai, seeds to synthetic 1M chunks.

    pip install -e ".[bench]"
    python benchmarks/run.py --shared ../shared            # seeds, CMRC, 10k, 100k
    python benchmarks/run.py --shared ../shared --sizes 10000,100000,1000000

Writes ``benchmarks/out/results.json``, ``benchmarks/RESULTS.md`` and
``benchmarks/scale.png``. Work files go to ``.newsqa/bench/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import random_model, synth  # noqa: E402
from benchmarks.probe import pct  # noqa: E402
from retrieval import Index, Searcher, Settings, build_index, compose  # noqa: E402
from retrieval.evaluate import load_cmrc, load_gold  # noqa: E402
from retrieval.lexical import tokenize  # noqa: E402
from retrieval.text import to_simplified  # noqa: E402
from retrieval.vectors import VectorIndex  # noqa: E402

WORK = ROOT / ".newsqa" / "bench"
OUT = ROOT / "benchmarks" / "out"
PAUSE_S = 0.05  # idle time before each timed peer query (a chat bot's questions come seconds apart)


def du(path: Path) -> float:
    """Size on disk in MB."""
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 2)


def timed(fn, *args, **kw):
    began = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - began


def machine() -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "ram_gib": round(mem, 1),
            "cpu": cpu, "python": platform.python_version()}


def cold_start(corpus: str, index: Path, question: str, model: str, runs: int = 3) -> float:
    """Median wall time of a new ``newsqa ask`` process with an existing index."""
    env = {**os.environ, "NEWSQA_MODEL": model}
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([shutil.which("newsqa") or "newsqa", "ask", "--corpus", corpus, "--index",
                        str(index), question], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 3)


def probe(index: Path, questions: list[str]) -> dict:
    qfile = WORK / "probe-questions.txt"
    qfile.write_text("\n".join(questions), "utf-8")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe.py"), str(index),
                          str(qfile)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- peers ------------------------------------------------------------------------

class Peers:
    """LangChain's usual hybrid and txtai's hybrid Embeddings over the same passages,
    tokenization and embedding model (peers are a benchmark-only extra)."""

    def __init__(self, index: Index, model_path: str) -> None:
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.embeddings import HuggingFaceEmbeddings
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document
        from langchain_core.embeddings import Embeddings

        # LangChain's usual way to run a sentence-transformers model: HuggingFaceEmbeddings
        # (torch). The passages' vectors are shared (embedding excluded from its build).
        hf = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"},
                                   encode_kwargs={"normalize_embeddings": True})

        class Same(Embeddings):
            def embed_documents(self, texts):
                return hf.embed_documents([to_simplified(t) for t in texts])

            def embed_query(self, text):
                return hf.embed_query(to_simplified(text))

        texts = [index.passage(c) for c in index.chunks]
        meta = [{"article": c.article} for c in index.chunks]
        vectors = index.vectors.vectors()
        began = time.perf_counter()
        docs = [Document(page_content=t, metadata=m) for t, m in zip(texts, meta, strict=True)]
        bm25 = BM25Retriever.from_documents(docs, k=5, preprocess_func=lambda t: tokenize(
            to_simplified(t)))
        store = FAISS.from_embeddings(list(zip(texts, vectors.tolist(), strict=True)), Same(),
                                      metadatas=meta)
        self.langchain = EnsembleRetriever(retrievers=[bm25, store.as_retriever(
            search_kwargs={"k": 5})], weights=[0.5, 0.5])
        self.langchain_build_s = time.perf_counter() - began  # embedding excluded (shared)

        import txtai.scoring.tfidf as tfidf
        from txtai import Embeddings as TxtaiEmbeddings

        tfidf.TFIDF.loadtokenizer = lambda self: (lambda text: tokenize(to_simplified(text)))
        began = time.perf_counter()
        self.txtai = TxtaiEmbeddings(path=model_path, content=True, hybrid=True,
                                     scoring={"method": "bm25", "terms": True})
        self.txtai.index([(i, t, None) for i, t in enumerate(texts)])
        self.txtai_build_s = time.perf_counter() - began  # embedding included (its own)
        self._articles = [c.article for c in index.chunks]

    def langchain_top(self, q: str) -> str | None:
        docs = self.langchain.invoke(q)
        return docs[0].metadata["article"] if docs else None

    def txtai_top(self, q: str) -> str | None:
        res = self.txtai.search(q, 5)
        return self._articles[int(res[0]["id"])] if res else None


# --- corpora with questions -------------------------------------------------------------

def top_article(searcher: Searcher, q: str) -> str | None:
    hits = searcher.search(q, 1)
    return hits[0].chunk.article if hits else None


def bench_corpus(name: str, corpus: Path, questions, model: Path, peers: bool,
                 limit: int = 1500) -> dict:
    """Build, size, latency, recall and peers for one real corpus."""
    lex_dir, hyb_dir = WORK / f"{name}-lexical", WORK / f"{name}-hybrid"
    for d in (lex_dir, hyb_dir):
        shutil.rmtree(d, ignore_errors=True)
    r: dict = {"corpus": name}
    (lex, rep), r["lexical_build_s"] = timed(build_index, corpus, lex_dir, Settings(model=""))
    (hyb, _), hybrid_s = timed(build_index, corpus, hyb_dir, Settings(model=str(model)))
    r["dense_build_s"] = round(hybrid_s - r["lexical_build_s"], 2)
    r["chunks"], r["articles"] = rep.chunks, rep.articles
    r["lexical_size_mb"], r["hybrid_size_mb"] = du(lex_dir), du(hyb_dir)
    lex, hyb = Index.load(lex_dir), Index.load(hyb_dir)  # as users' processes have them
    lex_search = Searcher(lex, Settings(model=""))
    hyb_search = Searcher(hyb, Settings(model=str(model)))
    hyb_search.warm_up()
    questions = [q for q in questions if q.question.strip()][:limit]
    qs = [q.question for q in questions]
    gold = [q.article for q in questions]
    sample = qs[:500]
    t_lex, t_dense, t_hyb, t_ans = [], [], [], []
    for q in sample:
        norm = to_simplified(q)
        _, s = timed(lex.lexical.scores, norm)
        t_lex.append(s)
        vec = hyb_search._embedder.embed_queries([norm])
        _, s = timed(hyb.vectors.search, vec, 10)
        t_dense.append(s)
        _, s = timed(hyb_search.search, q)
        t_hyb.append(s)
        _, s = timed(lambda q=q: compose(q, hyb_search.search(q), hyb))
        t_ans.append(s)
    r["lexical_ms"], r["dense_search_ms"] = pct(t_lex), pct(t_dense)
    r["hybrid_ms"], r["answer_ms"] = pct(t_hyb), pct(t_ans)
    r["questions"] = len(qs)
    r["recall1_lexical"] = round(float(np.mean([top_article(lex_search, q) == g
                                                for q, g in zip(qs, gold, strict=True)])), 4)
    hits = [top_article(hyb_search, q) == g for q, g in zip(qs, gold, strict=True)]
    r["recall1_hybrid_random_model"] = round(float(np.mean(hits)), 4)
    r["serve_lexical"] = probe(lex_dir, sample)
    r["serve_hybrid"] = probe(hyb_dir, sample)
    r["cold_ask_lexical_s"] = cold_start(str(corpus), lex_dir, qs[0], "")
    r["cold_ask_dense_s"] = cold_start(str(corpus), hyb_dir, qs[0], str(model))
    if peers:
        r["peers"] = bench_peers(hyb, hyb_search, str(model), qs, gold)
    return r


def bench_peers(index: Index, ours: Searcher, model: str, qs: list[str], gold: list[str]) -> dict:
    """Per-query latency measured interleaved, and recall@1.

    The order of the three systems rotates with each question. Each question is timed
    twice: after an idle pause of ``PAUSE_S`` (a chat bot's questions arrive seconds apart)
    and back to back, right after another system's call, whose weights then fill the caches
    and whose torch threads may still be spinning.
    """
    peers = Peers(index, model)

    def newsqa_top(q: str) -> str | None:
        hits = ours.search(q)  # the default five passages, as users get them
        return hits[0].chunk.article if hits else None

    run = {"newsqa": newsqa_top, "langchain": peers.langchain_top, "txtai": peers.txtai_top}
    out: dict = {k: {} for k in run}
    for key, pause in (("query_ms", PAUSE_S), ("query_ms_back_to_back", 0.0)):
        times, right = _interleaved(run, qs, gold, pause)
        for k in run:
            out[k][key] = pct(times[k])
            out[k]["recall1"] = round(right[k] / len(qs), 4)
    out["pause_ms"] = PAUSE_S * 1000
    out["langchain"]["build_s_excluding_embedding"] = round(peers.langchain_build_s, 2)
    out["txtai"]["build_s_including_embedding"] = round(peers.txtai_build_s, 2)
    for k in ("langchain", "txtai"):
        for key, ratio in (("query_ms", "newsqa_over_peer_p50"),
                           ("query_ms_back_to_back", "newsqa_over_peer_p50_back_to_back")):
            out[k][ratio] = round(out["newsqa"][key]["p50"] / out[k][key]["p50"], 4)
    return out


def _interleaved(run: dict, qs: list[str], gold: list[str],
                 pause: float) -> tuple[dict[str, list[float]], dict[str, int]]:
    names = list(run)
    times: dict[str, list[float]] = {k: [] for k in names}
    right = dict.fromkeys(names, 0)
    for n, (q, g) in enumerate(zip(qs, gold, strict=True)):
        for k in names[n % 3:] + names[:n % 3]:
            if pause:
                time.sleep(pause)
            top, s = timed(run[k], q)
            times[k].append(s)
            right[k] += top == g
    return times, right


# --- synthetic scale --------------------------------------------------------------------

def build_synth(shared: Path, n: int) -> tuple[Path, dict]:
    """The lexical index of N synthetic chunks, built once in a fresh process (time, peak RSS)."""
    corpus = synth.write_corpus(shared, n, WORK / f"synth-{n}")
    idx = WORK / f"synth-{n}-index"
    record = WORK / f"synth-{n}-build.json"
    if not (idx / "manifest.json").exists() or not record.exists():
        code = ("import sys,time,json;from retrieval import build_index,Settings;"
                "from benchmarks.probe import peak_rss_mb;"
                "t=time.perf_counter();_,r=build_index(sys.argv[1],sys.argv[2],Settings(model=''),"
                "rebuild=True);print(json.dumps({'s':time.perf_counter()-t,'chunks':r.chunks,"
                "'rss':peak_rss_mb()}))")
        out = subprocess.run([sys.executable, "-c", code, str(corpus), str(idx)], text=True,
                             capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            return idx, {"error": out.stderr.strip().splitlines()[-1][:300]}
        record.write_text(out.stdout.strip().splitlines()[-1])
    return idx, json.loads(record.read_text())


def bench_scale(shared: Path, n: int, questions: list[str], dim: int) -> dict:
    """Lexical build and serving on N synthetic chunks; FAISS on N random unit vectors."""
    idx, b = build_synth(shared, n)
    r: dict = {"chunks_target": n}
    if "error" in b:
        r["lexical_build_error"] = b["error"]
        return r
    r.update(chunks=b["chunks"], lexical_build_s=round(b["s"], 1),
             lexical_build_rss_mb=round(b["rss"]), lexical_size_mb=du(idx))
    r["serve_lexical"] = probe(idx, questions[:300])
    r["faiss"] = bench_faiss(n, dim)
    return r


def bench_faiss(n: int, dim: int, queries: int = 200, threshold: int = 50_000,
                reranks: tuple[int, ...] = (1000, 2000, 4000, 8000)) -> dict:
    """Build the index newsqa would build for N random unit vectors; search p50 and
    recall@10 vs flat at newsqa's default re-rank depth and across a sweep of depths."""
    rng = np.random.default_rng(0)
    vecs = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):  # in batches, so 1M vectors never exist twice
        block = rng.standard_normal((min(100_000, n - s), dim), dtype=np.float32)
        vecs[s:s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = rng.standard_normal((queries, dim), dtype=np.float32)
    q = (vecs[rng.integers(0, n, queries)] + 0.3 * q / np.linalg.norm(q, axis=1, keepdims=True))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = ann_recall(vecs, q, threshold, reranks)
    out["vectors_mb"] = round(vecs.nbytes / 1e6)
    return out


def ann_recall(vecs: np.ndarray, q: np.ndarray, threshold: int, reranks: tuple[int, ...]) -> dict:
    """Search latency and recall@10 against exact search, per re-rank depth when PQ."""
    import faiss

    ann, build_s = timed(VectorIndex.build, vecs, threshold)
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    truth, t_flat = [], []
    for i in range(len(q)):
        (_, ids), s = timed(flat.search, q[i:i + 1], 10)
        truth.append(set(ids[0]))
        t_flat.append(s)
    default = Settings().rerank

    def run(rerank: int | None) -> dict:
        t, found = [], 0
        for i in range(len(q)):
            (_, ids), s = timed(ann.search, q[i:i + 1], 10, rerank)
            t.append(s)
            found += len(set(ids[0]) & truth[i])
        return {"search_ms": pct(t), "recall10_vs_flat": round(found / (10 * len(q)), 4)}

    out = {"kind": ann.kind, "shards": ann.shards, "build_s": round(build_s, 1),
           "flat_search_ms": pct(t_flat), "rerank": default if ann.kind == "pq" else None,
           **run(default)}
    if ann.kind == "pq":
        out["sweep"] = {str(r): run(r) for r in reranks}
    return out


def bench_real_vectors(path: Path, queries: Path, threshold: int) -> dict:
    """ANN recall on vectors from a real trained model (made by
    benchmarks/embed_real.py), where random vectors are the worst case."""
    vecs = np.load(path, mmap_mode="r")
    n = int(np.flatnonzero(np.abs(vecs).sum(axis=1) > 0)[-1]) + 1  # rows written so far
    vecs = np.ascontiguousarray(vecs[:n])
    out = ann_recall(vecs, np.load(queries)[:300], threshold, (500, 1000, 2000, 4000))
    out["chunks"] = n
    return out


def embed_throughput(model: Path, texts: list[str]) -> dict:
    from retrieval import Embedder

    out = {}
    for bs in (8, 32, 64):
        emb = Embedder(str(model), batch_size=bs, allow_download=False)
        emb.embed_passages(texts[:8])
        _, s = timed(emb.embed_passages, texts)
        out[str(bs)] = round(len(texts) / s, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared"))
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--skip-corpora", action="store_true", help="only the synthetic scale runs")
    p.add_argument("--skip-scale", action="store_true", help="only seeds and CMRC")
    args = p.parse_args()
    shared = Path(args.shared)
    WORK.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    results_file = OUT / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["machine"] = machine()
    cmrc_corpus, cmrc_q = load_cmrc(shared / "bench" / "cmrc2018", ROOT / ".newsqa" / "cmrc2018-corpus")
    texts = [to_simplified(p.read_text("utf-8")) for p in sorted(cmrc_corpus.glob("*.md"))]
    model = random_model.build(WORK / "bge-small-zh-random", texts + [
        p.read_text("utf-8") for p in (ROOT / "seeds").glob("*.txt")])
    if not args.skip_corpora:
        chunks = [t.split("---", 2)[-1].strip()[:200] for t in texts[:512]]
        results["embedding_chunks_per_s"] = embed_throughput(model, chunks)
        print("embedding", results["embedding_chunks_per_s"], flush=True)
        seeds_q = [q for q in load_gold(ROOT / "retrieval" / "gold" / "seeds.jsonl") if q.article]
        results["seeds"] = bench_corpus("seeds", ROOT / "seeds", seeds_q, model, not args.no_peers)
        print("seeds", json.dumps(results["seeds"])[:400], flush=True)
        results["cmrc"] = bench_corpus("cmrc", cmrc_corpus, cmrc_q, model, not args.no_peers)
        print("cmrc", json.dumps(results["cmrc"])[:400], flush=True)
        results_file.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    real = WORK / "minilm-synth-100000.npy"
    if real.exists():
        results["real_vectors"] = bench_real_vectors(real, WORK / "minilm-questions.npy", 1)
        print("real vectors", json.dumps(results["real_vectors"]), flush=True)
    results.setdefault("scale", {})
    for n in [] if args.skip_scale else map(int, args.sizes.split(",")):
        results["scale"][str(n)] = bench_scale(shared, n, [q.question for q in cmrc_q], 512)
        print(n, json.dumps(results["scale"][str(n)]), flush=True)
        results_file.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    from benchmarks.report import write_report

    write_report(results, ROOT / "benchmarks")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
