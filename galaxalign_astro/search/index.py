"""Cosine-similarity index over embedding vectors keyed by catalog row.

An `EmbeddingIndex` holds L2-normalised float32 embeddings, one per catalog row,
and answers k-nearest-neighbour queries by inner product (= cosine similarity).
Three kinds share one interface:

``"exact"``
    Blocked BLAS matrix products plus top-k selection over the stored vectors;
    exact results, no slower than faiss ``IndexFlatIP``. Works on a memory-mapped
    store, so it scales past RAM.
``"ivf"``
    faiss inverted file (``nlist`` k-means cells) with 4-bit product-quantised
    fast-scan codes (one 4-bit code per two dimensions); the ``rerank_factor * k``
    best candidates are re-scored exactly against the stored vectors, so returned
    scores are exact cosines (ours). Fewer queries than faiss has threads (a single
    interactive query) that scan many codes are scanned with the inverted lists
    split across the threads; batches and short scans one query per thread.
``"hnsw"``
    faiss HNSW graph over the full vectors (``IndexHNSWFlat``); scores are exact.

When left unset, ``nprobe`` (ivf) and ``efSearch`` (hnsw) are tuned at build time
for a recall target with sample rows of the index as queries (ours).

``kind="auto"`` picks ``"exact"`` up to `EXACT_MAX_ROWS` rows and ``"ivf"`` above
(ours; see ``docs/search_index.md`` for the measurements behind the threshold).

An index is saved as a directory: ``vectors.npy`` (normalised float32, always
present; the ground truth every kind re-ranks from or can be rebuilt from),
``ids.npy`` (int64 catalog ids), ``index.faiss`` (ivf and hnsw only) and the JSON
sidecar ``index.json`` recording the model, weights sha256, dimension, metric,
kind, parameters, catalog and provenance. `EmbeddingIndex.load` memory-maps the
files so an index larger than RAM can be queried.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._version import __version__
from ..catalog.locks import LockFile, exclusive_lock, lock_timeout
from ..errors import GalaxAlignError, GalaxAlignWarning, OutputExistsError

__all__ = [
    "EXACT_MAX_ROWS",
    "INDEX_KINDS",
    "DuplicateIdError",
    "EmbeddingIndex",
    "EmptyIndexError",
    "IndexFileError",
    "IndexMismatchError",
    "IndexParams",
    "index_lock",
    "remove_stale_files",
]

log = logging.getLogger(__name__)

#: ``kind="auto"`` builds an exact index up to this many rows and an ``"ivf"`` one above
#: (ours): below it an exact query reads at most 50-100 MB (d=128-256), 2-10 ms on two
#: idle cores, and is exact; see ``docs/search_index.md``
EXACT_MAX_ROWS = 100_000

#: index kinds accepted by `EmbeddingIndex`
INDEX_KINDS = ("auto", "exact", "ivf", "hnsw")

_FORMAT = "galaxalign-astro embedding index"
_FORMAT_VERSION = 1
_SIDECAR = "index.json"
_VECTORS = "vectors.npy"
_IDS = "ids.npy"
_FAISS = "index.faiss"
#: lock file every writer of an index directory holds while it changes the directory
INDEX_LOCK = ".galaxalign.lock"
#: temporary files of the index's files and of ``search.json`` (``.<file>.<random>.partial``;
#: before the random part existed, ``.<file>.partial``): only a writer holding the lock
#: makes them, so one found by the lock's holder was left by a killed writer
_PARTIAL_RE = re.compile(
    r"\.(vectors\.npy|ids\.npy|index\.faiss|index\.json|search\.json)(\.[\w-]+)?\.partial"
)
_METRIC = "cosine"
#: rows per chunk when streaming vectors (64 MiB at d=256)
_CHUNK_ROWS = 65536
#: upper bound on the elements of temporary score / gather arrays (64 MiB of float32)
_TEMP_ELEMENTS = 1 << 24
#: sample rows used as queries when tuning ``nprobe`` / ``ef_search`` at build time
_TUNE_ROWS = 200
#: faiss fast-scan search implementations: 14 splits one query's inverted lists over
#: the OpenMP threads (``IndexIVFFastScan.implem``), 0 lets faiss choose (one query
#: per thread); the results are identical
_IMPLEM_SPLIT_LISTS = 14
_IMPLEM_DEFAULT = 0
#: a lone query's lists are split over the threads when it scans at least this many
#: codes (``nprobe`` times the mean list length); below, starting the threads costs
#: more than they save (crossover measured near 30,000 codes, 2 cores, d=256)
_SPLIT_MIN_CODES = 50_000
#: with single-threaded BLAS, exact search of at most this many queries uses faiss's
#: kernel (faster there), everything else numpy BLAS
_FAISS_MAX_QUERIES = 4


class IndexMismatchError(GalaxAlignError, ValueError):
    """Queries or a model do not match the index (dimension, model name, weights, catalog)."""


class DuplicateIdError(GalaxAlignError, ValueError):
    """Catalog ids given to an index are not unique."""


class EmptyIndexError(GalaxAlignError, ValueError):
    """A search was asked of an index with no rows."""


class IndexFileError(GalaxAlignError):
    """An index directory is missing files or its files disagree with its sidecar."""


@contextlib.contextmanager
def index_lock(
    directory: str | os.PathLike[str], *, timeout: float | None = None
) -> Iterator[LockFile]:
    """Hold the writer lock of the index directory ``directory`` (created if needed).

    Every writer of an index directory holds it while it writes (`EmbeddingIndex.save`
    and `~galaxalign_astro.search.save_search_index` take it themselves). A
    read-modify-write, loading an index, adding rows and saving it back, holds it
    from before the load to after the save, so that a concurrent one waits instead
    of dropping this one's rows::

        with index_lock("gal.index"):
            found = open_search_index("gal.index")
            add_catalog_rows(found.index, "catalog.fits")
            save_search_index(found.index, "gal.index", overwrite=True)

    The lock is an ``fcntl.flock`` on ``<directory>/.galaxalign.lock`` (removed
    again when released), re-entrant within a thread.

    Parameters
    ----------
    directory : str or os.PathLike
        Index directory.
    timeout : float, optional
        Seconds to wait for another writer; default
        `~galaxalign_astro.catalog.locks.lock_timeout` (60, or
        ``$GALAXALIGN_ASTRO_LOCK_TIMEOUT``).

    Raises
    ------
    OutputLockedError
        Another writer still holds the lock after ``timeout``; the message names the
        index and that writer.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    wait = lock_timeout() if timeout is None else timeout
    with exclusive_lock(path / INDEX_LOCK, what=f"index {path}", timeout=wait) as lock:
        yield lock


