"""The faiss backends of the approximate index kinds: ``"ivf"`` and ``"hnsw"``.

``"ivf"`` is a faiss inverted file (``nlist`` k-means cells) with 4-bit
product-quantised fast-scan codes whose ``rerank_factor * k`` best candidates are
re-scored exactly against the stored vectors; ``"hnsw"`` a faiss HNSW graph over
the full vectors (``IndexHNSWFlat``). `IndexParams` holds the parameters of both.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .store import _TEMP_ELEMENTS, _pad, _sorted_desc, _VectorStore

__all__ = ["INDEX_KINDS", "IndexParams"]

log = logging.getLogger(__name__)

#: index kinds accepted by `EmbeddingIndex`: ``"auto"``, exact search and the faiss kinds
INDEX_KINDS = ("auto", "exact", "ivf", "hnsw")

#: faiss fast-scan search implementations: 14 splits one query's inverted lists over
#: the OpenMP threads (``IndexIVFFastScan.implem``), 0 lets faiss choose (one query
#: per thread); the results are identical
_IMPLEM_SPLIT_LISTS = 14
_IMPLEM_DEFAULT = 0
#: a lone query's lists are split over the threads when it scans at least this many
#: codes (``nprobe`` times the mean list length); below, starting the threads costs
#: more than they save (crossover measured near 30,000 codes, 2 cores, d=256)
_SPLIT_MIN_CODES = 50_000


@dataclass
class IndexParams:
    """Tuning parameters of the approximate index kinds (all defaults are ours).

    Build-time parameters (``nlist``, ``train_size``, ``hnsw_m``,
    ``ef_construction``, ``target_recall``, ``seed``) only act when an index is
    built; search-time ones (``nprobe``, ``rerank_factor``, ``ef_search``) may be
    changed on a built or loaded index, e.g. ``index.params.nprobe = 256``, and are
    saved with it.

    Parameters
    ----------
    nlist : int or None
        ivf: number of k-means cells; None gives the power of two nearest
        ``sqrt(n_rows)``. Fast-scan codes make scanning a cell cheap, so fewer and
        larger cells than the usual ``4 sqrt(n)`` pay off.
    nprobe : int or None
        ivf: cells visited per query. None: chosen at build time as the cheapest
        value whose recall@10 reaches ``target_recall``, measured with sample rows of
        the index as queries (each excluding itself). How many cells a recall needs
        depends entirely on how clustered the embeddings are.
    rerank_factor : int
        ivf: ``rerank_factor * k`` candidates from the compressed codes are re-scored
        exactly against the stored vectors.
    train_size : int or None
        ivf: rows sampled to train the cells and codes; None gives
        ``min(n_rows, 64 * nlist)``.
    hnsw_m : int
        hnsw: graph neighbours per node.
    ef_construction : int
        hnsw: candidate list length while building.
    ef_search : int or None
        hnsw: candidate list length while searching (raised to ``k`` if smaller);
        None: chosen at build time like ``nprobe``.
    target_recall : float
        Recall@10 that build-time tuning of ``nprobe`` / ``ef_search`` aims at.
    seed : int
        Seed of the training sample and k-means.
    """

    nlist: int | None = None
    nprobe: int | None = None
    rerank_factor: int = 50
    train_size: int | None = None
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int | None = None
    target_recall: float = 0.95
    seed: int = 0


def _import_faiss() -> Any:
    import faiss

    return faiss


def _default_nlist(n: int) -> int:
    return max(1, 2 ** round(math.log2(max(math.sqrt(n), 1.0))))


def build_faiss(store: _VectorStore, kind: str, params: IndexParams) -> Any:
    """Build the faiss index of ``kind`` over every row of ``store``.

    For ``"ivf"`` the resolved ``nlist`` is written back to ``params``.
    """
    faiss = _import_faiss()
    n, dim, p = len(store), store.dim, params
    t0 = time.perf_counter()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, p.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = p.ef_construction
    else:
        nlist = p.nlist if p.nlist is not None else _default_nlist(n)
        train_size = min(n, p.train_size if p.train_size is not None else 64 * nlist)
        if nlist < 1 or train_size < max(nlist, 16):
            msg = (
                f"an 'ivf' index with nlist={nlist} needs at least {max(nlist, 16)} "
                f"training rows, got {train_size} (of {n} rows); use kind='exact' "
                "or a smaller nlist"
            )
            raise ValueError(msg)
        p.nlist = nlist
        # one 4-bit code per two dimensions (or per dimension when d is odd)
        n_codes = dim // 2 if dim % 2 == 0 else dim
        index = faiss.index_factory(dim, f"IVF{nlist},PQ{n_codes}x4fs", faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = p.seed
        index.cp.niter = 20
        rng = np.random.default_rng(p.seed)
        sample = np.sort(rng.choice(n, size=train_size, replace=False))
        index.train(store.gather(sample))
        log.info(
            "trained IVF%d,PQ%dx4fs on %d rows in %.1f s",
            nlist,
            n_codes,
            train_size,
            time.perf_counter() - t0,
        )
    for _, block in store.chunks():
        index.add(np.ascontiguousarray(block))
    log.info("built %s index of %d rows in %.1f s", kind, n, time.perf_counter() - t0)
    return index


def hnsw_search(
    index: Any, store: _VectorStore, params: IndexParams, q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` scores and positions of normalised queries ``q`` in an hnsw ``index``.

    ``store`` holds the same rows as ``index``; the graph's scores are exact.
    """
    # an hnsw index built empty has had nothing to tune ef_search on
    index.hnsw.efSearch = max(params.ef_search or 128, k)
    scores, pos = index.search(q, min(k, len(store)))
    return _pad(scores, pos, k)


