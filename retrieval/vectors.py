"""The FAISS store: exact inner product for small corpora, HNSW above a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256


class VectorIndex:
    """Normalized vectors in FAISS; inner product equals cosine similarity."""

    def __init__(self, index: Any) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, ann_threshold: int) -> VectorIndex:
        """Index ``vectors`` (rows L2-normalized): ``IndexFlatIP`` below ``ann_threshold``
        rows, ``IndexHNSWFlat`` with inner product from there on."""
        import faiss

        n, dim = vectors.shape
        if n >= ann_threshold:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            index = faiss.IndexFlatIP(dim)
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    @property
    def kind(self) -> str:
        """"flat" or "hnsw"."""
        return "hnsw" if "HNSW" in type(self._index).__name__ else "flat"

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self._index.ntotal)

    @property
    def dimension(self) -> int:
        """Vector length."""
        return int(self._index.d)

    def search(self, queries: np.ndarray, k: int,
               ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query row; ids are -1 where fewer exist.

        Args:
            queries: One normalized vector per row.
            k: Results per query.
            ef_search: HNSW candidate list size for this call (recall against speed);
                ignored by flat indexes.
        """
        k = max(1, min(k, self.size))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if ef_search and self.kind == "hnsw":
            import faiss

            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
            return self._index.search(queries, k, params=params)
        return self._index.search(queries, k)

    def similarity(self, query: np.ndarray, ids: list[int]) -> np.ndarray:
        """Cosine of one query row with the stored vectors ``ids`` (exact, any index kind)."""
        rows = self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return rows @ np.asarray(query, dtype=np.float32).reshape(-1)

    def vectors(self) -> np.ndarray:
        """All stored vectors, in id order (used to carry them over on updates)."""
        if not self.size:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._index.reconstruct_n(0, self.size)

    def save(self, path: Path) -> None:
        """Write the FAISS file."""
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read a FAISS file (memory-mapped, so large indexes open fast).

        Raises:
            IndexCorruptError: The file is missing or not a FAISS index.
        """
        if not path.is_file():
            raise IndexCorruptError(f"the FAISS file {path} is missing; "
                                    f"rebuild with `newsqa index --rebuild`")
        import faiss

        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as exc:
            raise IndexCorruptError(f"the FAISS file {path} is unreadable; "
                                    f"rebuild with `newsqa index --rebuild`") from exc
        if "HNSW" in type(index).__name__:
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index)
