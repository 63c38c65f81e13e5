"""Building a similarity index from a catalog's embedding column, or from cutouts.

Rows are keyed by their catalog row number (0-based), so a search result points
back into the catalog the embeddings came from. Rows whose embedding is missing
(masked, NaN, all zero: the rows ``classify`` and ``annotate`` mark
``status=error``) are left out of the index.

Catalog files are read a column at a time where the format allows it, so memory
does not grow with the other columns: FITS tables are memory-mapped, HDF5 tables
(astropy's compound layout, or one dataset per column as ``annotate
--embeddings-hdf5`` writes) are sliced with h5py and Parquet files are read one
column in record batches. Other formats (ECSV, CSV, VOTable...) are read whole.
The readers are the catalog's (`galaxalign_astro.catalog.read`).

The model that produced the embeddings is taken from the catalog's provenance:
``table.meta['galaxalign']`` (``model_name``, ``weights_sha256``, ``model_path``,
``preprocess``; written by ``classify`` and ``annotate``) or, failing that, the
header keys ``MODEL``, ``WSHA256`` and ``PREPROC``.

A saved search index is the `~galaxalign_astro.search.EmbeddingIndex` directory
plus ``search.json`` (ours), which records what a query needs besides the
vectors: the catalog's absolute path, its embedding column, and the model's path
and preprocessing.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Provenance, open_column_reader
from ..catalog.read import COLUMN_CHUNK_ROWS, ColumnView
from ..errors import GalaxAlignError, GalaxAlignWarning
from .index import (
    EXACT_MAX_ROWS,
    EmbeddingIndex,
    IndexMismatchError,
    IndexParams,
    _new_partial,
    index_lock,
)

__all__ = [
    "CATALOG_CHUNK_ROWS",
    "EMBEDDING_COL",
    "SEARCH_SIDECAR",
    "CatalogColumns",
    "CatalogProvenance",
    "SearchIndex",
    "add_catalog_rows",
    "build_index",
    "build_index_from_catalog",
    "catalog_provenance",
    "index_cutouts",
    "index_vectors",
    "open_catalog_columns",
    "open_search_index",
    "save_search_index",
    "valid_embedding_rows",
]

log = logging.getLogger(__name__)

#: default name of the embedding column (``classify``; ``annotate`` prefixes it, ``gxa_``)
EMBEDDING_COL = "embedding"
#: rows read per chunk from a catalog file (16 MiB of float32 embeddings at d=64)
CATALOG_CHUNK_ROWS = COLUMN_CHUNK_ROWS
#: file in an index directory recording its catalog, embedding column and model (ours)
SEARCH_SIDECAR = "search.json"
_SIDECAR_FORMAT = "galaxalign-astro search index"
#: already-indexed rows compared with the catalog before ``--add`` (ours)
_ADD_CHECK_ROWS = 256


# -- provenance -------------------------------------------------------------------------


#: what a catalog says about the model its embeddings came from: the package's one
#: provenance record (`galaxalign_astro.catalog.Provenance`)
CatalogProvenance = Provenance


def catalog_provenance(meta: Mapping[str, Any]) -> Provenance:
    """Read the model provenance out of a catalog's metadata.

    Parameters
    ----------
    meta : mapping
        ``table.meta`` of a catalog (or the header-like metadata of one).

    Returns
    -------
    `~galaxalign_astro.catalog.Provenance`
        Fields the metadata does not hold are None (`Provenance.from_meta`).
    """
    return Provenance.from_meta(meta)


def valid_embedding_rows(embeddings: Any) -> np.ndarray:
    """Boolean mask of the rows of an (n, d) embedding array that can be indexed.

    A row is valid when none of its values is masked or non-finite and it is not all
    zero (a cosine similarity is undefined for it).
    """
    data = np.ma.getdata(embeddings)
    mask = np.ma.getmaskarray(embeddings)
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 2:
        msg = f"embeddings must be a 2-d (n, d) array, got shape {arr.shape}"
        raise ValueError(msg)
    finite = np.isfinite(arr).all(axis=1) & ~np.asarray(mask).reshape(len(arr), -1).any(axis=1)
    return finite & (np.abs(np.where(np.isfinite(arr), arr, 0)).sum(axis=1) > 0)


# -- reading catalog files a column at a time -----------------------------------------


class CatalogColumns(ColumnView):
    """Columns of a catalog file, read a chunk (or a few rows) at a time.

    Use `open_catalog_columns`; close it (or use it as a context manager) when done.
    A `~galaxalign_astro.catalog.read.ColumnView` (over the catalog readers) that
    knows the model provenance and raises `IndexMismatchError` for rows outside it;
    its attributes are the view's (``path``, ``n_rows``, ``colnames``, ``meta``).
    """

    out_of_range_error = IndexMismatchError

    @property
    def provenance(self) -> CatalogProvenance:
        """The model provenance recorded in the catalog."""
        return catalog_provenance(self.meta)


def open_catalog_columns(catalog: str | os.PathLike[str] | Any) -> CatalogColumns:
    """Open a catalog file (or wrap an astropy Table) for reading columns in chunks.

    Parameters
    ----------
    catalog : str, path-like or `~astropy.table.Table`
        FITS, HDF5 and Parquet files are read a column at a time (see the module
        docstring); anything else `~astropy.table.Table.read` reads is read whole.

    Returns
    -------
    CatalogColumns
    """
    return CatalogColumns(open_column_reader(catalog))


# -- building ---------------------------------------------------------------------------


def _model_fields(
    provenance: CatalogProvenance, model_name: str | None, weights_sha256: str | None
) -> tuple[str | None, str | None]:
    """Model name and sha256 to record; given values must agree with the catalog's."""
    sha = weights_sha256.lower() if weights_sha256 else None
    if sha and provenance.weights_sha256 and sha != provenance.weights_sha256:
        msg = (
            f"the catalog's embeddings come from weights sha256 {provenance.weights_sha256[:12]}..."
            f" but model weights {sha[:12]}... were given"
        )
        raise IndexMismatchError(msg)
    return (model_name or provenance.model_name, sha or provenance.weights_sha256)


