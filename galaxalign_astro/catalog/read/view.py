"""A catalog seen as columns: whole-column reads in chunks, rows picked by number."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from .base import CatalogReader

__all__ = ["COLUMN_CHUNK_ROWS", "ColumnView"]

#: rows read per chunk of a column (16 MiB of float32 embeddings at d=64)
COLUMN_CHUNK_ROWS = 65536


class ColumnView:
    """Columns of a catalog, read a chunk (or a few rows) at a time.

    A thin view over a `~galaxalign_astro.catalog.read.CatalogReader` (see
    `~galaxalign_astro.catalog.open_column_reader`); closing the view closes it.

    Parameters
    ----------
    reader : `~galaxalign_astro.catalog.read.CatalogReader`

    Attributes
    ----------
    path : `~pathlib.Path`
    n_rows : int
    colnames : list of str
    meta : dict
        The table metadata (astropy's metadata block where the file has one).
    """

    #: raised by `read_rows` for a row outside the catalog
    out_of_range_error: type[Exception] = IndexError

    def __init__(self, reader: CatalogReader) -> None:
        self.reader = reader

    @property
    def path(self) -> Path:
        return self.reader.path

    @property
    def n_rows(self) -> int:
        return self.reader.n_rows

    @property
    def colnames(self) -> list[str]:
        return self.reader.colnames

    @property
    def meta(self) -> dict[str, Any]:
        return self.reader.meta

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release open files."""
        self.reader.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.n_rows} rows)>"

    def require(self, name: str) -> None:
        """Raise ValueError naming the catalog (and its embedding columns) if ``name`` is absent."""
        if name not in self.colnames:
            hint = [c for c in self.colnames if c.lower().endswith("embedding")]
            extra = f"; embedding columns here: {', '.join(hint)}" if hint else ""
            msg = f"catalog {self.path} has no column {name!r}{extra}"
            raise ValueError(msg)

    def iter_column(
        self, name: str, *, chunk_rows: int = COLUMN_CHUNK_ROWS
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first row, values)`` chunks of column ``name``, in row order.

        Vector cells come back as (rows, d) arrays; masked or null entries as NaN
        (floats). Text comes back as ``str`` arrays.
        """
        self.require(name)
        yield from self.reader.iter_column(name, chunk_rows)

    def read_rows(self, rows: Sequence[int] | np.ndarray, names: Sequence[str]) -> dict:
        """Values of columns ``names`` at ``rows`` (in the order given) as a dict of arrays."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_rows):
            msg = f"row {int(rows.max())} is outside catalog {self.path} ({self.n_rows} rows)"
            raise self.out_of_range_error(msg)
        for name in names:
            self.require(name)
        return {name: self.reader.take_column(name, rows) for name in names}
