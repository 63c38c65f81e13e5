"""Exact search: blocked BLAS inner products folded into a running top-k.

The ``"exact"`` index kind, and the ground truth that tuning of the approximate
kinds measures recall against. Works on a memory-mapped store, so it scales past
RAM.
"""

from __future__ import annotations

import os

import numpy as np

from .backends import _import_faiss
from .store import _CHUNK_ROWS, _TEMP_ELEMENTS, _sorted_desc, _VectorStore

#: with single-threaded BLAS, exact search of at most this many queries uses faiss's
#: kernel (faster there), everything else numpy BLAS
_FAISS_MAX_QUERIES = 4


def _merge_topk(
    best_s: np.ndarray, best_p: np.ndarray, s: np.ndarray, offset: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fold a (m, b) block of scores into the running (m, k) best scores and positions.

    Until every query has ``k`` results the block's own top-k (``argpartition``) is
    merged. After that only scores above a query's current k-th best can matter; they
    are few (about ``k b / n_seen``), so one comparison pass over the block finds them
    and only those are sorted in, which is much cheaper than partitioning every row.
    The returned rows are unordered.
    """
    m = len(best_s)
    kth = best_s.min(axis=1)
    if np.isneginf(kth).any():
        kk = min(k, s.shape[1])
        part = np.argpartition(s, s.shape[1] - kk, axis=1)[:, -kk:]
        cs = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cp = np.concatenate([best_p, part + offset], axis=1)
        sel = np.argpartition(cs, cs.shape[1] - k, axis=1)[:, -k:]
        return np.take_along_axis(cs, sel, axis=1), np.take_along_axis(cp, sel, axis=1)
    rows, cols = np.nonzero(s > kth[:, None])
    if len(rows) == 0:
        return best_s, best_p
    all_r = np.concatenate([np.repeat(np.arange(m), k), rows])
    all_s = np.concatenate([best_s.ravel(), s[rows, cols]])
    all_p = np.concatenate([best_p.ravel(), cols + offset])
    order = np.lexsort((-all_s, all_r))
    counts = np.bincount(all_r, minlength=m)
    rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = order[rank < k]
    return all_s[keep].reshape(m, k), all_p[keep].reshape(m, k)


def _blas_threads() -> int:
    """Threads OpenBLAS will use, from the environment as OpenBLAS reads it."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def exact_search(store: _VectorStore, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products of normalised queries over the whole store.

    Queries go through BLAS in chunks and the store in row blocks sized so a score
    matrix stays near 64 MiB, each block folded into a running top-k by
    `_merge_topk`: as fast as faiss's ``IndexFlatIP`` for one query when BLAS has two
    or more threads (a single query is bound by memory bandwidth, which more threads
    use better), several times faster for batches. With single-threaded BLAS, up to
    `_FAISS_MAX_QUERIES` queries use faiss's fused inner-product + heap kernel (the
    one ``IndexFlatIP`` runs, here on the store's own, possibly memory-mapped, arrays),
    which is faster there. See ``docs/search_index.md``. Missing results (k > n) are
    position -1 with score -inf.
    """
    m = len(q)
    scores = np.full((m, k), -np.inf, dtype=np.float32)
    positions = np.full((m, k), -1, dtype=np.int64)
    if m <= _FAISS_MAX_QUERIES and _blas_threads() == 1:
        faiss = _import_faiss()
        offset = 0
        for block in store.blocks:
            kb = min(k, len(block))
            d, i = faiss.knn(q, block, kb, metric=faiss.METRIC_INNER_PRODUCT)
            i = np.where(i >= 0, i + offset, -1)
            d[i < 0] = -np.inf
            cs = np.concatenate([scores, d], axis=1)
            cp = np.concatenate([positions, i], axis=1)
            sel = np.argpartition(cs, cs.shape[1] - k, axis=1)[:, -k:]
            scores, positions = np.take_along_axis(cs, sel, 1), np.take_along_axis(cp, sel, 1)
            offset += len(block)
        return _sorted_desc(scores, positions)
    q_chunk = 1024
    rows = max(4096, min(_CHUNK_ROWS, _TEMP_ELEMENTS // min(max(m, 1), q_chunk)))
    for qs in range(0, m, q_chunk):
        qb = q[qs : qs + q_chunk]
        best_s = scores[qs : qs + q_chunk]
        best_p = positions[qs : qs + q_chunk]
        for offset, block in store.chunks(rows):
            best_s, best_p = _merge_topk(best_s, best_p, qb @ block.T, offset, k)
        scores[qs : qs + q_chunk], positions[qs : qs + q_chunk] = _sorted_desc(best_s, best_p)
    return scores, positions
