"""BM25 over Simplified text with bm25s: tokenization, build, save, load, score.

Tokens are Chinese character unigrams and bigrams (or jieba words), plus
lower-cased Latin words and numbers. Question words (什么, 多少, 哪个…) are
dropped from queries: they say what kind of answer is wanted, not where it is.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import IndexCorruptError

if TYPE_CHECKING:
    import bm25s

_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:[.%][0-9]+)*%?")
QUESTION_WORDS = (
    "什么时候", "什么样", "什么", "为什么", "为何", "多少", "多大", "多长", "多久", "多高", "多远",
    "哪一年", "哪一天", "哪一", "哪里", "哪儿", "哪个", "哪些", "哪家", "哪位", "哪", "谁", "几",
    "怎么样", "怎么", "怎样", "如何", "是否", "有没有", "是不是", "吗", "呢", "请问", "告诉我",
)
_QUESTION_RE = re.compile("|".join(map(re.escape, QUESTION_WORDS)))


def tokenize(norm: str, mode: str = "unibigram") -> list[str]:
    """Tokens of Simplified text ``norm`` for BM25.

    Args:
        norm: Text already converted to Simplified script.
        mode: "bigram" (bigrams; unigrams only for one-character runs),
            "unibigram" (unigrams and bigrams), "jieba" (jieba precise mode),
            "jieba+bigram" (both).
    """
    tokens: list[str] = []
    for m in _RUNS.finditer(norm.lower()):
        run = m.group(0)
        if not (run[0] >= "\u3400"):
            tokens.append(run)
            continue
        if mode in ("jieba", "jieba+bigram"):
            tokens.extend(w for w in _jieba().lcut(run) if w.strip())
        if mode != "jieba":
            if mode == "unibigram" or len(run) == 1:
                tokens.extend(run)
            tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
    return tokens


def tokenize_query(norm: str, mode: str = "unibigram") -> list[str]:
    """Tokens of a Simplified question, question words removed (each splits the text)."""
    return tokenize(_QUESTION_RE.sub(" ", norm), mode)


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


class LexicalIndex:
    """A bm25s index over chunk texts.

    Only :meth:`scores` runs per query; the index is built once at index time.
    """

    def __init__(self, model: bm25s.BM25, mode: str) -> None:
        self._bm25 = model
        self.mode = mode

    @classmethod
    def build(cls, texts: list[str], mode: str, k1: float, b: float) -> LexicalIndex:
        """Index Simplified ``texts`` (one per chunk, in chunk order)."""
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index([tokenize(t, mode) for t in texts], show_progress=False)
        return cls(model, mode)

    def save(self, folder: Path) -> None:
        """Write the bm25s files (numpy arrays and JSON; nothing pickled)."""
        self._bm25.save(str(folder), show_progress=False)
        (folder / "tokenizer.json").write_text(json.dumps({"mode": self.mode}), "utf-8")

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> LexicalIndex:
        """Load an index written by :meth:`save`.

        Raises:
            IndexCorruptError: A file is missing or unreadable.
        """
        import bm25s

        try:
            mode = json.loads((folder / "tokenizer.json").read_text("utf-8"))["mode"]
            model = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"the BM25 files in {folder} are unreadable ({exc}); "
                                    f"rebuild with `newsqa index --rebuild`") from exc
        return cls(model, mode)

    @property
    def size(self) -> int:
        """Number of indexed documents."""
        return int(self._bm25.scores["num_docs"])

    def query_tokens(self, question_norm: str) -> list[str]:
        """The question's tokens that occur in the corpus vocabulary."""
        vocab = self._bm25.vocab_dict
        return [t for t in tokenize_query(question_norm, self.mode) if t in vocab]

    def scores(self, question_norm: str) -> np.ndarray:
        """BM25 score of every chunk for a Simplified question (zeros if no token matches)."""
        tokens = self.query_tokens(question_norm)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """Lucene idf of each token, used to weigh evidence in answers.

        Tokens the corpus never uses get the highest possible idf: they are
        what an off-topic question is about.
        """
        bm = self._bm25
        n = self.size
        indptr = bm.scores["indptr"]
        unseen = float(np.log(1 + (n + 0.5) / 0.5))
        out = {}
        for t in tokens:
            tid = bm.vocab_dict.get(t)
            if tid is None:
                out[t] = unseen
                continue
            df = int(indptr[tid + 1] - indptr[tid])
            out[t] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out
