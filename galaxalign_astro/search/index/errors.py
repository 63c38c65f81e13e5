"""Exceptions raised by `~galaxalign_astro.search.EmbeddingIndex`."""

from __future__ import annotations

from ...errors import GalaxAlignError

__all__ = ["DuplicateIdError", "EmptyIndexError", "IndexFileError", "IndexMismatchError"]


class IndexMismatchError(GalaxAlignError, ValueError):
    """Queries or a model do not match the index (dimension, model name, weights, catalog)."""


class DuplicateIdError(GalaxAlignError, ValueError):
    """Catalog ids given to an index are not unique."""


class EmptyIndexError(GalaxAlignError, ValueError):
    """A search was asked of an index with no rows."""


class IndexFileError(GalaxAlignError):
    """An index directory is missing files or its files disagree with its sidecar."""
