"""Similarity search over embeddings of catalog rows."""

from __future__ import annotations

from .index import (
    EXACT_MAX_ROWS,
    INDEX_KINDS,
    DuplicateIdError,
    EmbeddingIndex,
    EmptyIndexError,
    IndexFileError,
    IndexMismatchError,
    IndexParams,
)

__all__ = [
    "EXACT_MAX_ROWS",
    "INDEX_KINDS",
    "DuplicateIdError",
    "EmbeddingIndex",
    "EmptyIndexError",
    "IndexFileError",
    "IndexMismatchError",
    "IndexParams",
]
