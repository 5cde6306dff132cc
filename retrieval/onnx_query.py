"""Embeddings without torch: an ONNX export of the model, run by onnxruntime.

Importing sentence-transformers costs about 5.5 s here, more than a whole
cold ``newsqa ask`` may take. At index time the model's transformer is
exported beside the vectors and checked against sentence-transformers on
sample questions and the corpus's own text (cosine >= 0.9999); at question
time only onnxruntime and tokenizers load. Models whose pipeline is not
transformer + CLS/mean pooling (+ normalisation) are not exported and keep
using sentence-transformers.

The word-embedding table stays outside the graph, in a file of its own looked
up with numpy (4-bit blocks, 8-bit rows or float16: the smallest whose vectors
pass the check): multilingual models have 250,000 rows, 384 MB in float, and a
question needs twenty of them. When passages embedded by the export also pass
(cosine >= 0.999), the index builder embeds every passage with it: 8-bit
weights run several times faster than torch's float ones on a small CPU.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .threads import cpu_layout, held_on
from .unigram import UnigramTokenizer

MIN_COSINE = 0.9999
PASSAGE_MIN_COSINE = 0.999
PASSAGE_CHECKS = 16
TABLES = ("q4", "int8", "f16")  # word-table storage, smallest first
CHECK_CHARS = 48  # corpus text the export is checked on is cut to a question's length
_SAMPLES = ("单光屯社区化解了多少矛盾？", "郑永强是谁？", "哪个村种芹菜", "2023年常住人口有多少",
            "What is BM25?", "党建引领基层治理", "Who leads the party branch of the village in 2023?",
            "天津同仁堂 last year 實現產值多少？", "芹菜", "书记", "Tianjin")


def available() -> bool:
    """Whether exporting is possible (onnx and onnxruntime installed)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def export(embedder: Any, folder: Path, stem: str, texts: tuple[str, ...] = (),
           passages: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None, str]:
    """Export ``embedder``'s loaded model as ``stem.onnx`` + ``stem.tokenizer.json`` +
    ``stem.words.npy`` (the word-embedding table).

    Args:
        embedder: The loaded model.
        folder: Where the files go.
        stem: File name stem.
        texts: Extra text from the corpus the export is checked on, besides sample questions.
        passages: Whole passages (as they are embedded) on which passage embedding is checked.

    Returns:
        The manifest entry (None if not exported) and a reason when not exported. The entry's
        ``passages`` says whether the export may embed passages too.
    """
    from sentence_transformers import models

    st = embedder._model
    modules = list(st)
    if not modules or not isinstance(modules[0], models.Transformer) or len(modules) > 3 or \
            len(modules) < 2 or not isinstance(modules[1], models.Pooling):
        return None, "model pipeline is not transformer + pooling"
    pooling = modules[1]
    mode = _pooling_mode(pooling)
    if mode is None or (len(modules) == 3 and not isinstance(modules[2], models.Normalize)):
        return None, "pooling is neither CLS nor mean"
    backend = getattr(st.tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None, "the tokenizer is not a fast tokenizer"
    model = modules[0].auto_model.eval()
    table = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if table is None:
        return None, "the model has no word-embedding table"
    enc = dict(st.tokenizer(["测试", "党建引领基层治理"], padding=True, return_tensors="pt"))
    names = {"onnx": f"{stem}.onnx", "tokenizer": f"{stem}.tokenizer.json",
             "words": f"{stem}.words.npy"}
    info = {**names, "pooling": mode, "max_length": int(modules[0].max_seq_length),
            "prompt": embedder.query_prompt or "", "passage_prompt": embedder.passage_prompt or "",
            "normalize": True, "token_types": "token_type_ids" in enc, "tokenizer_kind": "tokenizers"}
    checks = list(_SAMPLES) + [t[:CHECK_CHARS] for t in texts]
    info["tokenizer_kind"] = _save_tokenizer(embedder, backend, folder / names["tokenizer"],
                                             info, [*checks, *passages])
    ref = embedder.embed_queries(checks)
    sample = list(passages[:PASSAGE_CHECKS])
    t0 = time.perf_counter()
    passage_ref = embedder.embed_passages(sample) if sample else None
    info["passage_seconds_torch"] = round(time.perf_counter() - t0, 3)
    weights = table.weight.detach().float().numpy()
    # The CLS-only graph is tried first; whatever it gets wrong, the full one still works.
    # Of a graph, the plain export picks the smallest word table that passes; then
    # onnxruntime's transformer fusions and 8-bit weights (per-tensor activation scales, or
    # per block) are derived from it, and of the variants whose vectors pass the check the
    # fastest on this machine is kept (or a smaller one almost as fast): 8-bit is faster only
    # where the CPU multiplies int8 quickly (measured with AVX2 alone: 13.2 ms per question
    # per block, float 12.6 ms; per-tensor activation scales fail the check for e5).
    graphs = ["cls", "full"] if mode == "cls" else ["full"]
    why = ""
    passing: list[tuple[float, dict[str, Any], Path]] = []
    made: list[Path] = []
    with _eager_attention(model):
        for graph in graphs:
            plain = folder / f"{stem}.{graph}.onnx"
            try:
                if not _export_variant(model, enc, plain, graph, False):
                    continue
            except Exception as exc:  # an export failure only costs speed, never the index
                why = f"ONNX export failed ({type(exc).__name__}: {exc})"
                continue
            made.append(plain)
            table = None
            for kind in TABLES:
                kind = save_table(weights, folder / names["words"], kind)
                # A lossy table must leave room for the 8-bit graphs' own error: it passes
                # at half the distance the whole encoder may have.
                result, why = _check(folder, {**info, "onnx": plain.name, "table": kind,
                                              "graph": graph, "fused": False, "quant": ""},
                                     checks, ref, sample, passage_ref,
                                     1 - (1 - MIN_COSINE) / 2 if kind != "f16" else MIN_COSINE)
                if result is not None:
                    table = kind
                    passing.append((*result, plain))
                    break
            if table is None:
                continue
            for fused, quant in ((True, ""), (True, "dynamic"), (True, "blocks")):
                path = folder / f"{stem}.{graph}.{'fused' if fused else ''}{quant}.onnx"
                try:
                    shutil.copyfile(plain, path)
                    made.append(path)
                    _fuse(path, model.config)
                    if quant:
                        _quantize(path, quant)
                except Exception as exc:
                    why = f"ONNX export failed ({type(exc).__name__}: {exc})"
                    continue
                result, why = _check(folder, {**info, "onnx": path.name, "table": table,
                                              "graph": graph, "fused": fused, "quant": quant},
                                     checks, ref, sample, passage_ref)
                if result is not None:
                    passing.append((*result, path))
            if passing:
                break  # the CLS-only graph passed: the full one would only be slower
    if passing:
        # Of the variants within 15% of the fastest, the smallest file (8-bit weights take
        # 40 MB of multilingual-e5-small's 86).
        fastest = min(ms for ms, _, _ in passing)
        _, entry, path = min((p for p in passing if p[0] <= 1.15 * fastest),
                             key=lambda p: p[2].stat().st_size)
        os.replace(path, folder / names["onnx"])
        for other in made:
            other.unlink(missing_ok=True)
        return {**entry, **names}, ""
    for path in [*made, *(folder / n for n in names.values())]:
        path.unlink(missing_ok=True)
    return None, why


def _check(folder: Path, info: dict[str, Any], checks: list[str], ref: np.ndarray,
           sample: list[str], passage_ref: np.ndarray | None, min_cosine: float = MIN_COSINE
           ) -> tuple[tuple[float, dict[str, Any]] | None, str]:
    """Load one variant and compare its vectors with sentence-transformers'.

    Returns:
        (milliseconds per question, manifest entry) when it passes, and why not otherwise.
    """
    try:
        encoder = OnnxQueryEncoder(folder, info)
        vecs = encoder.embed_queries(checks)
    except Exception as exc:
        return None, f"ONNX export failed ({type(exc).__name__}: {exc})"
    cos = float(np.min(np.sum(vecs * ref, axis=1)))
    if cos < min_cosine:
        return None, f"ONNX vectors differ from sentence-transformers (cosine {cos:.5f})"
    passage_cos, passage_seconds = None, None
    if passage_ref is not None:
        t0 = time.perf_counter()
        passage_cos = float(np.min(np.sum(encoder.embed_passages(sample) * passage_ref, axis=1)))
        passage_seconds = time.perf_counter() - t0
    times = []
    for question in _SAMPLES * 2:
        t0 = time.perf_counter()
        encoder.embed_queries([question])
        times.append(time.perf_counter() - t0)
    encoder.close()
    quant = info["quant"]
    entry = {**info, "int8": bool(quant), "quant": quant or "none",
             "cosine_min": round(cos, 6), "checked": len(checks),
             "passage_cosine_min": None if passage_cos is None else round(passage_cos, 6),
             # Passages go through the export only when it is also faster than torch here
             # (8-bit per block was slower for whole passages on an AVX2-only CPU: 11 vs 15/s).
             "passages": passage_cos is not None and passage_cos >= PASSAGE_MIN_COSINE
             and passage_seconds is not None
             and passage_seconds < info.get("passage_seconds_torch", float("inf")),
             "ms_per_question": round(1000 * float(np.median(times)), 2)}
    return (float(np.median(times)), entry), ""


def _save_tokenizer(embedder: Any, backend: Any, path: Path, info: dict[str, Any],
                    texts: list[str]) -> str:
    """Write the tokenizer: the quick-loading unigram form when the model has one and it gives
    the library's ids on ``texts`` (with both prompts), else the library's own file."""
    from .packaged import UNIGRAM_FILE
    from .unigram import UnigramTokenizer

    own = Path(embedder.path or "") / UNIGRAM_FILE
    if embedder.path and own.is_file():
        quick = UnigramTokenizer.load(own, info["max_length"])
        if all(quick.encode(p + t) == backend.encode(p + t).ids
               for t in texts for p in (info["prompt"], info["passage_prompt"])):
            shutil.copyfile(own, path)
            return "unigram"
    backend.save(str(path))
    return "tokenizers"


def save_table(weights: np.ndarray, path: Path, kind: str) -> str:
    """Store the word-embedding table as ``kind``: "q4" (blocks of 32 weights, an fp16 scale
    and 4-bit values, as ggml's Q4_0), "int8" (a float32 scale per row) or "f16".

    Returns:
        The kind stored ("f16" for "q4" when rows are not made of whole blocks).
    """
    if kind == "q4" and weights.shape[1] % 32 == 0:
        from .packaged import quantize_q4

        rows = np.frombuffer(quantize_q4(weights), np.uint8).reshape(len(weights), -1)
        np.save(path, rows)
        return kind
    if kind == "int8":
        scale = np.maximum(np.abs(weights).max(axis=1), 1e-12) / 127.0
        q = np.round(weights / scale[:, None]).astype(np.int8)
        np.save(path, np.concatenate([scale.astype(np.float32)[:, None].view(np.int8)
                                      .reshape(len(q), 4), q], axis=1))
        return kind
    if kind not in ("f16", "q4"):
        raise ValueError(f"unknown table kind {kind!r}")
    np.save(path, weights.astype(np.float16))
    return "f16"


class _Table:
    """Rows of the word-embedding table, memory-mapped, as float32."""

    def __init__(self, path: Path, kind: str) -> None:
        self._data = np.load(path, mmap_mode="r", allow_pickle=False)
        self.kind = kind
        expected = {"f16": np.float16, "int8": np.int8, "q4": np.uint8}.get(kind)
        if expected is None or self._data.dtype != expected or self._data.ndim != 2:
            raise ValueError(f"{path.name} does not hold a {kind} word table")

    def rows(self, ids: np.ndarray) -> np.ndarray:
        raw = np.asarray(self._data[ids.reshape(-1)])
        if self.kind == "f16":
            out = raw.astype(np.float32)
        elif self.kind == "int8":
            scale = raw[:, :4].copy().view(np.float32)
            out = raw[:, 4:].view(np.int8).astype(np.float32) * scale
        else:
            from .packaged import dequantize_q4

            out = dequantize_q4(raw).reshape(len(raw), -1)
        return out.reshape(*ids.shape, -1)


def _export_variant(model: Any, enc: Any, path: Path, graph: str, fused: bool,
                    quant: str = "") -> bool:
    """Write one variant of ``model`` to ``path``: "cls" or "full" graph, fused or not,
    float weights ("") or 8-bit ones ("dynamic" or "blocks", see :func:`_quantize`).

    Returns:
        False, writing nothing, when the model has no such graph (CLS-only needs BERT's
        layer layout).
    """
    module = _cls_encoder(model) if graph == "cls" else _full_encoder(model)
    if module is None:
        return False
    _export(module, enc, path, model.get_input_embeddings())
    if fused:
        _fuse(path, model.config)
    if quant:
        _quantize(path, quant)
    return True


def _export(module: Any, enc: Any, path: Path, table: Any) -> None:
    import torch

    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        embeds = table(enc["input_ids"])
    args, names = (embeds, enc["attention_mask"]), ["embeds", "attention_mask"]
    if "token_type_ids" in enc:
        args, names = (*args, enc["token_type_ids"]), [*names, "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes are not for newsqa users
        torch.onnx.export(module, args, str(path), input_names=names,
                          output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: axes for n in names},
                                        "embeds": {0: "batch", 1: "tokens"},
                                        "hidden": {0: "batch", 1: "positions"}})


