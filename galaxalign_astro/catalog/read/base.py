"""The reader every catalog format shares: rows in blocks, or a column at a time.

A `CatalogReader` has an open file and two ways into it:

rows
    `CatalogReader.chunks` yields blocks of rows as `~astropy.table.Table` (units,
    descriptions, masks as astropy reads them) and `CatalogReader.schema` tells how
    the columns appear in an output catalog (`~galaxalign_astro.catalog.read.InputSchema`).
    This is how ``annotate`` streams a catalog.
columns
    `CatalogReader.read_column`, `CatalogReader.take_column` and
    `CatalogReader.iter_column` give the values of one stored column as plain numpy
    arrays (`plain_values`), without reading the others where the format allows it.
    This is how ``index`` and ``search`` read embeddings
    (`~galaxalign_astro.catalog.read.ColumnView`).

Each format module (``fits``, ``hdf5``, ``parquet``, ``text``, ``table``) holds one
subclass, which knows where the table is in its files and how its metadata is stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from astropy.table import Table

from .schema import InputSchema, build_schema, plain_table

__all__ = ["BLOCK_ROWS", "CatalogReader", "plain_values", "restore_serialized"]

#: rows per block read from streaming formats (re-cut into chunks by `CatalogReader.chunks`)
BLOCK_ROWS = 65536


def plain_values(values: Any) -> np.ndarray:
    """Text as ``str``, masked floats as NaN, everything else as a plain array."""
    if isinstance(values, np.ma.MaskedArray):
        if values.dtype.kind == "f":
            values = values.filled(np.nan)
        else:
            values = values.data
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8", "replace")
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    if arr.dtype.kind == "f" and arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def restore_serialized(table: Table) -> Table:
    """Rebuild what astropy split into several stored columns (masks, mixins)."""
    if "__serialized_columns__" not in table.meta:
        return table
    # the step astropy's own HDF5 and Parquet readers take after reading the columns
    from astropy.table.serialize import _construct_mixins_from_columns

    return plain_table(_construct_mixins_from_columns(table))


class CatalogReader:
    """An open catalog file, read a block of rows or a column at a time.

    Use `~galaxalign_astro.catalog.open_catalog` (rows) or
    `~galaxalign_astro.catalog.open_column_reader` (columns); close the reader (or use
    it as a context manager) when done.

    Attributes
    ----------
    path : `~pathlib.Path`
    format : str
        Reader kind: ``'fits'``, ``'parquet'``, ``'hdf5'``, ``'csv'``, ``'ecsv'`` or
        ``'table'`` (read whole by `~astropy.table.Table.read`, or given in memory).
    n_rows : int
    colnames : list of str
        The stored columns, as the column methods name them.
    meta : dict
        The table metadata as stored (astropy's metadata block where the file has one).
    """

    format = ""
    #: whether rows are read whole into memory
    in_memory = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.n_rows = 0
        self.colnames: list[str] = []
        self.meta: dict[str, Any] = {}
        self._template: Table | None = None
        self._schema: InputSchema | None = None

    def close(self) -> None:
        """Release open files."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.n_rows} rows)>"

    # -- rows -----------------------------------------------------------------------

    @property
    def template(self) -> Table:
        """Zero rows with the input's columns as read (original names).

        For finding coordinate and ID columns; read when first asked for.
        """
        if self._template is None:
            self._template = self._make_template()
        return self._template

    def _make_template(self) -> Table:
        return self._read(0, 0)

    @property
    def schema(self) -> InputSchema:
        """How the input columns appear in the output; worked out when first asked for."""
        if self._schema is None:
            self._schema = self._make_schema()
        return self._schema

    def _make_schema(self) -> InputSchema:
        return build_schema(self.template, {})

    def _read(self, start: int, stop: int) -> Table:
        """Rows ``start:stop`` (random-access readers)."""
        raise NotImplementedError

    def _blocks(self, start: int) -> Iterator[tuple[int, Table]]:
        """``(first row, rows)`` blocks covering the rows from ``start`` on, in order."""
        for first in range(start, self.n_rows, BLOCK_ROWS):
            yield first, self._read(first, min(first + BLOCK_ROWS, self.n_rows))

    def chunks(
        self, chunk_size: int, *, skip: Sequence[int] | set[int] = ()
    ) -> Iterator[tuple[int, Table]]:
        """Yield ``(chunk index, rows)`` for chunks of ``chunk_size`` rows, in order.

        Chunk ``k`` holds rows ``k * chunk_size`` up to the next chunk. Chunks in
        ``skip`` are not yielded (and, where the format allows, not read).
        """
        if chunk_size < 1:
            msg = f"chunk_size must be >= 1, got {chunk_size}"
            raise ValueError(msg)
        n_chunks = -(-self.n_rows // chunk_size)
        todo = [k for k in range(n_chunks) if k not in set(skip)]
        if not todo:
            return
        if type(self)._read is not CatalogReader._read:
            for k in todo:
                start = k * chunk_size
                yield k, self._read(start, min(start + chunk_size, self.n_rows))
            return
        yield from self._rechunk(chunk_size, todo)

    def _rechunk(self, chunk_size: int, todo: list[int]) -> Iterator[tuple[int, Table]]:
        from astropy.table import vstack

        wanted = set(todo)
        pieces: list[Table] = []
        k = todo[0]
        position = k * chunk_size  # first row not yet handed out or skipped
        for first, block in self._blocks(position):
            offset = position - first
            while offset < len(block):
                end = (k + 1) * chunk_size
                take = min(len(block) - offset, end - position)
                if k in wanted:
                    pieces.append(block[offset : offset + take])
                offset += take
                position += take
                if position == min(end, self.n_rows):
                    if k in wanted:
                        yield k, pieces[0] if len(pieces) == 1 else vstack(pieces)
                        wanted.discard(k)
                    pieces = []
                    k += 1
                    if not wanted:
                        return
        if wanted:
            msg = f"{self.path}: ended after {position} rows, expected {self.n_rows}"
            raise ValueError(msg)

    # -- columns --------------------------------------------------------------------

    def read_column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Values of stored column ``name`` in rows ``start:stop``, as `plain_values`.

        Vector cells come back as (rows, d) arrays; masked or null entries as NaN
        (floats). Text comes back as ``str`` arrays.
        """
        raise NotImplementedError

    def take_column(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Values of stored column ``name`` at ``rows`` (in the order given)."""
        raise NotImplementedError

    def iter_column(self, name: str, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first row, values)`` chunks of column ``name``, in row order."""
        for start in range(0, self.n_rows, chunk_rows):
            yield start, self.read_column(name, start, min(start + chunk_rows, self.n_rows))
