"""Choosing a catalog format and opening its writer (from the format table)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from astropy.table import Table

from ..errors import UnsupportedFormatError
from .base import CatalogWriter, check_output_path
from .columns import ColumnSpec
from .formats import CATALOG_FORMATS

__all__ = ["FORMATS", "SUFFIXES", "open_writer", "output_format", "write_table"]

#: writer class of each output format (the writers of `CATALOG_FORMATS`)
FORMATS: dict[str, type[CatalogWriter]] = {
    fmt.name: fmt.writer for fmt in CATALOG_FORMATS.values() if fmt.writer is not None
}
#: output format of each file name suffix (compared case-insensitively)
SUFFIXES = {suffix: fmt.name for fmt in CATALOG_FORMATS.values() for suffix in fmt.write_suffixes}
#: rows per chunk when `write_table` writes an in-memory table
_TABLE_CHUNK_ROWS = 65536


def output_format(path: str | os.PathLike[str]) -> str:
    """Catalog format of ``path`` from its suffix.

    Parameters
    ----------
    path : str or path-like
        Output file name.

    Returns
    -------
    str
        One of ``'fits'``, ``'hdf5'``, ``'parquet'``, ``'ecsv'``, ``'csv'``.

    Raises
    ------
    UnsupportedFormatError
        If the suffix is not one of `SUFFIXES` (compressed names such as ``.fits.gz``
        are not supported); a `ValueError`.
    """
    suffix = Path(path).suffix.lower()
    try:
        return SUFFIXES[suffix]
    except KeyError:
        msg = (
            f"cannot tell the catalog format of {os.fspath(path)!r} from its suffix "
            f"{suffix!r}; use one of {', '.join(SUFFIXES)}"
        )
        raise UnsupportedFormatError(msg) from None


def _writer_class(path: str | os.PathLike[str], format: str | None) -> type[CatalogWriter]:
    if format is None:
        format = output_format(path)
    try:
        return FORMATS[format.lower()]
    except KeyError:
        msg = (
            f"unknown catalog format {format!r} for {os.fspath(path)!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
        raise UnsupportedFormatError(msg) from None


def open_writer(
    path: str | os.PathLike[str],
    columns: Sequence[ColumnSpec],
    *,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    format: str | None = None,
) -> CatalogWriter:
    """Open an incremental, atomic writer for an output catalog.

    Parameters
    ----------
    path : str or path-like
        Output file; its suffix selects the format unless ``format`` is given.
    columns : sequence of `ColumnSpec`
        Output columns, in order.
    meta : mapping, optional
        Table metadata, normally from `provenance_meta`.
    overwrite : bool, optional
        Replace an existing ``path`` (only when the writer is closed successfully).
    format : str, optional
        ``'fits'``, ``'hdf5'``, ``'parquet'``, ``'ecsv'`` or ``'csv'``.

    Returns
    -------
    CatalogWriter
        A context manager: ``with open_writer(...) as writer: writer.write(chunk)``.
        The output appears only when the block ends without an exception.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false; checked before any work.
    ValueError
        For an unknown format or invalid columns or metadata.
    """
    cls = _writer_class(path, format)
    check_output_path(path, overwrite=overwrite)
    return cls(path, columns, meta=meta, overwrite=overwrite)


def write_table(
    table: Table,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    format: str | None = None,
) -> None:
    """Write an in-memory `~astropy.table.Table` atomically with the catalog writers.

    Column specs come from the table's columns (`ColumnSpec.from_column`) and the
    metadata from ``table.meta``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Table of plain columns (Quantity columns are written with their unit).
    path : str or path-like
        Output file; its suffix selects the format unless ``format`` is given.
    overwrite : bool, optional
        Replace an existing ``path``.
    format : str, optional
        Output format, as for `open_writer`.
    """
    columns = [ColumnSpec.from_column(table[name], name=name) for name in table.colnames]
    with open_writer(path, columns, meta=table.meta, overwrite=overwrite, format=format) as writer:
        for start in range(0, len(table), _TABLE_CHUNK_ROWS):
            writer.write(table[start : start + _TABLE_CHUNK_ROWS])
