"""Incremental HDF5 catalog writer in astropy's table layout.

Layout (what ``Table.read(path, path='catalog')`` expects, ``serialize_meta=True``):

- ``/catalog``: one resizable, chunked, gzip-compressed (with shuffle) dataset of a
  compound dtype, one field per column; vector columns are array fields, text is
  fixed-width ASCII bytes (non-ASCII characters become ``?``, ours).
- ``/catalog.__table_column_meta__``: astropy's YAML header (one line per element),
  carrying units, descriptions and the table metadata.
- For h5py users, metadata values that HDF5 attributes hold (strings, numbers;
  dicts and lists as JSON text) are also attributes of ``/catalog``; units and
  descriptions of field ``name`` are the attributes ``name.unit`` and
  ``name.description``.

h5py users read one column with ``f['catalog'].fields('name')[:]``.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import meta as table_meta

from .base import CatalogWriter
from .columns import empty_table, encode_ascii
from .provenance import json_text

__all__ = ["HDF5_PATH", "Hdf5CatalogWriter"]

log = logging.getLogger(__name__)

#: dataset holding the catalog (the ``path=`` to give `~astropy.table.Table.read`)
HDF5_PATH = "catalog"
_META_SUFFIX = ".__table_column_meta__"
#: target size of one HDF5 chunk (ours: large enough for gzip, small for partial reads)
_CHUNK_BYTES = 1 << 20


class _Discardable(io.RawIOBase):
    """The temporary file HDF5 writes through (h5py's file-object driver).

    After the first failed write (a full disk) it records the error, and once
    ``discard`` is set it accepts every write without storing it, so HDF5 can
    still finish closing the file, which it cannot do over failing writes.
    """

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "r+b")  # closed by the writer
        self.failure: OSError | None = None
        self.discard = False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._fh.readinto(buffer)

    def write(self, data: Any) -> int:
        if self.discard:
            return len(memoryview(data))
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.failure = self.failure or exc
            raise

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.discard:
            return self._fh.tell() if size is None else size
        return self._fh.truncate(size)

    def flush(self) -> None:
        if not self.discard:
            try:
                self._fh.flush()
            except OSError as exc:
                self.failure = self.failure or exc
                raise

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError:  # buffered bytes that cannot be written any more
                pass
        super().close()


def _attribute(value: Any) -> Any:
    if isinstance(value, str | bool | int | float | np.generic):
        return value
    return json_text(value)


class Hdf5CatalogWriter(CatalogWriter):
    """Write an HDF5 catalog incrementally (see the module docstring for the layout)."""

    format = "hdf5"

    def _open(self, tmp: Path) -> None:
        import h5py

        fields: list[tuple[str, Any, tuple[int, ...]]] = []
        for spec in self.columns:
            dtype = f"S{spec.width}" if spec.dtype == "U" else spec.numpy_dtype
            fields.append((spec.name, dtype, spec.shape))
        self._dtype = np.dtype(fields)
        rows_per_chunk = max(1, _CHUNK_BYTES // self._dtype.itemsize)

        header = table_meta.get_yaml_from_table(
            empty_table(self.columns, meta=self.meta, text_as_bytes=True)
        )
        self._raw = _Discardable(tmp)
        self._handles.append(self._raw)
        self._file = h5py.File(self._raw, "w")
        self._handles.insert(0, self._file)
        self._dset = self._file.create_dataset(
            HDF5_PATH,
            shape=(0,),
            maxshape=(None,),
            dtype=self._dtype,
            chunks=(rows_per_chunk,),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
        self._file.create_dataset(
            HDF5_PATH + _META_SUFFIX, data=np.array([line.encode("utf-8") for line in header])
        )
        attrs = self._dset.attrs
        for key, value in self.meta.items():
            try:
                attrs[str(key)] = _attribute(value)
            except (TypeError, ValueError):
                log.debug("meta %r cannot be an HDF5 attribute; kept in the YAML header", key)
        for spec in self.columns:
            if spec.unit:
                attrs[f"{spec.name}.unit"] = spec.unit
            if spec.description:
                attrs[f"{spec.name}.description"] = spec.description

    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        records = np.empty(nrows, dtype=self._dtype)
        for spec in self.columns:
            values = arrays[spec.name]
            if spec.dtype == "U":
                values = encode_ascii(spec, values, warned=self._warned, where="HDF5")
            records[spec.name] = values
        start = self._dset.shape[0]
        try:
            self._dset.resize((start + nrows,))
            self._dset[start:] = records
        except (RuntimeError, OSError) as exc:
            raise self._failed(exc) from None

    def _finish(self) -> None:
        try:
            self._file.flush()
            self._file.close()
        except (RuntimeError, OSError) as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: BaseException) -> OSError:
        """A failed write as a one-line OSError naming the output, the HDF5 file closed.

        HDF5 cannot close a file whose writes failed, and crashes the interpreter
        at exit over it; so the file's later writes are discarded
        (:class:`_Discardable`) and it is closed cleanly before the caller removes it.
        """
        failure = self._raw.failure
        self._raw.discard = True
        try:
            self._file.close()
        except Exception:  # nothing more can be done with it
            pass
        self._raw.close()
        text = str(failure or exc)
        found = re.search(r"errno = (\d+)", text)
        if isinstance(failure, OSError) and failure.errno:
            code, reason = failure.errno, os.strerror(failure.errno)
        elif found:
            code = int(found.group(1))
            reason = os.strerror(code)
        else:
            code, reason = 0, text.splitlines()[0] if text else type(exc).__name__
        msg = f"{self.path}: cannot write the HDF5 catalog ({reason}); nothing was replaced"
        return OSError(code, msg) if code else OSError(msg)
