"""Sentence-transformers embeddings, loaded lazily and never from the network at query time.

Importing this module does not import torch; :meth:`Embedder.warm_up` does.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .errors import ModelUnavailableError

# Prompts recommended by the model authors, used when none is configured.
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


def resolve_model(model: str, allow_download: bool = False, timeout: float = 3.0) -> str:
    """Find ``model`` on this machine, or download it when allowed.

    Looks at a local path first, then the Hugging Face cache; the network is
    tried only when ``allow_download`` is set, after a connection check with
    a short ``timeout`` so an offline machine fails in seconds, not minutes.

    Returns:
        A local folder holding the model.

    Raises:
        ModelUnavailableError: Not local and not downloadable; the message says how to fix it.
    """
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
        model: Hub id or local path.
        query_prompt: Prepended to questions; None means the model's recommended prompt.
        passage_prompt: Prepended to passages; None means the model's recommended prompt.
        batch_size: Passages per forward pass.
        allow_download: Whether :meth:`warm_up` may fetch the model from the hub.
    """

    def __init__(self, model: str, query_prompt: str | None = None,
                 passage_prompt: str | None = None, batch_size: int = 32,
                 allow_download: bool = False) -> None:
        self.model_name = model
        q, p = default_prompts(model)
        self.query_prompt = q if query_prompt is None else query_prompt
        self.passage_prompt = p if passage_prompt is None else passage_prompt
        self.batch_size = batch_size
        self.allow_download = allow_download
        self._model: Any = None

    def warm_up(self) -> None:
        """Load the model (importing torch) if not loaded yet.

        Raises:
            ModelUnavailableError: The model cannot be found or loaded.
        """
        if self._model is not None:
            return
        path = resolve_model(self.model_name, self.allow_download)
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
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
        """Vectors for passages (already Simplified), one row per text."""
        return self._encode(texts, self.passage_prompt, progress)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for questions (already Simplified), one row per text."""
        return self._encode(texts, self.query_prompt, False)

    def _encode(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        self.warm_up()
        vectors = self._model.encode(list(texts), prompt=prompt or None,
                                     batch_size=self.batch_size, show_progress_bar=progress,
                                     normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)