def build_index(
    table: Any,
    *,
    embedding_col: str = EMBEDDING_COL,
    kind: str = "auto",
    params: IndexParams | None = None,
    exact_max_rows: int = EXACT_MAX_ROWS,
    model_name: str | None = None,
    weights_sha256: str | None = None,
    catalog_path: str | os.PathLike[str] | None = None,
) -> EmbeddingIndex:
    """Build an index over the embedding column of an astropy Table.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog with an embedding column, e.g. from
        `~galaxalign_astro.inference.classify` or ``Table.read`` of a ``classify``
        or ``annotate`` output.
    embedding_col : str
        The (n, d) embedding column (``annotate`` writes ``gxa_embedding``).
    kind : {"auto", "exact", "ivf", "hnsw"}
        Index kind; see `~galaxalign_astro.search.EmbeddingIndex`.
    params : `~galaxalign_astro.search.IndexParams`, optional
        Tuning of the approximate kinds.
    exact_max_rows : int
        Threshold of ``kind="auto"``.
    model_name, weights_sha256 : str, optional
        Model of the embeddings; default from ``table.meta`` (see
        `catalog_provenance`). A sha256 that contradicts the table's is an error.
    catalog_path : str or path-like, optional
        File the table was read from, recorded in the index.

    Returns
    -------
    `~galaxalign_astro.search.EmbeddingIndex`
        Ids are the table's row numbers; rows without a valid embedding are left out.

    Raises
    ------
    ValueError
        No such column, or no row has a valid embedding.
    """
    if embedding_col not in table.colnames:
        with open_catalog_columns(table) as cols:
            cols.require(embedding_col)
    values = table[embedding_col]
    valid = valid_embedding_rows(values)
    if not valid.any():
        msg = f"no row of column {embedding_col!r} holds a valid embedding ({len(table)} rows)"
        raise ValueError(msg)
    ids = np.flatnonzero(valid)
    _log_skipped(len(table) - len(ids), embedding_col)
    name, sha = _model_fields(catalog_provenance(table.meta), model_name, weights_sha256)
    return EmbeddingIndex(
        np.asarray(np.ma.getdata(values), dtype=np.float32)[ids],
        ids=ids,
        kind=kind,
        exact_max_rows=exact_max_rows,
        params=params,
        model_name=name,
        weights_sha256=sha,
        catalog_path=None if catalog_path is None else os.path.abspath(catalog_path),
        catalog_rows=len(table),
    )


