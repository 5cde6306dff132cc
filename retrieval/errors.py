"""Error hierarchy: every failure a user can cause or fix has its own class.

The CLI maps each class to a one-line message and an exit code, so the
messages here are written for people, and say what to do next.
"""

from __future__ import annotations


class NewsqaError(Exception):
    """Base class for all errors newsqa reports to users."""

    exit_code = 1


class ConfigError(NewsqaError):
    """A setting or command-line value is not allowed."""

    exit_code = 2


class QuestionError(NewsqaError):
    """The question cannot be answered as asked.

    Attributes:
        reason: "empty", "too_long", "no_words" or "not_text", so front ends can word it their
            own way.
        length: The question's length in characters.
        limit: The longest question accepted.
    """

    exit_code = 2

    def __init__(self, message: str, reason: str = "invalid", length: int = 0,
                 limit: int = 0) -> None:
        super().__init__(message)
        self.reason, self.length, self.limit = reason, length, limit


class CorpusError(NewsqaError):
    """The corpus folder is missing or holds no readable article."""

    exit_code = 3


class IndexError_(NewsqaError):
    """The index directory is missing, corrupt, or from another version."""

    exit_code = 4


class IndexCorruptError(IndexError_):
    """A file of the index is missing or unreadable."""


class IndexMismatchError(IndexError_):
    """The index was built with another format, model or settings."""


class ModelUnavailableError(NewsqaError):
    """The configured embedding model cannot be loaded."""

    exit_code = 5
