"""Reading HDF5 tables with h5py slicing.

Two layouts are read: astropy's compound dataset (``Table.write(..., path=...,
serialize_meta=True)``, and the catalogs this package writes), with the table
metadata in its ``.__table_column_meta__`` companion or in the dataset's
attributes; and, for column reads, one dataset per column at the root of the file
(``annotate --embeddings-hdf5``), with the metadata in the file's attributes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from astropy.table import Column, Table

from ..hdf5 import _META_SUFFIX
from .base import CatalogReader, plain_values, restore_serialized
from .schema import InputSchema, build_schema

__all__ = ["Hdf5Reader", "attr_value"]


class Hdf5Reader(CatalogReader):
    """A compound HDF5 dataset in astropy's layout (or one dataset per column), sliced.

    Parameters
    ----------
    path : str or path-like
    hdf5_path : str, optional
        Dataset of the table (default ``catalog``, or the only table in the file).
    column_datasets : bool, optional
        Where no table is found, read the datasets at the root of the file as the
        columns (the layout of ``annotate --embeddings-hdf5``) instead of failing.
    """

    format = "hdf5"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hdf5_path: str | None = None,
        column_datasets: bool = False,
    ) -> None:
        import h5py

        super().__init__(path)
        self._file = h5py.File(self.path, "r")
        try:
            found = self._dataset_path(hdf5_path, required=not column_datasets)
            self._columns: dict[str, dict[str, Any]] = {}
            if found is not None:
                self._dset: Any = self._file[found]
                self.colnames = list(self._dset.dtype.names)
                header = self._yaml_header()
                self._columns = {d["name"]: d for d in header.get("datatype", [])}
                if header:
                    self.meta = dict(header.get("meta", {}))
                else:
                    self.meta = {k: attr_value(v) for k, v in self._dset.attrs.items()}
                self.n_rows = int(self._dset.shape[0])
            else:
                self._dset = None
                self.colnames = self._column_datasets()
                self.meta = {k: attr_value(v) for k, v in self._file.attrs.items()}
                self.n_rows = int(self._file[self.colnames[0]].shape[0])
        except BaseException:
            self._file.close()
            raise

    def _dataset_path(self, wanted: str | None, *, required: bool) -> str | None:
        import h5py

        if wanted is not None:
            if wanted not in self._file or not isinstance(self._file[wanted], h5py.Dataset):
                msg = f"{self.path}: no dataset {wanted!r}"
                raise ValueError(msg)
            return wanted
        found: list[str] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.dtype.names and obj.ndim == 1:
                found.append(name)

        self._file.visititems(visit)
        if "catalog" in found:
            return "catalog"
        if len(found) == 1:
            return found[0]
        if not required:
            return None
        msg = (
            f"{self.path}: cannot tell which table to read among {found or 'no tables'}; "
            "name it with hdf5_path (--hdf5-path)"
        )
        raise ValueError(msg)

    def _column_datasets(self) -> list[str]:
        import h5py

        cols = [
            k
            for k, v in self._file.items()
            if isinstance(v, h5py.Dataset) and v.ndim >= 1 and not v.dtype.names
        ]
        if not cols:
            msg = f"catalog {self.path} holds no table and no column datasets"
            raise ValueError(msg)
        return cols

    def _yaml_header(self) -> dict[str, Any]:
        """astropy's serialized header of the table (empty when not written)."""
        from astropy.table import meta as table_meta

        meta_name = self._dset.name + _META_SUFFIX
        if meta_name not in self._file:
            return {}
        lines = [line.decode("utf-8") for line in self._file[meta_name][()]]
        return dict(table_meta.get_header_from_yaml(lines))

    def _source(self, name: str) -> Any:
        """The h5py view of stored column ``name``."""
        return self._dset.fields(name) if self._dset is not None else self._file[name]

    def _make_schema(self) -> InputSchema:
        widths = {}
        for name in self.colnames:
            dtype = self._source(name).dtype
            if dtype.kind == "S":
                widths[name] = dtype.itemsize
        return build_schema(self.template, widths)

    def _read(self, start: int, stop: int) -> Table:
        if self._dset is not None:
            records = self._dset[start:stop]  # one read of the rows, all columns
            stored = {name: records[name] for name in records.dtype.names}
        else:
            stored = {name: self._file[name][start:stop] for name in self.colnames}
        table = Table(meta=dict(self.meta))
        for name, data in stored.items():
            info = self._columns.get(name, {})
            if data.dtype.kind == "S" and info.get("datatype", "string") == "string":
                data = np.char.decode(data, "utf-8", "replace")
            table[name] = Column(data, unit=info.get("unit"), description=info.get("description"))
        return restore_serialized(table)

    def read_column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return plain_values(self._source(name)[start:stop])

    def take_column(self, name: str, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return self.read_column(name, 0, 0)
        # h5py point selection needs increasing, unique indices
        uniq, inverse = np.unique(rows, return_inverse=True)
        return plain_values(self._source(name)[uniq])[inverse]

    def close(self) -> None:
        self._file.close()


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes decoded, arrays as lists)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
