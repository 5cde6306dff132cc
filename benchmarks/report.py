"""RESULTS.md and scale.png from ``benchmarks/out/results.json`` (``python -m benchmarks.report``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from retrieval.settings import Settings  # noqa: E402

RERANK = Settings().rerank


def _ms(d: dict) -> str:
    return f"{d['p50']:.2f} / {d['p99']:.2f}"


def write_report(r: dict, folder: Path = HERE) -> None:
    m = r["machine"]
    lines = [
        "# Benchmark results", "",
        f"Measured {m['date']} on {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['cpu']}, "
        f"Python {m['python']}. Reproduce: `pip install -e \".[bench]\" && python benchmarks/run.py "
        f"--shared ../shared` (all figures below come from `benchmarks/out/results.json`).", "",
        "Dense figures use a randomly initialised model with BAAI/bge-small-zh-v1.5's published "
        "architecture (BERT, hidden 512, 4 layers, 8 heads, intermediate 2048, vocabulary 21,128), "
        "built locally because no model hub is reachable here: representative for speed and memory, "
        "not for quality. Recall with that model is only comparable across systems, not meaningful "
        "on its own.", ""]
    if "embedding_chunks_per_s" in r:
        e = r["embedding_chunks_per_s"]
        lines += ["## Embedding throughput (real CMRC chunk text, ≤200 characters)", "",
                  "| batch size | chunks/s |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in e.items()]
        lines += [""]
    for key in ("seeds", "cmrc"):
        if key not in r:
            continue
        c = r[key]
        sl, sh = c["serve_lexical"], c["serve_hybrid"]
        lines += [f"## {key}: {c['articles']} articles, {c['chunks']} chunks", "",
                  "| figure | value |", "| --- | --- |",
                  f"| index build, lexical | {c['lexical_build_s']:.2f} s |",
                  f"| index build, dense (embedding + FAISS) | {c['dense_build_s']:.2f} s |",
                  f"| index size, lexical / hybrid | {c['lexical_size_mb']} / {c['hybrid_size_mb']} MB |",
                  f"| query p50 / p99, lexical (BM25 scores) | {_ms(c['lexical_ms'])} ms |",
                  f"| query p50 / p99, dense search (query embedding excluded) | {_ms(c['dense_search_ms'])} ms |",
                  f"| query p50 / p99, hybrid (query embedding included) | {_ms(c['hybrid_ms'])} ms |",
                  f"| full answer p50 / p99 (hybrid + composer) | {_ms(c['answer_ms'])} ms |",
                  f"| serving peak RSS, lexical / hybrid | {sl['rss_mb']:.0f} / {sh['rss_mb']:.0f} MB |",
                  f"| index load, lexical / hybrid | {sl['load_s']:.2f} / {sh['load_s']:.2f} s |",
                  f"| cold `newsqa ask`, lexical index | {c['cold_ask_lexical_s']:.2f} s |",
                  f"| cold `newsqa ask`, dense model active | {c['cold_ask_dense_s']:.2f} s |",
                  f"| recall@1 (right article first), lexical | {c['recall1_lexical']:.3f} |",
                  f"| recall@1, hybrid with the random model | {c['recall1_hybrid_random_model']:.3f} |",
                  ""]
        if "peers" in c:
            lines += _peers(key, c["peers"])
    scale = r.get("scale", {})
    if scale:
        lines += ["## Synthetic corpora (CMRC sentences recombined, seeded)", "",
                  "Lexical figures are on the real index; FAISS figures on random unit vectors of "
                  "dimension 512 (the index newsqa builds: flat below 50,000 chunks; from there "
                  "4-bit PQ fast-scan codes, in two shards searched in parallel from 200,000, whose "
                  f"best {RERANK:,} candidates are re-ranked with the exact vectors). Embedding the "
                  "corpus itself would take N / (chunks/s above).", "",
                  "| chunks | lexical build | build peak RSS | lexical size | index load | serving RSS "
                  "| lexical p50 / p99 | answer p50 / p99 | FAISS build | dense search p50 / p99 | "
                  "recall@10 vs flat | flat p50 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for n, s in sorted(scale.items(), key=lambda kv: int(kv[0])):
            if "serve_lexical" not in s:
                lines.append(f"| {n} | failed: {s.get('lexical_build_error', '?')} |")
                continue
            sv, f = s["serve_lexical"], s["faiss"]
            head = f.get("sweep", {}).get(str(RERANK), f)  # figures at the current default
            lines.append(
                f"| {s['chunks']:,} | {s['lexical_build_s']} s | {s['lexical_build_rss_mb']:,} MB | "
                f"{s['lexical_size_mb']} MB | {sv['load_s']:.2f} s | {sv['rss_mb']:.0f} MB | "
                f"{_ms(sv['lexical_ms'])} ms | {_ms(sv['answer_ms'])} ms | {f['build_s']} s ({f['kind']}) | "
                f"{_ms(head['search_ms'])} ms | {head['recall10_vs_flat']:.3f} | "
                f"{f['flat_search_ms']['p50']:.2f} ms |")
        lines += ["", "![latency and memory against corpus size](scale.png)", ""]
        plot(scale, r, folder / "scale.png")
        lines += _sweeps(scale, r.get("real_vectors"))
    notes = folder / "notes.md"
    if notes.exists():
        lines += [notes.read_text("utf-8").rstrip(), ""]
    (folder / "RESULTS.md").write_text("\n".join(lines), "utf-8")


def _sweeps(scale: dict, real: dict | None) -> list[str]:
    """PQ re-rank depth against recall@10 and latency, on random and real-model vectors."""
    rows = [(f"{s['chunks']:,} random unit vectors (512-d)", s["faiss"])
            for _, s in sorted(scale.items(), key=lambda kv: int(kv[0]))
            if s.get("faiss", {}).get("sweep")]
    if real and real.get("sweep"):
        rows.append((f"{real['chunks']:,} all-MiniLM-L6-v2 embeddings of synthetic chunks "
                     f"(384-d), real questions", real))
    if not rows:
        return []
    out = ["## PQ scan + exact re-rank: depth against recall", "",
           "Dense search p50 (query embedding excluded) and recall@10 against exact search, per "
           f"number of PQ candidates re-ranked exactly (`Settings.rerank`, default {RERANK:,}).", "",
           "| vectors | flat p50 | re-ranked | search p50 / p99 | recall@10 vs flat |",
           "| --- | --- | --- | --- | --- |"]
    for name, f in rows:
        for depth, v in f["sweep"].items():
            out.append(f"| {name} | {f['flat_search_ms']['p50']:.2f} ms | {int(depth):,} | "
                       f"{_ms(v['search_ms'])} ms | {v['recall10_vs_flat']:.3f} |")
    return [*out, ""]


def _peers(key: str, p: dict) -> list[str]:
    def row(name: str, k: str, build: str) -> str:
        q = p[k]
        idle = q.get("newsqa_over_peer_p50")
        b2b = q.get("newsqa_over_peer_p50_back_to_back")
        ratio = "1" if idle is None else f"{idle:.3f} ({1 / idle:.1f}×)"
        ratio2 = "1" if b2b is None else f"{b2b:.3f} ({1 / b2b:.1f}×)"
        return (f"| {name} | {_ms(q['query_ms'])} ms | {ratio} | "
                f"{q['query_ms_back_to_back']['p50']:.2f} ms | {ratio2} | {q['recall1']:.3f} | "
                f"{build} |")

    return [f"Peers on {key} (same passages, tokenization and model; hybrid retrieval including "
            "the query embedding). Latency is measured interleaved, one question to each system "
            "in turn, the order rotating per question; each question is timed after an idle "
            f"pause of {p['pause_ms']:.0f} ms, as a chat bot's questions arrive, and again back to "
            "back, right after another system's call (whose weights then fill the caches and "
            "whose torch threads may still be spinning):", "",
            "| system | p50 / p99 after idle | newsqa / peer | p50 back to back | newsqa / peer | "
            "recall@1 | build |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            row("newsqa", "newsqa", "see above"),
            row("LangChain (BM25Retriever + FAISS + EnsembleRetriever)", "langchain",
                f"{p['langchain']['build_s_excluding_embedding']} s, embedding excluded"),
            row("txtai hybrid Embeddings", "txtai",
                f"{p['txtai']['build_s_including_embedding']} s, embedding included"), ""]


def plot(scale: dict, r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(s["chunks"], s) for s in scale.values() if "serve_lexical" in s]
    for key in ("seeds", "cmrc"):
        if key in r:
            pts.append((r[key]["chunks"], {"serve_lexical": r[key]["serve_lexical"]}))
    pts.sort(key=lambda p: p[0])
    xs = [p[0] for p in pts]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(xs, [p[1]["serve_lexical"]["lexical_ms"]["p50"] for p in pts], "o-", label="lexical p50")
    a.plot(xs, [p[1]["serve_lexical"]["answer_ms"]["p50"] for p in pts], "s-", label="full answer p50")
    fx = [s["chunks"] for s in scale.values() if "faiss" in s]
    a.plot(fx, [s["faiss"].get("sweep", {}).get(str(RERANK), s["faiss"])["search_ms"]["p50"]
                for s in scale.values() if "faiss" in s], "^-",
           label="dense search p50")
    a.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms", title="query latency")
    a.legend()
    b.plot(xs, [p[1]["serve_lexical"]["rss_mb"] for p in pts], "o-", label="serving RSS (lexical)")
    b.plot([s["chunks"] for s in scale.values() if "lexical_build_rss_mb" in s],
           [s["lexical_build_rss_mb"] for s in scale.values() if "lexical_build_rss_mb" in s], "s-",
           label="index build peak RSS")
    b.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MB", title="memory")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    write_report(json.loads((HERE / "out" / "results.json").read_text()))
