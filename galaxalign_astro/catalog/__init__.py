"""Output catalogs: column specs, provenance and incremental, atomic writers.

One writer per format (FITS, HDF5, Parquet, ECSV, CSV) behind `open_writer`; each
writes chunk by chunk to a temporary file and publishes the catalog only at a
successful close.
"""

from __future__ import annotations

from .base import CatalogWriter
from .columns import ColumnSpec, column_reference_markdown
from .hdf5 import HDF5_PATH
from .provenance import PROVENANCE_KEYS, Provenance, fits_header_cards, provenance_meta
from .writers import FORMATS, SUFFIXES, open_writer, output_format, write_table

__all__ = [
    "FORMATS",
    "HDF5_PATH",
    "PROVENANCE_KEYS",
    "SUFFIXES",
    "CatalogWriter",
    "ColumnSpec",
    "Provenance",
    "column_reference_markdown",
    "fits_header_cards",
    "open_writer",
    "output_format",
    "provenance_meta",
    "write_table",
]
