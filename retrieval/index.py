"""The on-disk index: build, update, load, validate.

An index is a directory of plain files: ``manifest.json`` plus, for one
generation, ``articles-G.jsonl`` (+ ``.index.json``), ``chunks-G.npy`` (+
``.headings.json``; see ``store.py``), ``bm25-G/`` and ``dense-G.faiss`` (with
``dense-G.pqN.faiss`` PQ codes for large corpora). Version 1 indexes, whose chunks
were JSON Lines, still load.
A build writes a new generation beside the old one and commits it by
atomically replacing ``manifest.json``; a crash before that leaves the
previous index intact. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, onnx_query
from .chunking import Chunk, chunk_articles, passage_key, passage_text
from .corpus import Article, article_from_dict, corpus_files, load_corpus
from .embedding import Embedder
from .errors import CorpusError, IndexCorruptError, IndexMismatchError, ModelUnavailableError
from .lexical import LexicalIndex
from .sentences import SentenceVectors, embed_sentences, sentence_spans, sentence_text
from .settings import Settings
from .store import ArticleTable, ChunkTable, sidecars, write_articles, write_chunks
from .vectors import VectorIndex

FORMAT = "newsqa-index"
FORMAT_VERSION = 2
READS = (1, 2)  # version 1: chunks-G.jsonl, every article and chunk parsed on load
MANIFEST = "manifest.json"
Warn = Callable[[str], None]


@dataclass(frozen=True)
class BuildReport:
    """What :func:`build_index` did."""

    action: str  # "built", "updated" or "unchanged"
    articles: int
    chunks: int
    retrievers: tuple[str, ...]
    dimension: int | None
    seconds: float
    embedded: int = 0
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reason: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)


class Index:
    """A loaded index: articles, chunks, BM25, and (lazily) the FAISS vectors."""

    def __init__(self, folder: Path, manifest: dict[str, Any], articles: Mapping[str, Article],
                 chunks: Sequence[Chunk], lexical: LexicalIndex) -> None:
        self.folder = folder
        self.manifest = manifest
        self.articles = articles
        self.chunks = chunks
        self.lexical = lexical
        self._vectors: VectorIndex | None = None
        self._sentences: SentenceVectors | bool | None = False  # False: not read yet

    @property
    def sentences(self) -> SentenceVectors | None:
        """Sentence vectors for the composer, read on first use; None when the index has none
        (or they cannot be read: answers then rest on words alone)."""
        if self._sentences is False:
            files = self.manifest["files"]
            self._sentences = None
            if "sentence_vectors" in files:
                try:
                    self._sentences = SentenceVectors(self.folder / files["sentence_vectors"],
                                                      self.folder / files["sentence_rows"])
                except (OSError, ValueError, KeyError, IndexError, TypeError):
                    self._sentences = None
        return self._sentences  # type: ignore[return-value]

    @property
    def retrievers(self) -> tuple[str, ...]:
        """"bm25", plus "dense" when the index holds vectors."""
        return tuple(self.manifest["retrievers"])

    @property
    def model(self) -> dict[str, Any] | None:
        """Model name, dimension and prompts of the stored vectors, or None."""
        return self.manifest.get("model")

    @property
    def vectors(self) -> VectorIndex | None:
        """The FAISS store, read on first use (importing faiss only then)."""
        if self._vectors is None and "dense" in self.retrievers:
            files = self.manifest["files"]
            vec = VectorIndex.load(self.folder / files["faiss"],
                                   [self.folder / files[k] for k in _pq_keys(files)])
            if vec.size != len(self.chunks):
                raise IndexCorruptError(f"the FAISS file in {self.folder} holds {vec.size} "
                                        f"vectors for {len(self.chunks)} chunks; rebuild with "
                                        f"`newsqa index --rebuild`")
            self._vectors = vec
        return self._vectors

    def passage(self, chunk: Chunk) -> str:
        """The Simplified text matched and embedded for ``chunk``."""
        return passage_text(chunk, self.articles[chunk.article].title)

    @classmethod
    def load(cls, folder: str | Path, verify: str = "cheap") -> Index:
        """Open the index in ``folder``, checking format version, files and checksums.

        Args:
            folder: The index directory.
            verify: Which files' SHA-256 to check against the manifest: "cheap" (every file
                up to 8 MiB: the articles, chunks and BM25 files of a news corpus, a few ms),
                "all" (the dense vectors and ONNX encoder too: ``newsqa index --verify`` and
                before reusing an index) or "none".

        Raises:
            IndexCorruptError: Missing, changed or unreadable files.
            IndexMismatchError: Written by an incompatible newsqa version.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        if verify != "none":
            verify_checksums(folder, manifest, CHEAP_BYTES if verify == "cheap" else None)
        files = manifest["files"]
        dense = (files["faiss"], *(files[k] for k in _pq_keys(files))) \
            if "dense" in manifest["retrievers"] else ()
        legacy = manifest["format_version"] == 1
        extra = () if legacy else sidecars(files["articles"], files["chunks"])
        for name in (files["articles"], files["chunks"], files["bm25"], *extra, *dense):
            path = folder / name
            if not path.exists():
                raise IndexCorruptError(f"index file {path} is missing; rebuild with "
                                        f"`newsqa index --rebuild`")
            expected = manifest["sizes"].get(name)
            if expected is not None and path.is_file() and path.stat().st_size != expected:
                raise IndexCorruptError(f"index file {path} was changed or truncated; rebuild "
                                        f"with `newsqa index --rebuild`")
        if legacy:
            articles, chunks = _load_v1(folder, files)
        else:
            articles = ArticleTable(folder / files["articles"])
            chunks = ChunkTable(folder / files["chunks"], articles)
        lexical = LexicalIndex.load(folder / files["bm25"])
        try:
            len(articles), len(chunks)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise IndexCorruptError(f"the article or chunk file in {folder} is corrupt ({exc})") from exc
        if lexical.size != len(chunks) or len(chunks) != manifest["counts"]["chunks"] or \
                len(articles) != manifest["counts"]["articles"]:
            raise IndexCorruptError(f"the index in {folder} is inconsistent (BM25 has "
                                    f"{lexical.size} documents, {len(chunks)} chunks); rebuild "
                                    f"with `newsqa index --rebuild`")
        return cls(folder, manifest, articles, chunks, lexical)


