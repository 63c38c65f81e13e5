"""Reading catalogs: one reader per storage format, rows in blocks or a column at a time.

FITS (`FitsReader`)
    The table HDU is memory-mapped; rows are converted by astropy's own FITS table
    reader (units, descriptions, ``TNULL`` masks and the astropy metadata block).
HDF5 (`Hdf5Reader`)
    h5py slicing of astropy's compound-dataset layout (``Table.write(...,
    path=..., serialize_meta=True)``, and the catalogs this package writes).
Parquet (`ParquetReader`)
    `pyarrow.parquet.ParquetFile` record batches; units, descriptions and metadata
    from astropy's ``table_meta_yaml`` when present; nulls become masked entries.
CSV, ECSV (`CsvReader`, `EcsvReader`)
    Blocks of lines, with one type per column for the whole file (see ``text``).
Everything else astropy reads, and Tables in memory (`TableReader`)
    Read whole with `~astropy.table.Table.read`: memory then grows with the file.

Every reader gives the same thing: an `InputSchema` describing the output form of
the input columns, blocks of rows (`CatalogReader.chunks`), and the values of one
column as plain numpy arrays (`CatalogReader.read_column`, `ColumnView`). Which
reader opens which file is the format table's
(`~galaxalign_astro.catalog.CATALOG_FORMATS`).
"""

from __future__ import annotations

from .base import BLOCK_ROWS, CatalogReader, plain_values
from .fits import FitsReader, fits_yaml_meta
from .hdf5 import Hdf5Reader
from .parquet import ParquetReader, arrow_to_numpy
from .schema import InputSchema, plain_table, sanitize_name
from .table import TableReader
from .text import CsvReader, EcsvReader
from .view import COLUMN_CHUNK_ROWS, ColumnView

__all__ = [
    "BLOCK_ROWS",
    "COLUMN_CHUNK_ROWS",
    "CatalogReader",
    "ColumnView",
    "CsvReader",
    "EcsvReader",
    "FitsReader",
    "Hdf5Reader",
    "InputSchema",
    "ParquetReader",
    "TableReader",
    "arrow_to_numpy",
    "fits_yaml_meta",
    "plain_table",
    "plain_values",
    "sanitize_name",
]
