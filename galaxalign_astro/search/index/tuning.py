"""Tuning of the approximate kinds' search parameter (``nprobe``, ``ef_search``).

A grid of values is tried from cheap to expensive and the first whose recall@k
against exact search reaches a target is kept (ours). At build time the queries
are sample rows of the index, each excluding itself from what it finds.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import GalaxAlignWarning
from .backends import IndexParams, hnsw_search, ivf_search
from .exact import exact_search
from .store import _VectorStore

log = logging.getLogger(__name__)

#: sample rows used as queries when tuning ``nprobe`` / ``ef_search`` at build time
_TUNE_ROWS = 200


def _drop_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` entries of each row of ``found`` that are not that row's query."""
    other = found != rows[:, None]
    order = np.argsort(~other, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true neighbours (ids >= 0) that were found."""
    hits, total = 0, 0
    for f, t in zip(found, truth, strict=True):
        t = t[t >= 0]
        hits += len(np.intersect1d(f, t))
        total += len(t)
    return hits / total if total else 1.0


def parameter_name(kind: str) -> str:
    """The search parameter that tuning sets for an approximate ``kind``."""
    return "nprobe" if kind == "ivf" else "ef_search"


def tuning_grid(kind: str, index: Any, k: int) -> list[int]:
    """Values of the search parameter of ``kind`` to try, cheapest first."""
    if kind == "ivf":
        nlist = index.nlist
        fractions = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1)
        return sorted({max(1, round(nlist * f)) for f in fractions})
    return [v for v in (16, 32, 64, 128, 256, 512, 1024, 2048) if v >= k] or [k]


def sweep(
    kind: str,
    index: Any,
    store: _VectorStore,
    params: IndexParams,
    q: np.ndarray,
    truth: np.ndarray,
    k: int,
    target: float,
    exclude: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Try the tuning grid from cheap to dear; keep the first value reaching ``target``.

    ``truth`` holds the true neighbour positions; with ``exclude`` (one position
    per query), that position is dropped from what the index finds. The value
    kept is left in ``params``; a `GalaxAlignWarning`, addressed to the caller's
    caller, says when none reaches ``target``.
    """
    name = parameter_name(kind)
    search: Callable[..., tuple[np.ndarray, np.ndarray]] = (
        ivf_search if kind == "ivf" else hnsw_search
    )
    grid = tuning_grid(kind, index, k)
    records: list[dict[str, float]] = []
    for value in grid:
        setattr(params, name, value)
        t0 = time.perf_counter()
        _, found = search(index, store, params, q, k if exclude is None else k + 1)
        ms = (time.perf_counter() - t0) / len(q) * 1e3
        if exclude is not None:
            found = _drop_self(found, exclude, k)
        recall = _recall(found, truth)
        records.append({name: value, "recall": recall, "ms_per_query": ms})
        log.info("%s=%d: recall@%d %.3f, %.2f ms/query", name, value, k, recall, ms)
        if recall >= target:
            return records
    warnings.warn(
        f"recall@{k} {records[-1]['recall']:.3f} stays below {target} at the "
        f"largest {name} {grid[-1]}; keeping {name}={grid[-1]}",
        GalaxAlignWarning,
        stacklevel=3,
    )
    return records


def tune_on_rows(
    kind: str, index: Any, store: _VectorStore, params: IndexParams
) -> dict[str, Any] | None:
    """Tune the unset search parameter with sample rows as queries (self excluded).

    Returns the tuning record (None when the index is too small to measure a
    recall: the most expensive value is then set).
    """
    name = parameter_name(kind)
    n = len(store)
    k = min(10, n - 1)
    if k < 1:
        setattr(params, name, tuning_grid(kind, index, 1)[-1])
        return None
    rng = np.random.default_rng(params.seed + 1)
    rows = np.sort(rng.choice(n, size=min(_TUNE_ROWS, n), replace=False))
    q = store.gather(rows)
    _, truth = exact_search(store, q, k + 1)
    records = sweep(
        kind, index, store, params, q, _drop_self(truth, rows, k), k, params.target_recall, rows
    )
    return {"queries": "index rows", "n_queries": len(rows), "k": k, **records[-1]}