def _log_skipped(n: int, col: str) -> None:
    if n:
        log.warning("%d row(s) without a valid %r (failed rows) are not indexed", n, col)


def build_index_from_catalog(
    catalog: str | os.PathLike[str],
    *,
    embedding_col: str = EMBEDDING_COL,
    kind: str = "auto",
    params: IndexParams | None = None,
    exact_max_rows: int = EXACT_MAX_ROWS,
    model_name: str | None = None,
    weights_sha256: str | None = None,
    chunk_rows: int = CATALOG_CHUNK_ROWS,
) -> EmbeddingIndex:
    """Build an index from the embedding column of a catalog file, read in chunks.

    Valid embeddings are gathered chunk by chunk into a temporary memory-mapped file
    (in the system's temporary folder), so the peak memory is one copy of the
    normalised vectors (which `~galaxalign_astro.search.EmbeddingIndex` keeps),
    whatever else the catalog holds.

    Parameters are those of `build_index`; ``catalog`` is a file path, recorded in
    the index as an absolute path.
    """
    with open_catalog_columns(catalog) as cols:
        cols.require(embedding_col)
        name, sha = _model_fields(cols.provenance, model_name, weights_sha256)
        with tempfile.TemporaryDirectory(prefix="gxa-index-") as tmp:
            vectors, ids = _gather_valid(cols, embedding_col, chunk_rows, Path(tmp))
            _log_skipped(cols.n_rows - len(ids), embedding_col)
            return EmbeddingIndex(
                vectors,
                ids=ids,
                kind=kind,
                exact_max_rows=exact_max_rows,
                params=params,
                model_name=name,
                weights_sha256=sha,
                catalog_path=os.path.abspath(catalog),
                catalog_rows=cols.n_rows,
            )


