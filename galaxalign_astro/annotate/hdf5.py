"""Embeddings and model columns as plain h5py datasets, one per column.

For users who keep embeddings in HDF5 and read them with h5py (or
``pandas``/``xarray``) rather than astropy. Layout (ours):

- one dataset per column at the file root, in catalog order, each with
  ``(n_rows, *cell_shape)``, chunked along rows and gzip-compressed with the
  shuffle filter; text is fixed-width ASCII bytes (other characters become ``?``);
- dataset attributes ``unit`` and ``description`` where the column has them;
- file attributes: the provenance (``GAVERSN``, ``DATE``, ``MODEL``, ``WSHA256``,
  ``PREPROC``... as in the catalog headers; dicts and lists as JSON text) and
  ``columns``, the JSON list of the dataset names in order.

Reading: ``h5py.File(path)['embedding'][:]``, or one slice of rows without loading
the rest: ``f['embedding'][1000:2000]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import ColumnSpec, provenance_meta
from ..catalog.base import CatalogWriter
from ..catalog.columns import encode_ascii
from ..catalog.provenance import json_text

__all__ = ["ColumnsHdf5Writer", "write_embeddings_hdf5"]

log = logging.getLogger(__name__)

#: target size of one HDF5 chunk (ours: large enough for gzip, small for partial reads)
_CHUNK_BYTES = 1 << 20
_WRITE_ROWS = 65536


def _attribute(value: Any) -> Any:
    if isinstance(value, str | bool | int | float | np.generic):
        return value
    return json_text(value)


class ColumnsHdf5Writer(CatalogWriter):
    """Write columns as separate chunked, compressed h5py datasets, atomically.

    Same contract as the catalog writers of `galaxalign_astro.catalog` (a temporary
    file renamed onto ``path`` at `close`); see the module docstring for the layout.
    """

    format = "hdf5-columns"

    def _open(self, tmp: Path) -> None:
        import h5py

        self._file = h5py.File(tmp, "w")
        self._handles.append(self._file)
        self._dsets = {}
        for spec in self.columns:
            dtype = np.dtype(f"S{spec.width}") if spec.dtype == "U" else spec.numpy_dtype
            row_bytes = dtype.itemsize * int(np.prod(spec.shape, dtype=int))
            rows = max(1, _CHUNK_BYTES // max(1, row_bytes))
            dset = self._file.create_dataset(
                spec.name,
                shape=(0, *spec.shape),
                maxshape=(None, *spec.shape),
                dtype=dtype,
                chunks=(rows, *spec.shape),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
            if spec.unit:
                dset.attrs["unit"] = spec.unit
            if spec.description:
                dset.attrs["description"] = spec.description
            self._dsets[spec.name] = dset
        for key, value in self.meta.items():
            try:
                self._file.attrs[str(key)] = _attribute(value)
            except (TypeError, ValueError):
                log.debug("meta %r cannot be an HDF5 attribute; left out", key)
        self._file.attrs["columns"] = json_text([spec.name for spec in self.columns])

    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        for spec in self.columns:
            values = arrays[spec.name]
            if spec.dtype == "U":
                values = encode_ascii(spec, values, warned=self._warned, where="HDF5")
            dset = self._dsets[spec.name]
            start = dset.shape[0]
            dset.resize(start + nrows, axis=0)
            dset[start:] = values

    def _finish(self) -> None:
        self._file.close()


def write_embeddings_hdf5(
    path: str | os.PathLike[str],
    ids: Sequence[Any] | np.ndarray,
    embeddings: np.ndarray,
    *,
    columns: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    id_name: str = "id",
    embedding_name: str = "embedding",
    overwrite: bool = False,
) -> None:
    """Write row identifiers, embeddings and optional other columns with h5py.

    Parameters
    ----------
    path : str or path-like
        Output HDF5 file (written atomically).
    ids : sequence
        One identifier per row (integers or text).
    embeddings : array-like, shape (n, dim)
        Embeddings, stored as float32.
    columns : mapping of str to array-like, optional
        More columns of ``n`` rows (probabilities, class names...); an astropy
        `~astropy.table.Column` keeps its unit and description.
    meta : mapping, optional
        Provenance (e.g. ``table.meta`` of an annotated catalog); the package
        version and date are always added (see
        `~galaxalign_astro.catalog.provenance_meta`).
    id_name, embedding_name : str, optional
        Dataset names of the identifiers and embeddings.
    overwrite : bool, optional
        Replace an existing file.

    Examples
    --------
    >>> from galaxalign_astro.annotate import annotate, write_embeddings_hdf5
    >>> table = annotate(catalog, path_col="file")  # doctest: +SKIP
    >>> write_embeddings_hdf5(
    ...     "emb.h5", table["name"], table["gxa_embedding"], meta=table.meta
    ... )  # doctest: +SKIP
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    ids = np.asarray(ids)
    if emb.ndim != 2 or len(emb) != len(ids):
        msg = (
            f"embeddings must be (n, dim) with one row per id; got shape {emb.shape} "
            f"for {len(ids)} ids"
        )
        raise ValueError(msg)
    data: dict[str, Any] = {id_name: ids, embedding_name: emb}
    for name, values in (columns or {}).items():
        if name in data:
            msg = f"column name {name!r} is already used"
            raise ValueError(msg)
        if len(values) != len(ids):
            msg = f"column {name!r} has {len(values)} rows, not {len(ids)}"
            raise ValueError(msg)
        data[name] = values if hasattr(values, "shape") else np.asarray(values)
    specs = [ColumnSpec.from_column(values, name=name) for name, values in data.items()]
    specs[1] = ColumnSpec(
        embedding_name,
        "f4",
        shape=emb.shape[1:],
        description=getattr(getattr(embeddings, "info", None), "description", None)
        or "Image embedding",
    )
    info = {**provenance_meta(), **dict(meta or {})}
    with ColumnsHdf5Writer(path, specs, meta=info, overwrite=overwrite) as writer:
        for start in range(0, len(ids), _WRITE_ROWS):
            stop = start + _WRITE_ROWS
            writer.write({name: values[start:stop] for name, values in data.items()})
