"""The FAISS store: exact inner product for small corpora; for large ones a 4-bit PQ
fast-scan over every vector whose best candidates are re-ranked with the exact vectors.

Why not HNSW (what newsqa built before): its recall depends on how clustered the
vectors are (0.99 on a trained model's vectors, 0.51 at 100k and 0.17 at 1M random
ones, where every neighbour after the first is a near-tie), and it took 709 s and
4.4 GB to build for 1M vectors. A PQ scan still looks at every vector, so its recall
does not depend on the data's shape, it builds in seconds, and the exact re-rank makes
the final scores exact cosines. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError

PQ_MIN_ROWS = 1_000  # below this a flat scan is both exact and fast; PQ training needs data
PQ_TRAIN_ROWS = 65_536  # sample the codebooks are trained on (seeded, so builds repeat)
PQ_SHARD_FROM = 200_000  # from here the codes are split in two, searched on two threads
RERANK = 4_000  # PQ candidates re-ranked exactly per search, by default
HNSW_EF_SEARCH = 256  # for indexes built by older versions, which still load


class VectorIndex:
    """Normalized vectors in FAISS; inner product equals cosine similarity.

    ``flat`` holds every vector exactly (memory-mapped when loaded; in an index built by
    an older version it is an HNSW graph over them). ``shards``, when present, are PQ
    fast-scan indexes over consecutive id ranges of the same vectors.
    """

    def __init__(self, flat: Any, shards: list[Any] | None = None) -> None:
        self._flat = flat
        self._shards = shards or []
        self._base: Any = None  # kept referenced: the IndexRefine below points into it
        self._pq: Any = self._refine() if self._shards else None

    @classmethod
    def build(cls, vectors: np.ndarray, ann_threshold: int) -> VectorIndex:
        """Index ``vectors`` (rows L2-normalized): exact only below ``ann_threshold`` rows
        (or below ``PQ_MIN_ROWS``), exact plus PQ codes from there on."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        flat = faiss.IndexFlatIP(dim)
        if n:
            flat.add(vectors)
        if n < max(ann_threshold, PQ_MIN_ROWS):
            return cls(flat)
        trained = faiss.index_factory(dim, f"PQ{_subquantizers(dim)}x4fs",
                                      faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, min(n, PQ_TRAIN_ROWS), replace=False))
        trained.train(vectors[sample])
        parts = 2 if n >= PQ_SHARD_FROM else 1
        bounds = [n * i // parts for i in range(parts + 1)]
        shards = []
        for lo, hi in itertools.pairwise(bounds):
            shard = faiss.clone_index(trained)
            for s in range(lo, hi, 100_000):  # bounded temporary buffers while encoding
                shard.add(vectors[s:min(s + 100_000, hi)])
            shards.append(shard)
        return cls(flat, shards)

    @property
    def kind(self) -> str:
        """"flat", "pq" (PQ scan + exact re-rank) or "hnsw" (an older index)."""
        if self._shards:
            return "pq"
        return "hnsw" if "HNSW" in type(self._flat).__name__ else "flat"

    @property
    def shards(self) -> int:
        """Number of PQ code files (0 for a flat index)."""
        return len(self._shards)

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self._flat.ntotal)

    @property
    def dimension(self) -> int:
        """Vector length."""
        return int(self._flat.d)

    def search(self, queries: np.ndarray, k: int,
               rerank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query row; ids are -1 where fewer exist.

        Args:
            queries: One normalized vector per row.
            k: Results per query.
            rerank: PQ candidates re-ranked with the exact vectors (recall against
                speed; default ``RERANK``); ignored by flat indexes.
        """
        k = max(1, min(k, self.size))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._shards:
            import faiss

            factor = max(1.0, min(rerank or RERANK, self.size) / k)
            return self._pq.search(queries, k, params=faiss.IndexRefineSearchParameters(
                k_factor=factor))
        return self._flat.search(queries, k)

    def _refine(self) -> Any:
        import faiss

        if len(self._shards) == 1:
            self._base = self._shards[0]
        else:
            self._base = faiss.IndexShards(self.dimension, True, True)  # threaded, ids follow
            for shard in self._shards:
                self._base.add_shard(shard)
        return faiss.IndexRefine(self._base, self._flat)

    def similarity(self, query: np.ndarray, ids: list[int]) -> np.ndarray:
        """Cosine of one query row with the stored vectors ``ids`` (exact, any index kind)."""
        rows = self._flat.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return rows @ np.asarray(query, dtype=np.float32).reshape(-1)

    def vectors(self) -> np.ndarray:
        """All stored vectors, in id order (used to carry them over on updates)."""
        if not self.size:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._flat.reconstruct_n(0, self.size)

    def save(self, path: Path) -> list[Path]:
        """Write the exact vectors to ``path`` and each PQ shard beside it.

        Returns:
            The shard files written (``<stem>.pq0.faiss``, ...), in id order.
        """
        import faiss

        faiss.write_index(self._flat, str(path))
        written = []
        for i, shard in enumerate(self._shards):
            written.append(path.with_name(f"{path.name.split('.')[0]}.pq{i}.faiss"))
            faiss.write_index(shard, str(written[-1]))
        return written

    @classmethod
    def load(cls, path: Path, shard_paths: list[Path] | None = None) -> VectorIndex:
        """Read the exact vectors (memory-mapped, so large indexes open fast) and the
        PQ shards.

        Raises:
            IndexCorruptError: A file is missing, not a FAISS index, or the shards do not
                cover the same vectors.
        """
        import faiss

        flat = _read(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        if "HNSW" in type(flat).__name__:
            flat.hnsw.efSearch = HNSW_EF_SEARCH
        shards = [_read(p, 0) for p in shard_paths or []]
        if shards and (sum(s.ntotal for s in shards) != flat.ntotal or
                       any(s.d != flat.d for s in shards)):
            raise IndexCorruptError(f"the PQ files beside {path} do not match its vectors; "
                                    f"rebuild with `newsqa index --rebuild`")
        return cls(flat, shards)


def _subquantizers(dim: int) -> int:
    """Four dimensions per 4-bit code where the dimension allows."""
    return dim // 4 if dim % 4 == 0 else dim // 2 if dim % 2 == 0 else dim


def _read(path: Path, flags: int) -> Any:
    import faiss

    if not path.is_file():
        raise IndexCorruptError(f"the FAISS file {path} is missing; "
                                f"rebuild with `newsqa index --rebuild`")
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise IndexCorruptError(f"the FAISS file {path} is unreadable; "
                                f"rebuild with `newsqa index --rebuild`") from exc
