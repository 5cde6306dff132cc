"""newsqa retrieval: Chinese news articles in, cited passages and answers out.

Importing this package (and answering from a lexical index) does not import
torch or sentence-transformers; the dense model loads on first use.
"""

__version__ = "0.1.0"

from .answer import Answer, Citation, compose, question_type  # noqa: E402
from .chunking import Chunk, chunk_article, chunk_articles  # noqa: E402
from .corpus import Article, Paragraph, load_corpus, parse_article, read_article  # noqa: E402
from .embedding import Embedder, resolve_model  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    CorpusError,
    IndexCorruptError,
    IndexError_,
    IndexMismatchError,
    ModelUnavailableError,
    NewsqaError,
    QuestionError,
)
from .index import BuildReport, Index, build_index, index_status  # noqa: E402
from .search import Hit, Searcher  # noqa: E402
from .settings import DEFAULT_MODEL, Settings  # noqa: E402
from .text import detect_script, split_sentences, to_script, to_simplified  # noqa: E402

__all__ = [
    "DEFAULT_MODEL", "Answer", "Article", "BuildReport", "Chunk", "Citation", "ConfigError",
    "CorpusError", "Embedder", "Hit", "Index", "IndexCorruptError", "IndexError_",
    "IndexMismatchError", "ModelUnavailableError", "NewsqaError", "Paragraph", "QuestionError",
    "Searcher", "Settings", "build_index", "chunk_article", "chunk_articles", "compose",
    "detect_script", "index_status", "load_corpus", "parse_article", "question_type",
    "read_article", "resolve_model", "split_sentences", "to_script", "to_simplified",
]