def ivf_search(
    index: Any, store: _VectorStore, params: IndexParams, q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``q`` in an ivf ``index``, candidates re-scored against ``store``."""
    p = params
    nprobe = index.nlist if p.nprobe is None else p.nprobe
    index.nprobe = max(1, min(int(nprobe), index.nlist))
    threads = _import_faiss().omp_get_max_threads()
    # one query per thread leaves threads idle for a single query: split its lists
    # instead when the scan is long (measured on 2 cores, 1M x 256-d, nprobe 896 of
    # 1024: 6.6 -> 4.4 ms; batches of 2+ and short scans are faster the default
    # way, see benchmarks/search_latency.py and docs/search_index.md)
    codes = index.nprobe * index.ntotal / max(1, index.nlist)
    split = 1 < threads and len(q) < threads and codes >= _SPLIT_MIN_CODES
    index.implem = _IMPLEM_SPLIT_LISTS if split else _IMPLEM_DEFAULT
    n_cand = min(max(k, p.rerank_factor * k), len(store))
    _, cand = index.search(q, n_cand)
    m = len(q)
    scores = np.full((m, k), -np.inf, dtype=np.float32)
    positions = np.full((m, k), -1, dtype=np.int64)
    step = max(1, _TEMP_ELEMENTS // (n_cand * store.dim))
    for qs in range(0, m, step):
        c = cand[qs : qs + step]
        valid = c >= 0
        exact = np.full(c.shape, -np.inf, dtype=np.float32)
        rows = store.gather(c[valid])
        qrep = np.repeat(q[qs : qs + step], valid.sum(axis=1), axis=0)
        exact[valid] = np.einsum("ij,ij->i", rows, qrep)
        kk = min(k, c.shape[1])
        top = np.argpartition(exact, c.shape[1] - kk, axis=1)[:, -kk:]
        s, pos = _sorted_desc(np.take_along_axis(exact, top, 1), np.take_along_axis(c, top, 1))
        s, pos = _pad(s, pos, k)
        scores[qs : qs + step], positions[qs : qs + step] = s, pos
    return scores, positions
