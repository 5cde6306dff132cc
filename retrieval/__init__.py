"""newsqa retrieval: Chinese news articles in, cited passages and answers out.

Importing this package (and answering from a lexical index) does not import
torch or sentence-transformers; the dense model loads on first use.
"""

__version__ = "0.1.0"

from .answer import Answer, Citation, ask, compose, question_type
from .chunking import Chunk, chunk_article, chunk_articles
from .corpus import Article, Paragraph, load_corpus, parse_article, read_article
from .embedding import Embedder, resolve_model
from .errors import (
    ConfigError,
    CorpusError,
    IndexCorruptError,
    IndexError_,
    IndexMismatchError,
    ModelUnavailableError,
    NewsqaError,
    QuestionError,
)
from .index import BuildReport, Index, build_index, index_status
from .search import Hit, Searcher
from .settings import DEFAULT_MODEL, Settings
from .text import detect_script, split_sentences, to_script, to_simplified

__all__ = [
    "DEFAULT_MODEL",
    "Answer",
    "Article",
    "BuildReport",
    "Chunk",
    "Citation",
    "ConfigError",
    "CorpusError",
    "Embedder",
    "Hit",
    "Index",
    "IndexCorruptError",
    "IndexError_",
    "IndexMismatchError",
    "ModelUnavailableError",
    "NewsqaError",
    "Paragraph",
    "QuestionError",
    "Searcher",
    "Settings",
    "ask",
    "build_index",
    "chunk_article",
    "chunk_articles",
    "compose",
    "detect_script",
    "index_status",
    "load_corpus",
    "parse_article",
    "question_type",
    "read_article",
    "resolve_model",
    "split_sentences",
    "to_script",
    "to_simplified",
]
