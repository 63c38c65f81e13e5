"""The catalog formats: for each, its file name suffixes, its reader and its writer.

One table, `CATALOG_FORMATS`, in the manner of `astropy.io.registry`: the writers
(`~galaxalign_astro.catalog.open_writer`), the row reader (`open_catalog`) and the
column reader (`open_column_reader`) all look formats up in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.table import Table

from .base import CatalogWriter
from .fits import FitsCatalogWriter
from .hdf5 import Hdf5CatalogWriter
from .parquet import ParquetCatalogWriter
from .read import (
    CatalogReader,
    CsvReader,
    EcsvReader,
    FitsReader,
    Hdf5Reader,
    ParquetReader,
    TableReader,
)
from .read.text import TEXT_ENCODING
from .text import CsvCatalogWriter, EcsvCatalogWriter

__all__ = [
    "CATALOG_FORMATS",
    "CatalogFormat",
    "open_catalog",
    "open_column_reader",
    "reading_format",
]


@dataclass(frozen=True)
class CatalogFormat:
    """One catalog format.

    Attributes
    ----------
    name : str
        Format name (``format=`` of the readers and writers).
    suffixes : tuple of str
        File name suffixes (lower case) read as this format.
    write_suffixes : tuple of str
        Those an output name may end with to get this format's writer: the ones
        `~astropy.table.Table.read` also recognises.
    reader : type
        Its `~galaxalign_astro.catalog.read.CatalogReader`.
    writer : type or None
        Its `~galaxalign_astro.catalog.CatalogWriter` (None: not written).
    column_options : mapping or None
        Options of ``reader`` for reading a column without the others; None where
        the format is read whole for that (`~galaxalign_astro.catalog.read.TableReader`).
    """

    name: str
    suffixes: tuple[str, ...]
    reader: type[CatalogReader]
    writer: type[CatalogWriter] | None = None
    write_suffixes: tuple[str, ...] = ()
    column_options: Mapping[str, Any] | None = field(default=None)


#: every catalog format, by name; ``table`` reads whatever astropy reads, whole
CATALOG_FORMATS: dict[str, CatalogFormat] = {
    fmt.name: fmt
    for fmt in (
        CatalogFormat(
            "fits",
            (".fits", ".fit", ".fts"),
            FitsReader,
            FitsCatalogWriter,
            write_suffixes=(".fits", ".fit"),
            column_options={},
        ),
        CatalogFormat(
            "hdf5",
            (".hdf5", ".h5", ".he5"),
            Hdf5Reader,
            Hdf5CatalogWriter,
            write_suffixes=(".hdf5", ".h5"),
            column_options={"column_datasets": True},
        ),
        CatalogFormat(
            "parquet",
            (".parquet", ".pq"),
            ParquetReader,
            ParquetCatalogWriter,
            write_suffixes=(".parquet",),
            column_options={},
        ),
        CatalogFormat("ecsv", (".ecsv",), EcsvReader, EcsvCatalogWriter, write_suffixes=(".ecsv",)),
        CatalogFormat("csv", (".csv",), CsvReader, CsvCatalogWriter, write_suffixes=(".csv",)),
        CatalogFormat("table", (), TableReader),
    )
}
_BY_SUFFIX = {suffix: fmt for fmt in CATALOG_FORMATS.values() for suffix in fmt.suffixes}


def reading_format(path: str | os.PathLike[str], format: str | None = None) -> CatalogFormat:
    """The format a catalog is read as.

    Parameters
    ----------
    path : str or path-like
        The catalog; its suffix decides unless ``format`` is given.
    format : str, optional
        Format name, also as astropy spells it (``'ascii.csv'``); a name not in
        `CATALOG_FORMATS` is read by ``table`` (astropy).

    Returns
    -------
    CatalogFormat
    """
    if format:
        return CATALOG_FORMATS.get(format.lower().removeprefix("ascii."), CATALOG_FORMATS["table"])
    return _BY_SUFFIX.get(Path(path).suffix.lower(), CATALOG_FORMATS["table"])


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        msg = f"{what} {path} does not exist" if not path.exists() else f"{path} is not a file"
        raise FileNotFoundError(msg)
    return path


def open_catalog(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    hdf5_path: str | None = None,
    hdu: int | str | None = None,
) -> CatalogReader:
    """Open an input catalog for reading in chunks.

    Parameters
    ----------
    path : str or path-like
        Any table `~astropy.table.Table.read` reads.
    format : str, optional
        astropy format name (``'fits'``, ``'parquet'``, ``'hdf5'``, ``'ascii.csv'``,
        ``'ascii.ecsv'``, ``'votable'``...); default from the suffix.
    hdf5_path : str, optional
        Dataset of an HDF5 file (default ``catalog``, or the only table in the file).
    hdu : int or str, optional
        Table HDU of a FITS file (default: the first table).

    Returns
    -------
    `~galaxalign_astro.catalog.read.CatalogReader`
        Chunked readers for FITS, Parquet, HDF5, CSV and ECSV; other formats are read
        whole (see `galaxalign_astro.catalog.read`). Its schema is already worked out.
    """
    path = _existing_file(path, "input catalog")
    fmt = reading_format(path, format)
    by_format: dict[str, dict[str, Any]] = {
        "fits": {"hdu": hdu},
        "hdf5": {"hdf5_path": hdf5_path},
        "table": {"format": format},
    }
    options = by_format.get(fmt.name, {})
    reader = fmt.reader(path, **options)
    try:
        reader.schema  # noqa: B018 (an input the outputs cannot hold fails here)
    except BaseException:
        reader.close()
        raise
    return reader


def open_column_reader(catalog: str | os.PathLike[str] | Table) -> CatalogReader:
    """Open a catalog file (or wrap an astropy Table) for reading a column at a time.

    Parameters
    ----------
    catalog : str, path-like or `~astropy.table.Table`
        FITS, HDF5 (also one dataset per column) and Parquet files are read a
        column at a time; anything else `~astropy.table.Table.read` reads is read
        whole (by the suffix: no ``format``).

    Returns
    -------
    `~galaxalign_astro.catalog.read.CatalogReader`
        Wrap it in a `~galaxalign_astro.catalog.read.ColumnView` for checked reads.
    """
    if isinstance(catalog, Table):
        return TableReader.from_table(catalog)
    path = _existing_file(catalog, "catalog")
    fmt = reading_format(path)
    if fmt.column_options is not None:
        return fmt.reader(path, **fmt.column_options)
    # a byte-order mark (spreadsheet exports) would otherwise start the first name
    text = {"encoding": TEXT_ENCODING} if fmt.name in ("csv", "ecsv") else {}
    return TableReader(path, **text)
