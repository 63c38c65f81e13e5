"""Tables read whole: any format `~astropy.table.Table.read` knows, or a Table in memory."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from astropy.table import Table

from .base import CatalogReader, plain_values
from .schema import InputSchema, build_schema, plain_table, text_width

__all__ = ["TableReader"]

log = logging.getLogger(__name__)


class TableReader(CatalogReader):
    """Any format `~astropy.table.Table.read` knows, read whole into memory.

    Rows are those of the table with its mixin columns (SkyCoord, Time...) split
    into plain columns (`~galaxalign_astro.catalog.read.plain_table`); the column
    methods read the columns as the table has them.

    Parameters
    ----------
    path : str or path-like
        File to read; for ``table``, only a name for messages.
    format : str, optional
        astropy format name (default: astropy's guess from the file).
    table : `~astropy.table.Table`, optional
        A table in memory, read instead of ``path`` (see `TableReader.from_table`).
    **read_kwargs
        Passed to `~astropy.table.Table.read`.
    """

    format = "table"
    in_memory = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        table: Table | None = None,
        **read_kwargs: Any,
    ) -> None:
        super().__init__(path)
        if table is None:
            try:
                table = Table.read(self.path, format=format, **read_kwargs)
            except Exception as exc:  # astropy raises many types for an unreadable table
                hint = "" if format else "; name its format (--format)"
                msg = f"cannot read catalog {self.path}: {exc}{hint}"
                raise ValueError(msg) from exc
            log.info(
                "read catalog %s whole (%d rows): its format is not read in parts",
                self.path,
                len(table),
            )
        self._source = table
        self._plain: Table | None = None
        self.n_rows = len(table)
        self.colnames = list(table.colnames)
        self.meta = dict(table.meta)

    @classmethod
    def from_table(cls, table: Table, path: str | os.PathLike[str] = "<table>") -> TableReader:
        """A reader of an in-memory `~astropy.table.Table` (``path`` names it in messages)."""
        return cls(path, table=table)

    def __len__(self) -> int:
        return self.n_rows

    @property
    def _table(self) -> Table:
        """The rows with mixin columns split into plain columns."""
        if self._plain is None:
            self._plain = plain_table(self._source)
        return self._plain

    def _make_schema(self) -> InputSchema:
        table = self._table
        text = {
            name: text_width(np.asarray(table[name]))
            for name in table.colnames
            if table[name].dtype.kind in "USOM"
        }
        schema = build_schema(table[:0], text)
        schema.meta = dict(table.meta)
        return schema

    def _read(self, start: int, stop: int) -> Table:
        return self._table[start:stop]

    def read_column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return plain_values(self._source[name][start:stop])

    def take_column(self, name: str, rows: np.ndarray) -> np.ndarray:
        return plain_values(self._source[name][rows])
