"""The embedding store of an index: normalised vectors, their ids, and search results.

`_VectorStore` holds the L2-normalised float32 vectors as a list of blocks (a
memory map, then rows added later); the helpers check and normalise what goes
in, and shape the ``(scores, positions)`` arrays every search kind returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import DuplicateIdError

#: rows per chunk when streaming vectors (64 MiB at d=256)
_CHUNK_ROWS = 65536
#: upper bound on the elements of temporary score / gather arrays (64 MiB of float32)
_TEMP_ELEMENTS = 1 << 24


def _ids_sha256(ids: np.ndarray) -> str:
    """SHA-256 of the ids as little-endian int64, streamed so a memory map is not copied."""
    digest = hashlib.sha256()
    for start in range(0, len(ids), 1 << 20):
        digest.update(np.ascontiguousarray(ids[start : start + (1 << 20)], dtype="<i8").data)
    return digest.hexdigest()


def _normalised(x: Any, *, what: str) -> np.ndarray:
    """Rows of ``x`` scaled to unit length as a new float32 (n, d) array."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.ndim != 2:
        msg = f"{what} must be a 2-d (n, d) array, got shape {arr.shape}"
        raise ValueError(msg)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        msg = f"{what} must be numeric, got dtype {arr.dtype}"
        raise ValueError(msg)
    out = np.empty(arr.shape, dtype=np.float32)
    for start in range(0, arr.shape[0], _CHUNK_ROWS):
        block = np.asarray(arr[start : start + _CHUNK_ROWS], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1)
        bad = ~(np.isfinite(norms) & (norms > 0))
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            msg = (
                f"{what} row {row} has zero length or non-finite values; "
                "a cosine similarity is undefined for it"
            )
            raise ValueError(msg)
        out[start : start + len(block)] = block / norms[:, None]
    return out


def _check_ids(ids: Any, n: int, *, what: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or len(arr) != n:
        msg = f"{what} must be a 1-d array of {n} ids, got shape {arr.shape}"
        raise ValueError(msg)
    if len(arr) and not np.issubdtype(arr.dtype, np.integer):
        msg = f"{what} must be integers (catalog rows), got dtype {arr.dtype}"
        raise ValueError(msg)
    arr = arr.astype(np.int64)
    if len(arr) and arr.min() < 0:
        msg = f"{what} must be >= 0 (-1 marks a missing result), got {int(arr.min())}"
        raise ValueError(msg)
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != len(arr):
        dup = uniq[counts > 1]
        msg = f"{what} are not unique: {dup[:5].tolist()} occur more than once"
        raise DuplicateIdError(msg)
    return arr


class _VectorStore:
    """Normalised vectors as a list of blocks (a memory map, then rows added later)."""

    def __init__(self, dim: int, blocks: list[np.ndarray] | None = None) -> None:
        self.dim = dim
        self.blocks = [b for b in (blocks or []) if len(b)]

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def append(self, x: np.ndarray) -> None:
        if len(x):
            self.blocks.append(x)

    def chunks(self, rows: int = _CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(offset, rows)`` pieces in order, each at most ``rows`` long."""
        offset = 0
        for block in self.blocks:
            for start in range(0, len(block), rows):
                yield offset + start, np.asarray(block[start : start + rows])
            offset += len(block)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` (all valid) as a new (len(positions), dim) array."""
        if len(self.blocks) == 1:
            return np.asarray(self.blocks[0][positions])
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        offset = 0
        for block in self.blocks:
            sel = (positions >= offset) & (positions < offset + len(block))
            if sel.any():
                out[sel] = block[positions[sel] - offset]
            offset += len(block)
        return out


def _sorted_desc(s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``s`` and positions ``p`` of each row reordered best first."""
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(p, order, axis=1)


def _pad(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mark missing results (position -1) with score -inf and pad the rows to ``k``."""
    scores = scores.astype(np.float32, copy=False)
    scores[pos < 0] = -np.inf
    if pos.shape[1] < k:
        extra = k - pos.shape[1]
        scores = np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf)
        pos = np.pad(pos, ((0, 0), (0, extra)), constant_values=-1)
    return scores, pos
