"""Shared fixtures: the seeds, a lexical index, and a tiny SentenceTransformer built here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retrieval import Index, Settings, build_index

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SIMP = "000_c12282a6cabd5aaa"
TRAD = "004_b0fc71c2d7233b1d"


def make_tiny_model(folder: Path, texts: list[str], hidden: int = 32,
                    pooling: str = "mean", init: float = 0.02) -> Path:
    """A randomly initialised BERT sentence-transformer whose vocabulary is the
    characters of ``texts``, saved to ``folder`` so it loads by path like any model
    (``pooling="cls"`` adds normalisation, as the bge models have)."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted({ch for t in texts for ch in t if not ch.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True,
                                  tokenize_chinese_chars=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=hidden * 2,
                        max_position_embeddings=512, initializer_range=init)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=256)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = models.Pooling(dim(), pooling_mode=pooling)
    modules = [word, pool] + ([models.Normalize()] if pooling == "cls" else [])
    out = folder / "model"
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    shutil.rmtree(raw)
    return out


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the seeds."""
    dst = tmp_path / "corpus"
    shutil.copytree(SEEDS, dst)
    return dst


@pytest.fixture(scope="session")
def lexical_index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    folder = tmp_path_factory.mktemp("lexical-index")
    index, _ = build_index(SEEDS, folder, Settings(model=""))
    return index


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [p.read_text("utf-8") for p in SEEDS.glob("*.txt")]
    from retrieval.text import to_simplified

    texts += [to_simplified(t) for t in texts] + ["为这个句子生成表示以用于检索相关文章：测试预热"]
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), texts)


@pytest.fixture(scope="session")
def tiny_cls_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``tiny_model`` with CLS pooling and normalisation, the bge models' pipeline."""
    texts = [p.read_text("utf-8") for p in SEEDS.glob("*.txt")]
    # Larger weights than BERT's 0.02 so attention visibly moves [CLS]: at 0.02 the residual
    # dominates and a last layer that attended to padding would still pass the checks.
    return make_tiny_model(tmp_path_factory.mktemp("tiny-cls-model"), texts, pooling="cls",
                           init=0.5)