def _gather_valid(
    cols: CatalogColumns, name: str, chunk_rows: int, tmp: Path, skip: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Valid embeddings of column ``name`` (rows not in ``skip``) and their row numbers."""
    store: np.ndarray | None = None
    ids: list[np.ndarray] = []
    used = 0
    for start, block in cols.iter_column(name, chunk_rows=chunk_rows):
        if block.ndim != 2:
            msg = f"column {name!r} of {cols.path} is not a vector column (shape {block.shape})"
            raise ValueError(msg)
        rows = start + np.flatnonzero(valid_embedding_rows(block))
        if skip is not None and len(skip):
            rows = rows[~np.isin(rows, skip)]
        if store is None:
            store = np.lib.format.open_memmap(
                tmp / "vectors.npy",
                mode="w+",
                dtype=np.float32,
                shape=(cols.n_rows, block.shape[1]),
            )
        store[used : used + len(rows)] = block[rows - start]
        used += len(rows)
        ids.append(rows)
    if store is None or used == 0:
        msg = f"no row of column {name!r} in {cols.path} holds a valid embedding to index"
        raise ValueError(msg)
    return store[:used], np.concatenate(ids).astype(np.int64)


# -- the index directory -----------------------------------------------------------------


@dataclass
class SearchIndex:
    """A loaded index with what querying it needs (from ``search.json``).

    Attributes
    ----------
    index : `~galaxalign_astro.search.EmbeddingIndex`
    path : `~pathlib.Path`
        The index directory.
    catalog : str or None
        The catalog the ids are rows of (absolute path), if recorded.
    embedding_col : str
        Its embedding column.
    model_path : str or None
        Directory of the model that made the embeddings, if recorded.
    preprocess : dict or None
        That model's preprocessing (for thumbnails).
    """

    index: EmbeddingIndex
    path: Path
    catalog: str | None
    embedding_col: str = EMBEDDING_COL
    model_path: str | None = None
    preprocess: dict[str, Any] | None = None

    def catalog_file(self) -> Path:
        """The catalog, also found beside the index when its recorded path has moved.

        Raises
        ------
        FileNotFoundError
            Neither the recorded path nor a file of that name in the index folder or
            beside it exists.
        """
        if self.catalog is None:
            msg = f"index {self.path} records no catalog; pass the catalog (--catalog)"
            raise FileNotFoundError(msg)
        recorded = Path(self.catalog)
        for candidate in (recorded, self.path / recorded.name, self.path.parent / recorded.name):
            if candidate.is_file():
                return candidate
        msg = f"catalog {recorded} of index {self.path} not found; pass it with --catalog"
        raise FileNotFoundError(msg)


def save_search_index(
    index: EmbeddingIndex,
    directory: str | os.PathLike[str],
    *,
    embedding_col: str = EMBEDDING_COL,
    provenance: CatalogProvenance | None = None,
    overwrite: bool = False,
) -> Path:
    """Save ``index`` and ``search.json`` (catalog, embedding column, model) in ``directory``.

    Both are written holding the directory's writer lock (`index_lock`); to add
    rows to a saved index, hold that lock from before loading it to after this
    save (see `index_lock`), or a concurrent writer's save makes this one fail
    (`~galaxalign_astro.search.IndexFileError`) rather than drop its rows.
    """
    with index_lock(directory):
        return _save_search_index(
            index, Path(directory), embedding_col, provenance or CatalogProvenance(), overwrite
        )


def _save_search_index(
    index: EmbeddingIndex,
    directory: Path,
    embedding_col: str,
    prov: CatalogProvenance,
    overwrite: bool,
) -> Path:
    path = index.save(directory, overwrite=overwrite)
    meta = index.metadata
    record = {
        "format": _SIDECAR_FORMAT,
        "format_version": 1,
        "catalog": meta["catalog"]["path"],
        "embedding_col": embedding_col,
        "model_name": index.model_name,
        "weights_sha256": index.weights_sha256,
        "model_path": prov.model_path,
        "preprocess": prov.preprocess,
        "class_names": prov.class_names,
    }
    tmp = _new_partial(path, SEARCH_SIDECAR)
    try:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path / SEARCH_SIDECAR)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def open_search_index(directory: str | os.PathLike[str], *, mmap: bool = True) -> SearchIndex:
    """Load an index directory and its ``search.json`` (optional: a bare saved index works)."""
    path = Path(directory)
    index = EmbeddingIndex.load(path, mmap=mmap)
    record: dict[str, Any] = {}
    sidecar = path / SEARCH_SIDECAR
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except ValueError as exc:
            msg = f"cannot read {sidecar}: {exc}"
            raise GalaxAlignError(msg) from exc
    return SearchIndex(
        index=index,
        path=path,
        catalog=record.get("catalog") or index.metadata["catalog"]["path"],
        embedding_col=record.get("embedding_col") or EMBEDDING_COL,
        model_path=record.get("model_path"),
        preprocess=record.get("preprocess"),
    )


def index_vectors(index: EmbeddingIndex, ids: Any) -> np.ndarray:
    """The stored (normalised) vectors of catalog ``ids``, (len(ids), d).

    Raises
    ------
    ValueError
        An id is not in the index.
    """
    ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
    stored = np.asarray(index.ids)
    if not len(stored):
        msg = "the index is empty"
        raise ValueError(msg)
    order = np.argsort(stored, kind="stable")
    where = np.searchsorted(stored, ids, sorter=order)
    where = np.minimum(where, len(stored) - 1)
    positions = order[where]
    missing = stored[positions] != ids
    if missing.any():
        msg = f"row {int(ids[missing][0])} is not in the index (no valid embedding, or not added)"
        raise ValueError(msg)
    # EmbeddingIndex has no public accessor for stored vectors yet
    return np.asarray(index._store.gather(positions))


def add_catalog_rows(
    index: EmbeddingIndex,
    catalog: str | os.PathLike[str],
    *,
    embedding_col: str = EMBEDDING_COL,
    chunk_rows: int = CATALOG_CHUNK_ROWS,
) -> np.ndarray:
    """Add the rows of ``catalog`` that are not yet in ``index`` (incremental update).

    ``catalog`` is the index's catalog after rows were appended to it. It must come
    from the same model (weights sha256), hold at least as many rows as the index
    was built for, and agree with the index on a sample of the rows already indexed
    (so a re-sorted or different catalog is refused rather than mis-keyed).

    Returns
    -------
    ndarray of int64
        The row numbers added (possibly none).

    Raises
    ------
    IndexMismatchError
        Different model, fewer rows, or rows that changed.
    """
    with open_catalog_columns(catalog) as cols:
        cols.require(embedding_col)
        prov = cols.provenance
        _check_same_model(index, prov, catalog)
        recorded = index.metadata["catalog"]["n_rows"]
        if recorded is not None and cols.n_rows < recorded:
            msg = (
                f"catalog {catalog} has {cols.n_rows} rows but the index was built for "
                f"{recorded}; rebuild the index instead of adding to it"
            )
            raise IndexMismatchError(msg)
        _check_rows_unchanged(index, cols, embedding_col)
        existing = np.asarray(index.ids)
        with tempfile.TemporaryDirectory(prefix="gxa-index-") as tmp:
            try:
                vectors, ids = _gather_valid(cols, embedding_col, chunk_rows, Path(tmp), existing)
            except ValueError:
                log.info("no new rows with a valid %r in %s", embedding_col, catalog)
                vectors, ids = np.zeros((0, index.dim), np.float32), np.zeros(0, np.int64)
            # the catalog grew: move the index's row limit before adding beyond it
            index._catalog_rows = cols.n_rows
            index._catalog_path = os.path.abspath(catalog)
            for start in range(0, len(ids), chunk_rows):
                index.add(
                    np.asarray(vectors[start : start + chunk_rows]),
                    ids=ids[start : start + chunk_rows],
                )
    return ids


def _check_same_model(index: EmbeddingIndex, prov: CatalogProvenance, catalog: Any) -> None:
    if index.weights_sha256 and prov.weights_sha256:
        if index.weights_sha256 != prov.weights_sha256:
            msg = (
                f"catalog {catalog} has embeddings of model {prov.model_name!r} (weights sha256 "
                f"{prov.weights_sha256[:12]}...) but the index holds model {index.model_name!r} "
                f"({index.weights_sha256[:12]}...); build a separate index"
            )
            raise IndexMismatchError(msg)
    elif index.model_name and prov.model_name and index.model_name != prov.model_name:
        msg = (
            f"catalog {catalog} has embeddings of model {prov.model_name!r} but the index "
            f"holds model {index.model_name!r}; build a separate index"
        )
        raise IndexMismatchError(msg)
    elif not (index.weights_sha256 and prov.weights_sha256):
        warnings.warn(
            f"cannot check that {catalog} and the index come from the same model "
            "(no weights sha256 recorded)",
            GalaxAlignWarning,
            stacklevel=3,
        )


def _check_rows_unchanged(index: EmbeddingIndex, cols: CatalogColumns, name: str) -> None:
    ids = np.asarray(index.ids)
    if not len(ids):
        return
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(ids, size=min(_ADD_CHECK_ROWS, len(ids)), replace=False))
    fresh = np.asarray(cols.read_rows(sample, [name])[name], dtype=np.float32)
    norms = np.linalg.norm(fresh, axis=1)
    ok = np.isfinite(norms) & (norms > 0)
    cosine = np.full(len(sample), -1.0)
    cosine[ok] = np.einsum(
        "ij,ij->i", fresh[ok] / norms[ok, None], index_vectors(index, sample[ok])
    )
    if (cosine < 0.999).any():
        row = int(sample[np.argmax(cosine < 0.999)])
        msg = (
            f"row {row} of catalog {cols.path} no longer holds the embedding the index has for "
            "it (rows re-ordered or replaced); rebuild the index"
        )
        raise IndexMismatchError(msg)


from .cutouts import index_cutouts  # noqa: E402 (re-export; it uses the above)