CHEAP_BYTES = 8 * 2**20


def checksums(folder: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of each named file (and of each file inside a named folder), by name."""
    out: dict[str, str] = {}
    for name in names:
        path = folder / name
        paths = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for p in paths:
            if p.is_file():
                out[p.relative_to(folder).as_posix()] = _sha256(p)
    return out


def verify_checksums(folder: Path, manifest: dict[str, Any], limit: int | None) -> None:
    """Compare the files of ``manifest`` with their recorded SHA-256 (those up to ``limit``
    bytes; all when None). Indexes written before checksums were recorded pass.

    Raises:
        IndexCorruptError: A file is missing or differs.
    """
    for name, digest in (manifest.get("checksums") or {}).items():
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            raise IndexCorruptError(f"index file {path} is missing; rebuild with "
                                    f"`newsqa index --rebuild`") from None
        if (limit is None or size <= limit) and _sha256(path) != digest:
            raise IndexCorruptError(f"index file {path} was changed or damaged (checksum differs); "
                                    f"rebuild with `newsqa index --rebuild`")


def _load_v1(folder: Path, files: dict[str, str]) -> tuple[dict[str, Article], list[Chunk]]:
    try:
        articles = {d["id"]: article_from_dict(d)
                    for d in _read_jsonl(folder / files["articles"])}
        chunks = [Chunk(d["id"], d["article"], d["start"], d["end"], d["p"][0], d["p"][1],
                        d["heading"], d["text"]) for d in _read_jsonl(folder / files["chunks"])]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise IndexCorruptError(f"the chunk or article file in {folder} is corrupt ({exc}); "
                                f"rebuild with `newsqa index --rebuild`") from exc
    return articles, chunks


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read and check ``manifest.json``.

    Raises:
        IndexCorruptError: Missing or not valid JSON.
        IndexMismatchError: Another format or format version.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexCorruptError(f"no index in {folder} (manifest.json is missing); build it "
                                f"with `newsqa index`")
    try:
        manifest = json.loads(path.read_text("utf-8"))
        version = manifest["format_version"] if manifest.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise IndexCorruptError(f"{path} is corrupt ({exc.__class__.__name__}); rebuild with "
                                f"`newsqa index --rebuild`") from exc
    if version not in READS:
        raise IndexMismatchError(f"the index in {folder} has format version {version}, this "
                                 f"newsqa reads versions {', '.join(map(str, READS))}; rebuild with "
                                 f"`newsqa index --rebuild`")
    return manifest


def index_status(corpus: str | Path, folder: str | Path, settings: Settings) -> tuple[str, str]:
    """Whether the index matches the corpus and settings, without reading articles.

    Returns:
        ``(status, reason)`` with status "fresh", "stale" or "missing".
    """
    folder = Path(folder)
    current = corpus_files(corpus)  # raises CorpusError first: nothing to build from
    try:
        manifest = read_manifest(folder)
    except IndexCorruptError as exc:
        return ("missing" if not (folder / MANIFEST).exists() else "stale"), str(exc)
    except IndexMismatchError as exc:
        return "stale", str(exc)
    if manifest["settings"] != settings.index_params():
        return "stale", "settings or model changed"
    known = {**manifest["files_seen"]}
    if set(known) != set(current):
        return "stale", "articles were added or removed"
    for name, (size, mtime) in current.items():
        old = known[name]
        if old["size"] != size:
            return "stale", f"{name} changed"
        if old["mtime_ns"] != mtime and _sha256(Path(corpus) / name) != old["sha256"]:
            return "stale", f"{name} changed"
    return "fresh", ""


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialize builders of one index (a CLI and a running bot, say)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_index(corpus: str | Path, folder: str | Path, settings: Settings, *,
                rebuild: bool = False, embedder: Embedder | None = None,
                warn: Warn | None = None, progress: bool = False,
                notice: Warn | None = None) -> tuple[Index, BuildReport]:
    """Build the index of ``corpus`` in ``folder``, or bring it up to date.

    Unchanged articles keep their vectors: only passages whose text is new
    are embedded. If the model cannot be loaded, the index is built
    lexical-only with one warning (or ModelUnavailableError when
    ``settings.require_dense``).

    Args:
        corpus: Folder of articles.
        folder: Index directory (created if needed).
        settings: Chunking, tokenization and model settings.
        rebuild: Ignore any existing index.
        embedder: Model to use; by default one is made from ``settings``.
        warn: Receives one-line warnings (unreadable files, missing model).
        progress: Show a progress bar while embedding.
        notice: Receives one-line notes that are not warnings (the bundled model being
            prepared, and how long it took); by default ``warn``.
    """
    t0 = time.perf_counter()
    folder = Path(folder)
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    existed = folder.exists()
    with _locked(folder):
        try:
            articles = load_corpus(corpus, note, int(settings.max_article_mib * 2**20))
        except CorpusError:
            if not existed:  # leave no empty index folder behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
        old, reason = (None, "rebuild requested") if rebuild else _reusable(folder, settings)
        old_ids = {a: m["sha256"] for a, m in (old.manifest["articles"] if old else {}).items()}
        new_ids = {a.id: a.sha256 for a in articles}
        added = tuple(sorted(set(new_ids) - set(old_ids)))
        removed = tuple(sorted(set(old_ids) - set(new_ids)))
        changed = tuple(sorted(a for a in set(new_ids) & set(old_ids)
                               if new_ids[a] != old_ids[a]))
        wants_dense = bool(settings.model)
        embedder = embedder or Embedder(settings.model, settings.query_prompt,
                                        settings.passage_prompt, settings.batch_size,
                                        allow_download=settings.allow_download,
                                        cache_dir=settings.cache_dir or None,
                                        note=notice or warn)
        dense_error = None
        if wants_dense:
            try:
                embedder.warm_up()
            except ModelUnavailableError as exc:
                if settings.require_dense:
                    raise
                dense_error = exc
                note(f"{exc}. Continuing with lexical (BM25) retrieval only; once the model "
                     f"is available, run `newsqa index` to add dense retrieval.")
        if old is not None and not (added or removed or changed) and (
                "dense" in old.retrievers or dense_error is not None or not wants_dense):
            _refresh_seen(folder, old, corpus, articles)
            return old, BuildReport("unchanged", len(articles), len(old.chunks), old.retrievers,
                                    (old.model or {}).get("dimension"),
                                    time.perf_counter() - t0, warnings=tuple(warnings))

        chunks = chunk_articles(articles, settings.chunk_size, settings.chunk_overlap)
        titles = {a.id: a.title for a in articles}
        passages = [passage_text(c, titles[c.article]) for c in chunks]

        gen = uuid.uuid4().hex[:8]
        matrix, model_info, embedded, encoder = None, None, 0, None
        spans: list[tuple[str, int, int]] = []
        sentence_matrix = None
        if wants_dense and dense_error is None:
            encoder = _query_encoder(folder, gen, settings, embedder, passages, old, note)
            matrix, embedded = _embed(embedder, passages, old, progress)
            if settings.sentence_vectors:
                spans = sentence_spans(articles, chunks)
                sentence_matrix = embed_sentences(
                    spans, {a.id: a for a in articles},
                    lambda texts: embedder.embed_passages(texts, progress=progress),
                    int(matrix.shape[1]), _old_sentences(old, embedder.model_name))
            model_info = {"name": settings.model, "dimension": int(matrix.shape[1]),
                          "query_prompt": embedder.query_prompt,
                          "passage_prompt": embedder.passage_prompt, "normalized": True,
                          "passages_by": "onnx" if embedder.passage_encoder is not None
                          else "sentence-transformers"}
        index = _write(folder, gen, settings, corpus, articles, chunks, passages, matrix,
                       model_info, encoder, (spans, sentence_matrix))
        action = "updated" if old is not None else "built"
        return index, BuildReport(action, len(articles), len(chunks), index.retrievers,
                                  model_info["dimension"] if model_info else None,
                                  time.perf_counter() - t0, embedded, added, changed, removed,
                                  reason if old is None else "", tuple(warnings))


def _reusable(folder: Path, settings: Settings) -> tuple[Index | None, str]:
    """The existing index if its vectors and chunks can be reused, else why not."""
    if not (folder / MANIFEST).exists():
        return None, "no index yet"
    try:
        old = Index.load(folder, verify="all")  # never carry damaged vectors or encoders over
    except (IndexCorruptError, IndexMismatchError) as exc:
        return None, str(exc)
    if old.manifest["settings"] != settings.index_params():
        return None, "settings or model changed"
    return old, ""


def _embed(embedder: Embedder, passages: list[str], old: Index | None,
           progress: bool) -> tuple[np.ndarray, int]:
    """Vectors of all passages, embedding only those the old index does not hold."""
    known: dict[str, np.ndarray] = {}
    if old is not None and old.model and old.model["name"] == embedder.model_name \
            and old.vectors is not None:
        old_vectors = old.vectors.vectors()
        for chunk, vec in zip(old.chunks, old_vectors, strict=False):
            known[passage_key(old.passage(chunk))] = vec
    keys = [passage_key(p) for p in passages]
    todo = sorted({i for i, k in enumerate(keys) if k not in known})
    dim = embedder.dimension
    matrix = np.zeros((len(passages), dim), dtype=np.float32)
    if todo:
        fresh = embedder.embed_passages([passages[i] for i in todo], progress=progress)
        matrix[todo] = fresh
    for i, k in enumerate(keys):
        if k in known:
            matrix[i] = known[k]
    return matrix, len(todo)


def _query_encoder(folder: Path, gen: str, settings: Settings, embedder: Embedder,
                   passages: list[str], old: Index | None,
                   note: Callable[[str], None]) -> dict[str, Any] | None:
    """The ONNX encoder's manifest entry for generation ``gen``: carried over from ``old``
    (same settings and model, else ``old`` would be None) or exported now. When its passage
    vectors passed their check, ``embedder`` embeds passages with it from here on."""
    info = None
    reusable = old.manifest.get("query_encoder") if old is not None else None
    keys = ("onnx", "tokenizer", "words")
    if reusable and all(k in reusable and (folder / reusable[k]).is_file() for k in keys):
        info = {**reusable, **{k: f"query-{gen}{_SUFFIX[k]}" for k in keys}}
        for key in keys:
            _link_or_copy(folder / reusable[key], folder / info[key])
    elif settings.onnx_query and onnx_query.available():
        # Checked on the corpus's own sentences too, spread over it (bodies, not headlines).
        picks = sorted({int(i) for i in np.linspace(0, len(passages) - 1, min(64, len(passages)))})
        info, why = onnx_query.export(
            embedder, folder, f"query-{gen}", tuple(passages[i].split("\n", 1)[-1] for i in picks),
            tuple(passages[i] for i in picks[::max(1, len(picks) // onnx_query.PASSAGE_CHECKS)]))
        if info is None:
            note(f"questions will be embedded with sentence-transformers (slower start): {why}")
    if info and info.get("passages"):
        try:
            embedder.passage_encoder = onnx_query.OnnxQueryEncoder(folder, info)
        except Exception:  # passages are then embedded by sentence-transformers, as before
            embedder.passage_encoder = None
    return info


_SUFFIX = {"onnx": ".onnx", "tokenizer": ".tokenizer.json", "words": ".words.npy"}


def _old_sentences(old: Index | None, model: str) -> dict[str, np.ndarray]:
    """Sentence text -> vector of the old index, when its vectors come from ``model``."""
    if old is None or not old.model or old.model.get("name") != model or old.sentences is None:
        return {}
    store = old.sentences
    try:
        return {sentence_text(old.articles[a], s, e): store.vector(i)
                for i, (a, s, e) in enumerate(store.spans)}
    except (KeyError, IndexCorruptError):
        return {}


def _write(folder: Path, gen: str, settings: Settings, corpus: str | Path,
           articles: list[Article], chunks: list[Chunk], passages: list[str], matrix: Any,
           model_info: dict[str, Any] | None, query_encoder: dict[str, Any] | None = None,
           sentences: tuple[list[tuple[str, int, int]], Any] = ([], None)) -> Index:
    files = {"articles": f"articles-{gen}.jsonl", "chunks": f"chunks-{gen}.npy",
             "bm25": f"bm25-{gen}"}
    write_articles(folder / files["articles"], articles)
    write_chunks(folder / files["chunks"], chunks, [a.id for a in articles])
    extra = sidecars(files["articles"], files["chunks"])
    lexical = LexicalIndex.write(passages, folder / files["bm25"], settings.tokenizer,
                                 settings.k1, settings.b)
    vectors = None
    if matrix is not None:
        files["faiss"] = f"dense-{gen}.faiss"
        vectors = VectorIndex.build(matrix, settings.ann_threshold)
        for i, path in enumerate(vectors.save(folder / files["faiss"])):
            files[f"faiss_pq{i}"] = path.name
    if sentences[1] is not None:
        files["sentence_vectors"], files["sentence_rows"] = (f"sentences-{gen}.npy",
                                                             f"sentences-{gen}.json")
        SentenceVectors.write(folder / files["sentence_vectors"], folder / files["sentence_rows"],
                              *sentences)
    if query_encoder is not None and model_info is not None:
        files.update({f"query_{k}": query_encoder[k] for k in _SUFFIX})
    else:
        query_encoder = None
    retrievers = ["bm25"] + (["dense"] if vectors is not None else [])
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation": gen,
        "normalization": "opencc-t2s",
        "settings": settings.index_params(),
        "retrievers": retrievers,
        "model": model_info,
        "faiss": {"kind": vectors.kind, "size": vectors.size, "shards": vectors.shards}
        if vectors else None,
        "query_encoder": query_encoder,
        "files": files,
        "sizes": {name: (folder / name).stat().st_size for name in (*files.values(), *extra)
                  if (folder / name).is_file()},
        "checksums": checksums(folder, [*files.values(), *extra]),
        "counts": {"articles": len(articles), "chunks": len(chunks)},
        "articles": {a.id: {"sha256": a.sha256, "title": a.title} for a in articles},
        "files_seen": _files_seen(corpus, articles),
    }
    _commit_manifest(folder, manifest)
    _remove_other_generations(folder, gen)
    index = Index(folder, manifest, {a.id: a for a in articles}, chunks, lexical)
    index._vectors = vectors
    return index


def _pq_keys(files: dict[str, str]) -> list[str]:
    """The manifest keys of the PQ shard files, in id order."""
    keys: list[str] = []
    while f"faiss_pq{len(keys)}" in files:
        keys.append(f"faiss_pq{len(keys)}")
    return keys


def _files_seen(corpus: str | Path, articles: list[Article]) -> dict[str, dict[str, Any]]:
    by_name = {Path(os.path.relpath(a.path, corpus)).as_posix(): a.sha256 for a in articles if a.path}
    out = {}
    for name, (size, mtime) in corpus_files(corpus).items():
        sha = by_name.get(name) or _sha256(Path(corpus) / name)
        out[name] = {"size": size, "mtime_ns": mtime, "sha256": sha}
    return out


def _refresh_seen(folder: Path, index: Index, corpus: str | Path, articles: list[Article]) -> None:
    seen = _files_seen(corpus, articles)
    if seen != index.manifest.get("files_seen"):
        index.manifest["files_seen"] = seen
        _commit_manifest(folder, index.manifest)


def _commit_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST)


def _remove_other_generations(folder: Path, keep: str) -> None:
    for path in folder.iterdir():
        stem = path.name.split(".")[0]
        if (stem.startswith(("articles-", "chunks-", "bm25-", "dense-", "query-", "sentences-")) and
                not stem.endswith(keep)) or (path.name.endswith(".tmp") and path.name[0] == "."):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