def _new_partial(directory: Path, name: str) -> Path:
    """Create an empty ``.<name>.<random>.partial`` in ``directory``, a name no other writer has.

    Permissions follow the umask, as those of the file it becomes.
    """
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.partial"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def remove_stale_files(path: Path, pattern: re.Pattern[str] = _PARTIAL_RE) -> None:
    """Remove the files of ``path`` named by ``pattern``: left by killed writers.

    Call it holding the index's lock (`index_lock`): only the lock's holder makes
    such files, so any found then belong to no live writer.
    """
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    log.info("removed %s, left in %s by a killed writer", entry.name, path)


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


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


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


def _default_nlist(n: int) -> int:
    return max(1, 2 ** round(math.log2(max(math.sqrt(n), 1.0))))


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


def _sorted_desc(s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(p, order, axis=1)


def _blas_threads() -> int:
    """Threads OpenBLAS will use, from the environment as OpenBLAS reads it."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _exact_search(store: _VectorStore, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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


class EmbeddingIndex:
    """Cosine-similarity k-nearest-neighbour index over embeddings of catalog rows.

    Parameters
    ----------
    embeddings : array_like, shape (n, d)
        One embedding per row; any scale (rows are L2-normalised on the way in, and
        a zero or non-finite row is an error). May be a memory map: it is read in
        chunks. ``n`` may be 0 (an empty index that rows are added to later).
    ids : array_like of int, shape (n,), optional
        Catalog row of each embedding, unique and >= 0; default ``0 .. n-1``.
    kind : {"auto", "exact", "ivf", "hnsw"}
        Search structure; ``"auto"`` is ``"exact"`` up to ``exact_max_rows`` rows,
        ``"ivf"`` above. The choice is made once, at build time.
    exact_max_rows : int
        Threshold of ``kind="auto"``; default `EXACT_MAX_ROWS`.
    params : IndexParams, optional
        Tuning of the approximate kinds.
    model_name, weights_sha256 : str, optional
        Model that produced the embeddings; recorded and checked by
        `check_compatible`.
    catalog_path : str or os.PathLike, optional
        Catalog the ids refer to (recorded as given).
    catalog_rows : int, optional
        Row count of that catalog; every id must be below it.

    Notes
    -----
    `search` returns exact cosine similarities for every kind (the ivf kind
    re-scores its candidates against the stored vectors); only which rows come
    back is approximate.
    """

    def __init__(
        self,
        embeddings: Any,
        *,
        ids: Any = None,
        kind: str = "auto",
        exact_max_rows: int = EXACT_MAX_ROWS,
        params: IndexParams | None = None,
        model_name: str | None = None,
        weights_sha256: str | None = None,
        catalog_path: str | os.PathLike[str] | None = None,
        catalog_rows: int | None = None,
    ) -> None:
        if kind not in INDEX_KINDS:
            msg = f"kind must be one of {INDEX_KINDS}, got {kind!r}"
            raise ValueError(msg)
        vectors = _normalised(embeddings, what="embeddings")
        n, dim = vectors.shape
        if dim == 0:
            msg = "embeddings must have at least one dimension, got d=0"
            raise ValueError(msg)
        ids = np.arange(n, dtype=np.int64) if ids is None else _check_ids(ids, n, what="ids")
        if kind == "auto":
            kind = "exact" if n <= exact_max_rows else "ivf"
            log.info("index kind 'auto' -> %r for %d rows (threshold %d)", kind, n, exact_max_rows)
        self._kind = kind
        self._dim = dim
        self._store = _VectorStore(dim, [vectors])
        self._ids = ids
        self.params = IndexParams() if params is None else IndexParams(**asdict(params))
        self._model_name = model_name
        self._weights_sha256 = weights_sha256.lower() if weights_sha256 else None
        self._catalog_path = None if catalog_path is None else os.fspath(catalog_path)
        self._catalog_rows = None if catalog_rows is None else int(catalog_rows)
        self._check_catalog_range(ids)
        self._created = _now()
        self._faiss: Any = None
        self._faiss_file: Path | None = None
        self._tuning: dict[str, Any] | None = None
        #: (directory, sidecar sha256) this index was loaded from or last saved to
        self._origin: tuple[str, str | None] | None = None
        if kind != "exact":
            self._faiss = self._build_faiss()
            unset = self.params.nprobe if kind == "ivf" else self.params.ef_search
            if unset is None and n:
                self._tune_on_rows()

    # -- construction -------------------------------------------------------------------

    def _build_faiss(self) -> Any:
        faiss = _import_faiss()
        n, dim, p = len(self._store), self._dim, self.params
        t0 = time.perf_counter()
        if self._kind == "hnsw":
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
            index = faiss.index_factory(
                dim, f"IVF{nlist},PQ{n_codes}x4fs", faiss.METRIC_INNER_PRODUCT
            )
            index.cp.seed = p.seed
            index.cp.niter = 20
            rng = np.random.default_rng(p.seed)
            sample = np.sort(rng.choice(n, size=train_size, replace=False))
            index.train(self._store.gather(sample))
            log.info(
                "trained IVF%d,PQ%dx4fs on %d rows in %.1f s",
                nlist,
                n_codes,
                train_size,
                time.perf_counter() - t0,
            )
        for _, block in self._store.chunks():
            index.add(np.ascontiguousarray(block))
        log.info("built %s index of %d rows in %.1f s", self._kind, n, time.perf_counter() - t0)
        return index

    def _tune_on_rows(self) -> None:
        """Tune the unset search parameter with sample rows as queries (self excluded)."""
        name = "nprobe" if self._kind == "ivf" else "ef_search"
        n = len(self)
        k = min(10, n - 1)
        if k < 1:
            setattr(self.params, name, self._tuning_grid(1)[-1])
            return
        rng = np.random.default_rng(self.params.seed + 1)
        rows = np.sort(rng.choice(n, size=min(_TUNE_ROWS, n), replace=False))
        q = self._store.gather(rows)
        _, truth = _exact_search(self._store, q, k + 1)
        records = self._sweep(q, _drop_self(truth, rows, k), k, self.params.target_recall, rows)
        self._tuning = {"queries": "index rows", "n_queries": len(rows), "k": k, **records[-1]}

    def _tuning_grid(self, k: int) -> list[int]:
        if self._kind == "ivf":
            nlist = self._faiss.nlist
            fractions = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1)
            return sorted({max(1, round(nlist * f)) for f in fractions})
        return [v for v in (16, 32, 64, 128, 256, 512, 1024, 2048) if v >= k] or [k]

    def _sweep(
        self,
        q: np.ndarray,
        truth: np.ndarray,
        k: int,
        target: float,
        exclude: np.ndarray | None = None,
    ) -> list[dict[str, float]]:
        """Try the tuning grid from cheap to dear; keep the first value reaching ``target``.

        ``truth`` holds the true neighbour positions; with ``exclude`` (one position
        per query), that position is dropped from what the index finds.
        """
        name = "nprobe" if self._kind == "ivf" else "ef_search"
        search = self._ivf_search if self._kind == "ivf" else self._hnsw_search
        grid = self._tuning_grid(k)
        records: list[dict[str, float]] = []
        for value in grid:
            setattr(self.params, name, value)
            t0 = time.perf_counter()
            _, found = search(q, k if exclude is None else k + 1)
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

    def _check_catalog_range(self, ids: np.ndarray) -> None:
        if self._catalog_rows is not None and len(ids) and int(ids.max()) >= self._catalog_rows:
            msg = (
                f"id {int(ids.max())} is outside the catalog of {self._catalog_rows} rows "
                f"({self._catalog_path or 'catalog_rows'})"
            )
            raise IndexMismatchError(msg)

    # -- properties ---------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """Resolved index kind: ``"exact"``, ``"ivf"`` or ``"hnsw"``."""
        return self._kind

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._dim

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        """Catalog ids in storage order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def model_name(self) -> str | None:
        """Name of the model that produced the embeddings, if recorded."""
        return self._model_name

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of that model's weights, if recorded."""
        return self._weights_sha256

    @property
    def metadata(self) -> dict[str, Any]:
        """The sidecar record `save` writes (computes the ids checksum)."""
        faiss_version = None
        if self._faiss is not None:
            faiss_version = _import_faiss().__version__
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "model_name": self._model_name,
            "weights_sha256": self._weights_sha256,
            "embedding_dim": self._dim,
            "metric": _METRIC,
            "kind": self._kind,
            "n_rows": len(self),
            "catalog": {
                "path": self._catalog_path,
                "n_rows": self._catalog_rows,
                "ids_sha256": _ids_sha256(self._ids),
            },
            "params": asdict(self.params),
            "tuning": self._tuning,
            "package_version": __version__,
            "faiss_version": faiss_version,
            "created": self._created,
            "files": {
                "vectors": _VECTORS,
                "ids": _IDS,
                "faiss": _FAISS if self._faiss is not None else None,
            },
        }

    def __repr__(self) -> str:
        return (
            f"EmbeddingIndex(kind={self._kind!r}, n_rows={len(self)}, dim={self._dim}, "
            f"model_name={self._model_name!r})"
        )

    # -- checks -------------------------------------------------------------------------

    def check_compatible(
        self,
        *,
        model_name: str | None = None,
        weights_sha256: str | None = None,
        embedding_dim: int | None = None,
        catalog_rows: int | None = None,
    ) -> None:
        """Raise `IndexMismatchError` if the index was built for something else.

        Each argument given is compared with what the index records. A value the
        index does not record cannot be checked and gives a `GalaxAlignWarning`.

        Parameters
        ----------
        model_name, weights_sha256 : str, optional
            Model about to encode queries (sha256 compared case-insensitively).
        embedding_dim : int, optional
            Dimension of the query embeddings.
        catalog_rows : int, optional
            Row count of the catalog the results will be looked up in.
        """
        recorded = {
            "model_name": self._model_name,
            "weights_sha256": self._weights_sha256,
            "embedding_dim": self._dim,
            "catalog_rows": self._catalog_rows,
        }
        given = {
            "model_name": model_name,
            "weights_sha256": weights_sha256.lower() if weights_sha256 else weights_sha256,
            "embedding_dim": embedding_dim,
            "catalog_rows": catalog_rows,
        }
        for key, value in given.items():
            if value is None:
                continue
            if recorded[key] is None:
                warnings.warn(
                    f"the index records no {key}; cannot check {value!r} against it",
                    GalaxAlignWarning,
                    stacklevel=2,
                )
            elif recorded[key] != value:
                msg = (
                    f"index was built with {key}={recorded[key]!r} but {value!r} was given; "
                    "rebuild the index for this model or use the matching one"
                )
                raise IndexMismatchError(msg)

    def _queries(self, queries: Any) -> tuple[np.ndarray, bool]:
        q = np.asarray(queries)
        single = q.ndim == 1
        if single:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self._dim:
            msg = (
                f"queries must have shape (m, {self._dim}) or ({self._dim},) to match the "
                f"index dimension, got {np.shape(queries)}"
            )
            raise IndexMismatchError(msg)
        return _normalised(q, what="queries"), single

    # -- search -------------------------------------------------------------------------

    def search(self, queries: Any, *, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` rows most cosine-similar to each query.

        Parameters
        ----------
        queries : array_like, shape (m, d) or (d,)
            Query embeddings (any scale; normalised here).
        k : int
            Neighbours per query. If fewer than ``k`` rows exist (or an approximate
            kind finds fewer candidates) the missing places hold id -1 and score
            ``-inf``.

        Returns
        -------
        scores : ndarray of float32, shape (m, k), or (k,) for a 1-d query
            Cosine similarities, best first.
        ids : ndarray of int64, same shape
            Catalog ids of the neighbours.

        Raises
        ------
        EmptyIndexError
            The index holds no rows.
        IndexMismatchError
            The query dimension differs from the index's.
        """
        if int(k) != k or k < 1:
            msg = f"k must be a positive integer, got {k!r}"
            raise ValueError(msg)
        k = int(k)
        if len(self) == 0:
            msg = "the index is empty; add rows before searching"
            raise EmptyIndexError(msg)
        q, single = self._queries(queries)
        if self._kind == "exact":
            scores, pos = _exact_search(self._store, q, k)
        elif self._kind == "hnsw":
            scores, pos = self._hnsw_search(q, k)
        else:
            scores, pos = self._ivf_search(q, k)
        ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1).astype(np.int64)
        # rounding can push the inner product of unit vectors a hair above 1
        np.minimum(scores, np.float32(1.0), out=scores)
        if single:
            return scores[0], ids[0]
        return scores, ids

    def _pad(self, scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = scores.astype(np.float32, copy=False)
        scores[pos < 0] = -np.inf
        if pos.shape[1] < k:
            extra = k - pos.shape[1]
            scores = np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf)
            pos = np.pad(pos, ((0, 0), (0, extra)), constant_values=-1)
        return scores, pos

    def _hnsw_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # an hnsw index built empty has had nothing to tune ef_search on
        self._faiss.hnsw.efSearch = max(self.params.ef_search or 128, k)
        scores, pos = self._faiss.search(q, min(k, len(self)))
        return self._pad(scores, pos, k)

    def _ivf_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        nprobe = self._faiss.nlist if p.nprobe is None else p.nprobe
        self._faiss.nprobe = max(1, min(int(nprobe), self._faiss.nlist))
        threads = _import_faiss().omp_get_max_threads()
        # one query per thread leaves threads idle for a single query: split its lists
        # instead when the scan is long (measured on 2 cores, 1M x 256-d, nprobe 896 of
        # 1024: 6.6 -> 4.4 ms; batches of 2+ and short scans are faster the default
        # way, see benchmarks/search_latency.py and docs/search_index.md)
        codes = self._faiss.nprobe * self._faiss.ntotal / max(1, self._faiss.nlist)
        split = 1 < threads and len(q) < threads and codes >= _SPLIT_MIN_CODES
        self._faiss.implem = _IMPLEM_SPLIT_LISTS if split else _IMPLEM_DEFAULT
        n_cand = min(max(k, p.rerank_factor * k), len(self))
        _, cand = self._faiss.search(q, n_cand)
        m = len(q)
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        positions = np.full((m, k), -1, dtype=np.int64)
        step = max(1, _TEMP_ELEMENTS // (n_cand * self._dim))
        for qs in range(0, m, step):
            c = cand[qs : qs + step]
            valid = c >= 0
            exact = np.full(c.shape, -np.inf, dtype=np.float32)
            rows = self._store.gather(c[valid])
            qrep = np.repeat(q[qs : qs + step], valid.sum(axis=1), axis=0)
            exact[valid] = np.einsum("ij,ij->i", rows, qrep)
            kk = min(k, c.shape[1])
            top = np.argpartition(exact, c.shape[1] - kk, axis=1)[:, -kk:]
            s, pos = _sorted_desc(np.take_along_axis(exact, top, 1), np.take_along_axis(c, top, 1))
            s, pos = self._pad(s, pos, k)
            scores[qs : qs + step], positions[qs : qs + step] = s, pos
        return scores, positions

    def tune(
        self, queries: Any, *, k: int = 10, target_recall: float = 0.95
    ) -> list[dict[str, float]]:
        """Set the cheapest ``nprobe`` (ivf) or ``ef_search`` (hnsw) reaching a recall.

        Values on a fixed grid are tried from cheap to expensive; for each, recall@k
        of ``queries`` against exact search is measured, and the first value that
        reaches ``target_recall`` is kept in `params` (the most expensive one, with
        a `GalaxAlignWarning`, if none does). Queries should resemble real ones and
        not be rows of the index (a row finds itself too easily).

        Returns
        -------
        list of dict
            One record per value tried: the parameter, ``recall`` and
            ``ms_per_query`` (batched wall time).
        """
        if self._kind == "exact":
            msg = "an exact index has nothing to tune"
            raise ValueError(msg)
        if len(self) == 0:
            msg = "the index is empty; add rows before tuning"
            raise EmptyIndexError(msg)
        q, _ = self._queries(queries)
        _, truth = _exact_search(self._store, q, k)
        records = self._sweep(q, truth, k, target_recall)
        self._tuning = {"queries": "given", "n_queries": len(q), "k": k, **records[-1]}
        return records

    # -- incremental update ---------------------------------------------------------------

    def add(self, embeddings: Any, *, ids: Any = None) -> np.ndarray:
        """Append rows; they are searchable at once and saved by the next `save`.

        Parameters
        ----------
        embeddings : array_like, shape (m, d)
            New embeddings (normalised here).
        ids : array_like of int, shape (m,), optional
            Their catalog ids; default continues after the largest id present.

        Returns
        -------
        ndarray of int64
            The ids given to the new rows.

        Raises
        ------
        DuplicateIdError
            An id repeats within ``ids`` or is already in the index.
        IndexMismatchError
            The dimension differs from the index's, or an id is outside the catalog.
        """
        x = np.asarray(embeddings)
        if x.ndim != 2 or x.shape[1] != self._dim:
            msg = f"embeddings must have shape (m, {self._dim}), got {x.shape}"
            raise IndexMismatchError(msg)
        vectors = _normalised(x, what="embeddings")
        m = len(vectors)
        if ids is None:
            start = int(self._ids.max()) + 1 if len(self._ids) else 0
            new_ids = np.arange(start, start + m, dtype=np.int64)
        else:
            new_ids = _check_ids(ids, m, what="ids")
            clash = new_ids[np.isin(new_ids, self._ids)]
            if len(clash):
                msg = f"ids {clash[:5].tolist()} are already in the index"
                raise DuplicateIdError(msg)
        self._check_catalog_range(new_ids)
        if m == 0:
            return new_ids
        if self._faiss is not None:
            self._own_faiss()
            for start in range(0, m, _CHUNK_ROWS):
                self._faiss.add(vectors[start : start + _CHUNK_ROWS])
        self._store.append(vectors)
        self._ids = np.concatenate([self._ids, new_ids])
        log.info("added %d rows to the %s index (now %d)", m, self._kind, len(self))
        return new_ids

    def _own_faiss(self) -> None:
        """Replace a memory-mapped faiss index by an in-memory copy before changing it."""
        if self._faiss_file is None:
            return
        log.info("reading %s into memory to add rows to it", self._faiss_file)
        self._faiss = _import_faiss().read_index(str(self._faiss_file))
        self._faiss_file = None

    # -- persistence --------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the index to ``directory`` (created if needed) and return its path.

        Files are written under temporary names of their own and then renamed, so
        saving back into the directory an index was memory-mapped from is safe on
        POSIX systems. The directory's writer lock (`index_lock`) is held meanwhile.

        Saving back into the directory the index was loaded from (or last saved to)
        checks that nobody else saved there since: rows another writer added would
        otherwise be lost.

        Raises
        ------
        OutputExistsError
            ``directory`` already holds an index and ``overwrite`` is False.
        IndexFileError
            Another writer saved into ``directory`` after this index was loaded
            from it; load it again and redo the change.
        OutputLockedError
            Another writer holds the directory's lock (see `index_lock`).
        """
        path = Path(directory)
        with index_lock(path):
            return self._save_locked(path, overwrite=overwrite)

    def _save_locked(self, path: Path, *, overwrite: bool) -> Path:
        sidecar = path / _SIDECAR
        if sidecar.exists() and not overwrite:
            msg = f"{sidecar} exists; pass overwrite=True to replace the index in {path}"
            raise OutputExistsError(msg)
        self._check_unchanged_since_load(path)
        remove_stale_files(path)
        meta = self.metadata
        meta["saved"] = _now()
        written: list[tuple[Path, Path]] = []
        try:
            self._write_partials(path, meta, written)
        except BaseException:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise
        for src, dst in written:
            os.replace(src, dst)
        if self._faiss is None and (path / _FAISS).exists():
            (path / _FAISS).unlink()
        self._origin = (os.path.realpath(path), _sha256_file(sidecar))
        log.info("saved %r to %s", self, path)
        return path

    def _check_unchanged_since_load(self, path: Path) -> None:
        """Refuse to save over an index another writer saved after this one was read."""
        origin = self._origin
        if origin is None or origin[0] != os.path.realpath(path):
            return
        now = _sha256_file(path / _SIDECAR)
        if now is not None and now != origin[1]:
            try:
                rows = json.loads((path / _SIDECAR).read_text(encoding="utf-8"))["n_rows"]
            except (OSError, ValueError, KeyError, TypeError):
                rows = "?"
            msg = (
                f"index {path} was saved by another writer after this copy was loaded "
                f"(it now has {rows} rows, this copy {len(self)}); saving would drop that "
                "writer's changes: load it again and redo the change"
            )
            raise IndexFileError(msg)

    def _write_partials(
        self, path: Path, meta: dict[str, Any], written: list[tuple[Path, Path]]
    ) -> None:
        """Write every file of `save` under a temporary name, listing ``(tmp, final)``.

        Each file is listed before it is written so a failed save can remove it. The
        temporary names are unique (`_new_partial`).
        """

        def partial(name: str) -> Path:
            written.append((_new_partial(path, name), path / name))
            return written[-1][0]

        with open(partial(_VECTORS), "wb") as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": (len(self), self._dim)}
            np.lib.format.write_array_header_1_0(fh, header)
            for _, block in self._store.chunks():
                fh.write(np.ascontiguousarray(block, dtype="<f4").data)
        with open(partial(_IDS), "wb") as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(self._ids, dtype="<i8"))
        if self._faiss is not None:
            tmp = partial(_FAISS)
            if self._faiss_file is not None:
                # a memory-mapped faiss index is unchanged since it was read (add() reads
                # it into memory first), and faiss may write such an index as a reference
                # to its source file, so copy the file itself
                shutil.copyfile(self._faiss_file, tmp)
            else:
                _import_faiss().write_index(self._faiss, str(tmp))
        partial(_SIDECAR).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, mmap: bool = True) -> EmbeddingIndex:
        """Read an index written by `save`.

        Parameters
        ----------
        directory : str or os.PathLike
            Index directory.
        mmap : bool
            Memory-map the files instead of reading them (default): the vectors and
            ids with ``np.load(mmap_mode="r")``, a faiss ivf index with
            ``IO_FLAG_MMAP`` and the vectors of a faiss hnsw index with
            ``IO_FLAG_MMAP_IFC``, so an index larger than RAM can be queried. Rows
            added later are held in memory (and a memory-mapped faiss index is read
            into memory first) until the next `save`.

        Raises
        ------
        IndexFileError
            A file is missing or disagrees with the sidecar (shape, row count, ids
            checksum, format version).
        """
        path = Path(directory)
        sidecar = path / _SIDECAR
        if not sidecar.is_file():
            msg = f"{sidecar} not found; {path} is not a saved embedding index"
            raise IndexFileError(msg)
        try:
            raw = sidecar.read_bytes()
            meta = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"cannot read index sidecar {sidecar}: {exc}"
            raise IndexFileError(msg) from exc
        if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
            msg = (
                f"{sidecar} is format {meta.get('format')!r} version "
                f"{meta.get('format_version')!r}; this package reads {_FORMAT!r} version "
                f"{_FORMAT_VERSION}"
            )
            raise IndexFileError(msg)
        try:
            n, dim, kind = int(meta["n_rows"]), int(meta["embedding_dim"]), meta["kind"]
            catalog = meta["catalog"]
            params = IndexParams(**{f.name: meta["params"][f.name] for f in fields(IndexParams)})
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"index sidecar {sidecar} lacks or garbles field {exc}"
            raise IndexFileError(msg) from exc
        if kind not in INDEX_KINDS[1:]:
            msg = f"{sidecar} records unknown index kind {kind!r}"
            raise IndexFileError(msg)
        mode: Literal["r"] | None = "r" if mmap else None
        vectors = _load_npy(path / _VECTORS, mode, np.float32, (n, dim))
        ids = _load_npy(path / _IDS, mode, np.int64, (n,))
        if _ids_sha256(ids) != catalog.get("ids_sha256"):
            msg = f"{path / _IDS} does not match the ids checksum recorded in {sidecar}"
            raise IndexFileError(msg)
        self = cls.__new__(cls)
        self._kind = kind
        self._dim = dim
        self._store = _VectorStore(dim, [vectors])
        self._ids = ids
        self.params = params
        self._model_name = meta.get("model_name")
        self._weights_sha256 = meta.get("weights_sha256")
        self._catalog_path = catalog.get("path")
        self._catalog_rows = catalog.get("n_rows")
        self._created = meta.get("created")
        self._tuning = meta.get("tuning")
        self._faiss = None
        self._faiss_file = None
        self._origin = (os.path.realpath(path), hashlib.sha256(raw).hexdigest())
        if kind != "exact":
            self._faiss, self._faiss_file = _read_faiss(path / _FAISS, kind, n, mmap=mmap)
        log.info("loaded %r from %s (mmap=%s)", self, path, mmap)
        return self


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


def _load_npy(
    path: Path, mode: Literal["r"] | None, dtype: Any, shape: tuple[int, ...]
) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode=mode, allow_pickle=False)
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise IndexFileError(msg) from exc
    if arr.dtype != dtype or arr.shape != shape:
        msg = (
            f"{path} holds {arr.dtype} {arr.shape} but the sidecar promises "
            f"{np.dtype(dtype)} {shape}"
        )
        raise IndexFileError(msg)
    return arr


def _read_faiss(path: Path, kind: str, n: int, *, mmap: bool) -> tuple[Any, Path | None]:
    faiss = _import_faiss()
    if not path.is_file():
        msg = f"{path} not found; the sidecar says this is an {kind!r} index"
        raise IndexFileError(msg)
    flags = 0
    if mmap:
        flags = faiss.IO_FLAG_MMAP if kind == "ivf" else faiss.IO_FLAG_MMAP_IFC
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        msg = f"cannot read faiss index {path}: {exc}"
        raise IndexFileError(msg) from exc
    if index.ntotal != n:
        msg = f"{path} holds {index.ntotal} vectors but the sidecar records {n} rows"
        raise IndexFileError(msg)
    return index, (path if mmap else None)
