"""`EmbeddingIndex`: the public face of an index, delegating to one module per concern.

The vectors live in a `~.store._VectorStore`; ``"exact"`` searches go to
`~.exact.exact_search`, the approximate kinds to the faiss backends
(`~.backends`), build-time tuning to `~.tuning` and files to `~.persist`.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..._version import __version__
from ...errors import GalaxAlignWarning, OutputExistsError
from . import tuning
from .backends import INDEX_KINDS, IndexParams, _import_faiss, build_faiss, hnsw_search, ivf_search
from .errors import DuplicateIdError, EmptyIndexError, IndexMismatchError
from .exact import exact_search
from .persist import (
    _FAISS,
    _FORMAT,
    _FORMAT_VERSION,
    _IDS,
    _METRIC,
    _SIDECAR,
    _VECTORS,
    _now,
    _sha256_file,
    check_unchanged_since_load,
    index_lock,
    read_index_files,
    remove_stale_files,
    write_index_files,
)
from .store import _CHUNK_ROWS, _check_ids, _ids_sha256, _normalised, _VectorStore

__all__ = ["EXACT_MAX_ROWS", "EmbeddingIndex"]

log = logging.getLogger(__name__)

#: ``kind="auto"`` builds an exact index up to this many rows and an ``"ivf"`` one above
#: (ours): below it an exact query reads at most 50-100 MB (d=128-256), 2-10 ms on two
#: idle cores, and is exact; see ``docs/search_index.md``
EXACT_MAX_ROWS = 100_000


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
        self._created: str | None = _now()
        self._faiss: Any = None
        self._faiss_file: Path | None = None
        self._tuning: dict[str, Any] | None = None
        #: (directory, sidecar sha256) this index was loaded from or last saved to
        self._origin: tuple[str, str | None] | None = None
        if kind != "exact":
            self._faiss = build_faiss(self._store, kind, self.params)
            unset = self.params.nprobe if kind == "ivf" else self.params.ef_search
            if unset is None and n:
                self._tuning = tuning.tune_on_rows(kind, self._faiss, self._store, self.params)

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
            scores, pos = exact_search(self._store, q, k)
        elif self._kind == "hnsw":
            scores, pos = hnsw_search(self._faiss, self._store, self.params, q, k)
        else:
            scores, pos = ivf_search(self._faiss, self._store, self.params, q, k)
        ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1).astype(np.int64)
        # rounding can push the inner product of unit vectors a hair above 1
        np.minimum(scores, np.float32(1.0), out=scores)
        if single:
            return scores[0], ids[0]
        return scores, ids

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
        _, truth = exact_search(self._store, q, k)
        records = tuning.sweep(
            self._kind, self._faiss, self._store, self.params, q, truth, k, target_recall
        )
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
        check_unchanged_since_load(path, self._origin, len(self))
        remove_stale_files(path)
        meta = self.metadata
        meta["saved"] = _now()
        write_index_files(path, meta, self._store, self._ids, self._faiss, self._faiss_file)
        self._origin = (os.path.realpath(path), _sha256_file(sidecar))
        log.info("saved %r to %s", self, path)
        return path

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
        files = read_index_files(path, mmap=mmap)
        meta, catalog = files.meta, files.meta["catalog"]
        self = cls.__new__(cls)
        self._kind = files.kind
        self._dim = files.dim
        self._store = _VectorStore(files.dim, [files.vectors])
        self._ids = files.ids
        self.params = files.params
        self._model_name = meta.get("model_name")
        self._weights_sha256 = meta.get("weights_sha256")
        self._catalog_path = catalog.get("path")
        self._catalog_rows = catalog.get("n_rows")
        self._created = meta.get("created")
        self._tuning = meta.get("tuning")
        self._faiss = files.faiss_index
        self._faiss_file = files.faiss_file
        self._origin = files.origin
        log.info("loaded %r from %s (mmap=%s)", self, path, mmap)
        return self
