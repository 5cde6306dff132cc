"""A randomly initialised model with BAAI/bge-small-zh-v1.5's published architecture.

BERT, hidden 512, 4 layers, 8 heads, intermediate 2048, vocabulary 21,128,
CLS pooling and normalisation: representative for speed and memory, not for
quality (the weights are random).
"""

from __future__ import annotations

from pathlib import Path

VOCAB_SIZE = 21_128


def build(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """Save the model under ``folder`` (reused when already there) and return its path."""
    out = folder / "model"
    if (out / "modules.json").exists():
        return out
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted({ch for t in texts for ch in t if not ch.isspace()})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = (specials + chars)[:VOCAB_SIZE]
    vocab += [f"[unused{i}]" for i in range(VOCAB_SIZE - len(vocab))]
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True,
                                  tokenize_chinese_chars=True)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=512, num_hidden_layers=4,
                        num_attention_heads=8, intermediate_size=2048,
                        max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=512)
    pooling = models.Pooling(512, pooling_mode="cls")
    SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu").save(str(out))
    return out
