"""Per-question embedding time of the ONNX query encoder's export variants.

The variants are made from the random bge-small-zh-architecture model of
benchmarks/run.py: the plain full graph, the graph whose last layer computes
[CLS] only, that graph with onnxruntime's BERT fusions, and the fused graph with
8-bit weights: per block of 32 (MatMulNBits) and per channel with dynamic activation
scales (QAttention + MatMulInteger, what newsqa builds now when its vectors pass the check).
They are timed interleaved on CMRC questions in three states: back to back, after
evicting the caches (a 400 MB scan between questions), and after 20 ms idle. Last,
the CPU onnxruntime's threads burn after a question, spinning or stopped.
The variants take turns, so even back to back each question finds the other variants'
weights in cache, not its own. Each variant's vectors are compared with
sentence-transformers first. Then where the asking thread runs during a question: held on
the first core (newsqa), left where the OS puts it, or on the worker thread's core.

    python benchmarks/query_encoder.py --shared ../shared   # after benchmarks/run.py
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / ".newsqa" / "bench" / "bge-small-zh-random" / "model"

from retrieval import Embedder  # noqa: E402
from retrieval.evaluate import load_cmrc  # noqa: E402
from retrieval.onnx_query import OnnxQueryEncoder, _eager_attention, _export_variant  # noqa: E402


def variants(model_dir: Path, out: Path) -> dict[str, OnnxQueryEncoder]:
    embedder = Embedder(str(model_dir), allow_download=False)
    embedder.embed_queries(["预热"])
    st = embedder._model
    model = st[0].auto_model.eval()
    st[0].tokenizer.backend_tokenizer.save(str(out / "tok.json"))
    enc = st.tokenizer(["测试", "党建引领基层治理"], padding=True, return_tensors="pt")
    info = {"tokenizer": "tok.json", "pooling": "cls", "max_length": 512, "prompt": "",
            "normalize": True}
    _export_variant(model, enc, out / "full.onnx", "full", False)  # what newsqa built before
    with _eager_attention(model):  # as newsqa exports now
        _export_variant(model, enc, out / "cls.onnx", "cls", False)
        _export_variant(model, enc, out / "cls-fused.onnx", "cls", True)
        _export_variant(model, enc, out / "cls-fused-int8.onnx", "cls", True, "blocks")
        _export_variant(model, enc, out / "cls-fused-dyn8.onnx", "cls", True, "dynamic")
    return {name: OnnxQueryEncoder(out, {**info, "onnx": f"{name}.onnx"})
            for name in ("full", "cls", "cls-fused", "cls-fused-int8", "cls-fused-dyn8")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared"))
    p.add_argument("--questions", type=int, default=400)
    args = p.parse_args()
    out = ROOT / ".newsqa" / "bench" / "query-variants"
    out.mkdir(parents=True, exist_ok=True)
    _, gold = load_cmrc(Path(args.shared) / "bench" / "cmrc2018", ROOT / ".newsqa" / "cmrc2018-corpus")
    qs = [q.question for q in gold if q.question.strip()][:args.questions]
    encoders = variants(MODEL, out)
    ref = Embedder(str(MODEL), allow_download=False).embed_queries(qs[:50])
    for name, e in encoders.items():
        cos = float(np.min(np.sum(e.embed_queries(qs[:50]) * ref, axis=1)))
        print(f"{name}: min cosine vs sentence-transformers {cos:.6f}")
    junk = np.ones(50_000_000)  # 400 MB, larger than any cache here
    names = list(encoders)
    print("| state | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(names))
    for state in ("back to back", "caches evicted", "after 20 ms idle"):
        t: dict[str, list[float]] = {k: [] for k in names}
        for n, q in enumerate(qs):
            for k in names[n % len(names):] + names[:n % len(names)]:
                if state == "caches evicted":
                    junk.sum()
                elif state != "back to back":
                    time.sleep(0.02)
                began = time.perf_counter()
                encoders[k].embed_queries([q])
                t[k].append(time.perf_counter() - began)
        print(f"| {state} | " + " | ".join(f"{np.median(t[k]) * 1000:.2f} ms" for k in names)
              + " |")
    placement(encoders["cls-fused-dyn8"], qs[:200])
    spinning(encoders["cls-fused-dyn8"], out / "cls-fused-dyn8.onnx", qs[:100])


def placement(encoder: OnnxQueryEncoder, qs: list[str]) -> None:
    """p50 after 50 ms idle by where the asking thread runs, the placements taking turns."""
    layout = encoder._layout
    if not layout.affinities:
        print("\n(one core: no thread placement to compare)")
        return
    worker = frozenset(int(c) - 1 for c in layout.affinities.split(";")[0].split(","))
    cases = {"held on the first core (newsqa)": layout,
             "left where the OS puts it": replace(layout, caller=frozenset()),
             "on the worker thread's core": replace(layout, caller=worker)}
    t: dict[str, list[float]] = {k: [] for k in cases}
    for n, q in enumerate(qs):
        for k in list(cases)[n % 3:] + list(cases)[:n % 3]:
            encoder._layout = cases[k]
            time.sleep(0.05)
            began = time.perf_counter()
            encoder.embed_queries([q])
            t[k].append(time.perf_counter() - began)
    encoder._layout = layout
    print("\n| asking thread during a question | p50 after 50 ms idle | p90 |\n| --- | --- | --- |")
    for k, v in t.items():
        print(f"| {k} | {np.median(v) * 1000:.2f} ms | {np.percentile(v, 90) * 1000:.2f} ms |")


def spinning(encoder: OnnxQueryEncoder, path: Path, qs: list[str]) -> None:
    """Latency after 300 ms idle, and the process's CPU time in the 100 ms after each
    question, with onnxruntime's threads left spinning (its default) and stopped when a
    question is answered (newsqa's setting)."""
    import onnxruntime

    print("\n| onnxruntime threads after a question | p50 after 300 ms idle | CPU in the next 100 ms |"
          "\n| --- | --- | --- |")
    for label, stop in (("left spinning (default)", "0"), ("stopped (newsqa)", "1")):
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.force_spinning_stop", stop)
        options.intra_op_num_threads = encoder._layout.threads
        if encoder._layout.affinities:
            options.add_session_config_entry("session.intra_op_thread_affinities",
                                             encoder._layout.affinities)
        encoder._session = onnxruntime.InferenceSession(str(path), options,
                                                        providers=["CPUExecutionProvider"])
        encoder.embed_queries(["预热"])
        t, cpu = [], []
        for q in qs:
            time.sleep(0.3)
            began = time.perf_counter()
            encoder.embed_queries([q])
            t.append(time.perf_counter() - began)
            before = time.process_time()  # all of the process's threads
            time.sleep(0.1)
            cpu.append(time.process_time() - before)
        print(f"| {label} | {np.median(t) * 1000:.2f} ms | {np.mean(cpu) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
