"""Synthetic corpora of N chunks made by recombining CMRC 2018 sentences (seeded).

Each article holds ten paragraphs; each paragraph is CMRC sentences drawn at
random while it stays within 200 characters, so one paragraph is one chunk
at the default chunk size. The same seed and N always give the same files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from retrieval.text import split_sentences

PARAGRAPHS_PER_ARTICLE = 10
MAX_CHARS = 200  # the default chunk size: one paragraph, one chunk


def cmrc_sentences(shared: Path) -> list[str]:
    """Every sentence of the CMRC 2018 dev + trial contexts, in file order."""
    out: list[str] = []
    for name in ("squad_cmrc2018_dev.json", "squad_cmrc2018_trial.json"):
        data = json.loads((shared / "bench" / "cmrc2018" / name).read_text("utf-8"))["data"]
        for doc in data:
            for para in doc["paragraphs"]:
                text = para["context"].replace("\n", "")
                out += [text[a:b] for a, b in split_sentences(text) if b - a >= 8]
    return out


def write_corpus(shared: Path, chunks: int, folder: Path, seed: int = 13) -> Path:
    """Write a corpus of about ``chunks`` chunks to ``folder`` (skipped if already there)."""
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sentences = cmrc_sentences(shared)
    articles = (chunks + PARAGRAPHS_PER_ARTICLE - 1) // PARAGRAPHS_PER_ARTICLE
    for i in range(articles):
        paragraphs = []
        for _ in range(PARAGRAPHS_PER_ARTICLE):
            para = rng.choice(sentences)[:MAX_CHARS]
            while True:
                nxt = rng.choice(sentences)
                if len(para) + len(nxt) > MAX_CHARS:
                    break
                para += nxt
            paragraphs.append(para)
        head = f"---\ntitle: 合成文章{i}\nsource: CMRC重组\ndate: 2024-01-01\n---\n\n"
        (folder / f"s{i:07d}.md").write_text(head + "\n\n".join(paragraphs) + "\n", "utf-8")
    done.write_text(str(chunks))
    return folder
