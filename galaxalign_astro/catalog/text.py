"""Incremental ECSV and CSV catalog writers.

ECSV
    The header (``# %ECSV 1.0`` plus YAML with dtypes, units, descriptions and the
    table metadata) comes from the column specs; each chunk's rows are formatted by
    astropy's own ECSV writer and appended, so vector cells are the JSON arrays of
    ECSV 1.0 (``datatype: string``, ``subtype: float32[10]``).
CSV
    Plain comma-separated values with one header line of column names and no
    metadata. Vector columns are expanded into one column per element, named
    ``<name>_<i>`` (``<name>_<i>_<j>`` for 2-d cells), ours: every CSV reader
    (TOPCAT, pandas, spreadsheets) then sees plain numbers. Floats are written in
    their shortest round-tripping form, NaN as ``nan``.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import TextIO

import numpy as np
from astropy.table import Table

from .base import CatalogWriter
from .columns import ColumnSpec, empty_table

__all__ = ["CsvCatalogWriter", "EcsvCatalogWriter", "csv_column_names"]


def _ecsv_text(table: Table) -> tuple[str, str]:
    """Header (with the column-name line) and data rows of ``table`` written as ECSV."""
    buffer = io.StringIO()
    table.write(buffer, format="ascii.ecsv")
    text = buffer.getvalue()
    end = 0
    for line in text.splitlines(keepends=True):
        end += len(line)
        if not line.startswith("#"):  # the column-name line closes the header
            break
    return text[:end], text[end:]


class EcsvCatalogWriter(CatalogWriter):
    """Write an ECSV file incrementally (see the module docstring)."""

    format = "ecsv"

    def _open(self, tmp: Path) -> None:
        header, _ = _ecsv_text(empty_table(self.columns, meta=self.meta))
        self._fh: TextIO = open(tmp, "w", encoding="utf-8", newline="")
        self._handles.append(self._fh)
        self._fh.write(header)

    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        _, rows = _ecsv_text(Table(arrays, copy=False))
        self._fh.write(rows)

    def _finish(self) -> None:
        self._fh.close()


def csv_column_names(spec: ColumnSpec) -> list[str]:
    """CSV column names of one catalog column (one per element of a vector cell)."""
    if not spec.shape:
        return [spec.name]
    return [
        "_".join([spec.name, *(str(i) for i in index)])
        for index in itertools.product(*(range(n) for n in spec.shape))
    ]


class CsvCatalogWriter(CatalogWriter):
    """Write a plain CSV file incrementally (see the module docstring)."""

    format = "csv"

    def _open(self, tmp: Path) -> None:
        self._fh: TextIO = open(tmp, "w", encoding="utf-8", newline="")
        self._handles.append(self._fh)
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._csv.writerow([name for spec in self.columns for name in csv_column_names(spec)])

    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        cells: list[np.ndarray] = []
        for spec in self.columns:
            values = arrays[spec.name].reshape(nrows, -1)
            if spec.dtype == "b1":
                values = np.where(values, "True", "False")
            cells.extend(values.T.astype(str))
        self._csv.writerows(zip(*cells, strict=True))

    def _finish(self) -> None:
        self._fh.close()
