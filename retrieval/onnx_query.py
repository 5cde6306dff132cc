"""Query embeddings without torch: an ONNX export of the model, run by onnxruntime.

Importing sentence-transformers costs about 5.5 s here, more than a whole
cold ``newsqa ask`` may take. At index time the model's transformer is
exported beside the vectors and checked against sentence-transformers on
sample questions and the corpus's own text (cosine >= 0.9999); at question
time only onnxruntime and tokenizers load. Models whose pipeline is not
transformer + CLS/mean pooling (+ normalisation) are not exported and keep
using sentence-transformers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .threads import cpu_layout, held_on

MIN_COSINE = 0.9999
CHECK_CHARS = 48  # corpus text the export is checked on is cut to a question's length
_SAMPLES = ("单光屯社区化解了多少矛盾？", "郑永强是谁？", "哪个村种芹菜", "2023年常住人口有多少",
            "What is BM25?", "党建引领基层治理")


def available() -> bool:
    """Whether exporting is possible (onnx and onnxruntime installed)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def export(embedder: Any, folder: Path, stem: str,
           texts: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None, str]:
    """Export ``embedder``'s loaded model as ``stem.onnx`` + ``stem.tokenizer.json``.

    Args:
        embedder: The loaded model.
        folder: Where the files go.
        stem: File name stem.
        texts: Extra text from the corpus the export is checked on, besides sample questions.

    Returns:
        The manifest entry (None if not exported) and a reason when not exported.
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
    enc = st.tokenizer(["测试", "党建引领基层治理"], padding=True, return_tensors="pt")
    if "token_type_ids" not in enc:
        return None, "the model takes no token_type_ids"
    names = {"onnx": f"{stem}.onnx", "tokenizer": f"{stem}.tokenizer.json"}
    backend.save(str(folder / names["tokenizer"]))
    info = {**names, "pooling": mode, "max_length": int(modules[0].max_seq_length),
            "prompt": embedder.query_prompt or "", "normalize": True}
    checks = list(_SAMPLES) + [t[:CHECK_CHARS] for t in texts]
    ref = embedder.embed_queries(checks)
    # The CLS-only graph is tried first; whatever it gets wrong, the full one still works.
    # Each is tried with onnxruntime's transformer fusions (first with 8-bit weights, the
    # faster kind first), then without; the first whose vectors pass the check is kept.
    graphs = ["cls", "full"] if mode == "cls" else ["full"]
    variants = [(g, fused, quant) for g in graphs for fused, quant in
                ((True, "dynamic"), (True, "blocks"), (True, ""), (False, ""))]
    why = ""
    with _eager_attention(model):
        for graph, fused, quant in variants:
            try:
                if not _export_variant(model, enc, folder / names["onnx"], graph, fused, quant):
                    continue
                vecs = OnnxQueryEncoder(folder, info).embed_queries(checks)
            except Exception as exc:  # an export failure only costs speed, never the index
                why = f"ONNX export failed ({type(exc).__name__}: {exc})"
                continue
            cos = float(np.min(np.sum(vecs * ref, axis=1)))
            if cos >= MIN_COSINE:
                return {**info, "graph": graph, "fused": fused, "int8": bool(quant),
                        "quant": quant or "none",
                        "cosine_min": round(cos, 6), "checked": len(checks)}, ""
            why = f"ONNX vectors differ from sentence-transformers (cosine {cos:.5f})"
    for name in names.values():
        (folder / name).unlink(missing_ok=True)
    return None, why


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
    _export(module, enc, path)
    if fused:
        _fuse(path, model.config)
    if quant:
        _quantize(path, quant)
    return True


def _export(module: Any, enc: Any, path: Path) -> None:
    import torch

    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes are not for newsqa users
        torch.onnx.export(module, (enc["input_ids"], enc["attention_mask"],
                                   enc["token_type_ids"]), str(path),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes,
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

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
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

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.head(input_ids=input_ids, attention_mask=attention_mask,
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
    """Embeds questions with the exported model; same vectors as :class:`Embedder`."""

    def __init__(self, folder: Path, info: dict[str, Any]) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.model_name = f"{folder / info['onnx']} (ONNX)"
        self.info = info
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
        self._tok = Tokenizer.from_file(str(folder / info["tokenizer"]))
        self._tok.enable_truncation(info["max_length"])
        self._tok.enable_padding()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for questions (already Simplified), one row per text."""
        encs = self._tok.encode_batch([self.info["prompt"] + t for t in texts])
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        types = np.array([e.type_ids for e in encs], dtype=np.int64)
        with held_on(self._layout.caller):
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": types})[0]
        if self.info["pooling"] == "cls":
            vec = hidden[:, 0]
        else:
            m = mask[..., None].astype(np.float32)
            vec = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vec, dtype=np.float32)