@contextlib.contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Plain attention ops while exporting: onnxruntime fuses those into one Attention op
    per layer (a third of the graph's nodes), not the decomposed SDPA kernel."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = hasattr(model, "set_attn_implementation") and before not in (None, "eager")
    try:
        if switch:
            model.set_attn_implementation("eager")
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def _fuse(path: Path, config: Any) -> None:
    """Rewrite the exported file with onnxruntime's BERT fusions (attention, layer norms)."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(str(path), model_type="bert", opt_level=1,
                                     num_heads=int(config.num_attention_heads),
                                     hidden_size=int(config.hidden_size))
    fused.save_model_to_file(str(path))


class _NotFromOnnxruntime:
    """Logging filter: drops records logged from onnxruntime's own files."""

    def filter(self, record: Any) -> bool:
        return f"{os.sep}onnxruntime{os.sep}" not in record.pathname


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """Silence onnxruntime's quantizers, leaving the application's logging as it was.

    Importing them calls ``logging.basicConfig(level=INFO)`` (undone afterwards); they log a
    line per weight through their own loggers and warn through the root logger. Only
    their records are dropped: other threads keep logging meanwhile.
    """
    import logging

    root, ours = logging.getLogger(), logging.getLogger("onnxruntime")
    handlers, level, ours_level = root.handlers[:], root.level, ours.level
    only_theirs = _NotFromOnnxruntime()
    root.addFilter(only_theirs)
    ours.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeFilter(only_theirs)
        ours.setLevel(ours_level)
        root.handlers[:] = handlers
        root.setLevel(level)


def _quantize(path: Path, quant: str) -> None:
    """Store the weights as 8-bit integers multiplied in int8, in place.

    "dynamic": every MatMul and fused attention's own weights, per output channel;
    activations are quantized as they come, one scale per tensor (fastest: 2.5 against
    3.9 ms per question on the bge-small-zh architecture). "blocks": MatMul weights only,
    per block of 32 (MatMulNBits, accuracy level 4), with activation scales per block too:
    more exact, for models whose activations the per-tensor scale cannot hold. Either way
    the vectors are checked by the caller, which falls back to float ones.
    """
    import onnx

    with _quiet_onnxruntime():
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        if quant == "dynamic":
            # DefaultTensorType: shape inference cannot type the fused ops' outputs.
            quantize_dynamic(str(path), str(path), op_types_to_quantize=["Attention", "MatMul"],
                             per_channel=True, weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            return
        quantizer = MatMulNBitsQuantizer(onnx.load(str(path)), bits=8, block_size=32,
                                         is_symmetric=True, accuracy_level=4)
        quantizer.process()
        quantizer.model.save_model_to_file(str(path), False)


def _full_encoder(model: Any) -> Any:
    """The whole transformer; the hidden state of every token comes out."""
    import torch

    class Full(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, embeds, attention_mask, token_type_ids=None):
            return self.model(inputs_embeds=embeds, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    return Full()


def _cls_encoder(model: Any) -> Any | None:
    """BERT whose last layer computes the [CLS] position only, or None if not BERT-shaped.

    With CLS pooling every other position of the last layer is thrown away; skipping
    them saves about a tenth of a question's embedding time. The first layers run in
    the model's own code; the last one is recomputed here from its BERT submodules, so
    the export is checked against sentence-transformers like any other.
    """
    import copy
    import math

    import torch

    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) < 2:
        return None
    last = layers[-1]
    att = getattr(getattr(last, "attention", None), "self", None)
    if not all(hasattr(att, n) for n in ("query", "key", "value", "num_attention_heads",
                                         "attention_head_size")) or \
            not all(hasattr(last, n) for n in ("intermediate", "output")):
        return None
    head = copy.copy(model)  # shares the weights; a model without its last layer
    head._modules = dict(model._modules)
    head.encoder = copy.copy(model.encoder)
    head.encoder._modules = dict(model.encoder._modules)
    head.encoder.layer = layers[:-1]

    class ClsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head, self.last = head, last

        def forward(self, embeds, attention_mask, token_type_ids=None):
            h = self.head(inputs_embeds=embeds, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            heads, size = att.num_attention_heads, att.attention_head_size
            b, t, _ = h.shape
            q = att.query(h[:, :1]).view(b, 1, heads, size).transpose(1, 2)
            k = att.key(h).view(b, t, heads, size).transpose(1, 2)
            v = att.value(h).view(b, t, heads, size).transpose(1, 2)
            scores = q @ k.transpose(-1, -2) / math.sqrt(size)
            pad = (1.0 - attention_mask[:, None, None, :].to(scores.dtype))
            scores = scores + pad * torch.finfo(scores.dtype).min
            ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, 1, heads * size)
            x = self.last.attention.output(ctx, h[:, :1])
            return self.last.output(self.last.intermediate(x), x)

    return ClsOnly()


def _pooling_mode(pooling: Any) -> str | None:
    """"cls" or "mean" (sentence-transformers 6 names it, older versions set flags)."""
    mode = getattr(pooling, "pooling_mode", None)
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if len(mode) == 1 else None
    if mode is None:
        mode = "cls" if getattr(pooling, "pooling_mode_cls_token", False) else \
            "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else None
    mode = {"mean_tokens": "mean", "cls_token": "cls"}.get(mode, mode)
    return mode if mode in ("cls", "mean") else None


class OnnxQueryEncoder:
    """Embeds questions (and passages) with the exported model; same vectors as :class:`Embedder`."""

    def __init__(self, folder: Path, info: dict[str, Any]) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.model_name = f"{folder / info['onnx']} (ONNX)"
        self.info = info
        self.query_prompt = info.get("prompt", "")
        self.passage_prompt = info.get("passage_prompt", "")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Threads still spin between a question's ops, but stop when it is answered: left to
        # spin, they burned ~40 ms of CPU after every question (benchmarks/query_encoder.py).
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self._layout = cpu_layout()
        if self._layout.threads:
            options.intra_op_num_threads = self._layout.threads
        if self._layout.affinities:
            options.add_session_config_entry("session.intra_op_thread_affinities",
                                             self._layout.affinities)
        self._session = onnxruntime.InferenceSession(str(folder / info["onnx"]), options,
                                                     providers=["CPUExecutionProvider"])
        self._table = _Table(folder / info["words"], info.get("table", "f16"))
        self._types = bool(info.get("token_types", True))
        if info.get("tokenizer_kind") == "unigram":
            self._tok: Any = UnigramTokenizer.load(folder / info["tokenizer"], info["max_length"])
        else:
            self._tok = Tokenizer.from_file(str(folder / info["tokenizer"]))
            self._tok.enable_truncation(info["max_length"])
            self._tok.enable_padding()

    def close(self) -> None:
        """Let go of the memory-mapped table (Windows could not replace the file otherwise)."""
        self._table = None  # type: ignore[assignment]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for questions (already Simplified), one row per text."""
        return self._embed([self.query_prompt + t for t in texts], held=True)

    def embed_passages(self, texts: list[str], batch_size: int = 16,
                       progress: Any = None) -> np.ndarray:
        """Vectors for passages, one row per text, in batches of similar length.

        Args:
            texts: Passages as indexed (already Simplified).
            batch_size: Passages per run.
            progress: Called with the number of passages just embedded.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            part = order[start:start + batch_size]
            vecs = self._embed([self.passage_prompt + texts[i] for i in part], held=False)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[part] = vecs
            if progress:
                progress(len(part))
        return out

    def _embed(self, texts: list[str], held: bool) -> np.ndarray:
        if isinstance(self._tok, UnigramTokenizer):
            ids, mask = self._tok.batch(texts)
            types = np.zeros_like(ids)
        else:
            encs = self._tok.encode_batch(texts)
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            types = np.array([e.type_ids for e in encs], dtype=np.int64)
        feed = {"embeds": self._table.rows(ids), "attention_mask": mask}
        if self._types:
            feed["token_type_ids"] = types
        if held:
            with held_on(self._layout.caller):
                hidden = self._session.run(None, feed)[0]
        else:
            hidden = self._session.run(None, feed)[0]
        if self.info["pooling"] == "cls":
            vec = hidden[:, 0]
        else:
            m = mask[..., None].astype(np.float32)
            vec = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vec, dtype=np.float32)
