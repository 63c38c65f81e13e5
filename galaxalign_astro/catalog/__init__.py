"""Catalogs: column specs, provenance, incremental atomic writers, and readers.

One writer per format (FITS, HDF5, Parquet, ECSV, CSV) behind `open_writer`; each
writes chunk by chunk to a temporary file and publishes the catalog only at a
successful close. One reader per format (`galaxalign_astro.catalog.read`) behind
`open_catalog` (blocks of rows) and `open_column_reader` (a column at a time).
Which suffix is which format, read by which reader and written by which writer,
is the one table `CATALOG_FORMATS`.
"""

from __future__ import annotations

from .base import CatalogWriter
from .columns import ColumnSpec, column_reference_markdown
from .formats import (
    CATALOG_FORMATS,
    CatalogFormat,
    open_catalog,
    open_column_reader,
    reading_format,
)
from .hdf5 import HDF5_PATH
from .provenance import PROVENANCE_KEYS, Provenance, fits_header_cards, provenance_meta
from .read import CatalogReader, ColumnView, InputSchema
from .writers import FORMATS, SUFFIXES, open_writer, output_format, write_table

__all__ = [
    "CATALOG_FORMATS",
    "FORMATS",
    "HDF5_PATH",
    "PROVENANCE_KEYS",
    "SUFFIXES",
    "CatalogFormat",
    "CatalogReader",
    "CatalogWriter",
    "ColumnSpec",
    "ColumnView",
    "InputSchema",
    "Provenance",
    "column_reference_markdown",
    "fits_header_cards",
    "open_catalog",
    "open_column_reader",
    "open_writer",
    "output_format",
    "provenance_meta",
    "reading_format",
    "write_table",
]
