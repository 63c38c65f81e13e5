"""Reading Parquet files: record batches of rows, or one column at a time.

Units, descriptions and metadata come from astropy's ``table_meta_yaml`` schema
metadata when present; nulls become masked entries (rows) or NaN (float columns).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from .base import BLOCK_ROWS, CatalogReader, plain_values, restore_serialized
from .schema import InputSchema, build_schema

__all__ = ["ParquetReader", "arrow_to_numpy"]


class ParquetReader(CatalogReader):
    """Parquet record batches converted to tables (nulls become masked entries)."""

    format = "parquet"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import pyarrow.parquet as pq
        from astropy.table import meta as table_meta

        super().__init__(path)
        self._file = pq.ParquetFile(self.path)
        self.n_rows = int(self._file.metadata.num_rows)
        arrow_schema = self._file.schema_arrow
        raw = arrow_schema.metadata or {}
        header: dict[str, Any] = {}
        if b"table_meta_yaml" in raw:
            header = table_meta.get_header_from_yaml(raw[b"table_meta_yaml"].decode().splitlines())
        self._columns = {d["name"]: d for d in header.get("datatype", [])}
        self.meta = dict(header.get("meta", {}))
        self.colnames = list(arrow_schema.names)
        self._arrow_schema = arrow_schema

    # -- rows -----------------------------------------------------------------------

    def _make_template(self) -> Table:
        empty = self._arrow_schema.empty_table().to_batches() or [None]
        return self._convert(empty[0])

    def _make_schema(self) -> InputSchema:
        template = self.template
        text = [name for name in template.colnames if template[name].dtype.kind in "OUS"]
        return build_schema(template, self._text_widths(text))

    def _text_widths(self, names: list[str]) -> dict[str, int]:
        """Longest text of each column (the first pass reads only those columns)."""
        import pyarrow.compute as pc

        widths = dict.fromkeys(names, 1)
        if not names or not self.n_rows:
            return widths
        for batch in self._file.iter_batches(batch_size=BLOCK_ROWS, columns=names):
            for name in names:
                array = batch.column(name)
                if not _is_text(array.type):
                    continue
                longest = pc.max(pc.utf8_length(array)).as_py()
                widths[name] = max(widths[name], int(longest or 0))
        return widths

    def _convert(self, batch: Any) -> Table:
        table = Table(meta=dict(self.meta))
        for i, arrow_field in enumerate(self._arrow_schema):
            name = arrow_field.name
            array = batch.column(i) if batch is not None else None
            data, mask = arrow_to_numpy(array, arrow_field.type, name)
            info = self._columns.get(name, {})
            shape = _subtype_shape(info.get("subtype"))
            if shape and data.ndim == 2 and int(np.prod(shape)) == data.shape[1]:
                data = data.reshape((len(data), *shape))
            if mask is not None:
                mask = _cell_mask(mask, data)
            cls = MaskedColumn if mask is not None and mask.any() else Column
            kwargs = {"mask": mask} if cls is MaskedColumn else {}
            table[name] = cls(
                data, unit=info.get("unit"), description=info.get("description"), **kwargs
            )
        return restore_serialized(table)

    def _blocks(self, start: int) -> Iterator[tuple[int, Table]]:
        metadata = self._file.metadata
        first, groups = 0, list[int]()
        for g in range(metadata.num_row_groups):
            rows = metadata.row_group(g).num_rows
            if first + rows > start or groups:
                groups.append(g)
            elif first + rows <= start:
                first += rows
        if not groups:
            return
        for batch in self._file.iter_batches(batch_size=BLOCK_ROWS, row_groups=groups):
            yield first, self._convert(batch)
            first += batch.num_rows

    # -- columns --------------------------------------------------------------------

    def _values(self, array: Any, name: str) -> np.ndarray:
        """One Arrow column as `plain_values` (variable-length lists padded, see below).

        Rows of a list column shorter than its longest are null (NaN for floats).
        """
        if array is None:
            array_type = self._arrow_schema.field(name).type
        else:
            array_type = array.type
        data, mask = arrow_to_numpy(array, array_type, name, lists=True)
        if mask is not None and mask.any():
            data = np.ma.MaskedArray(data, mask=_cell_mask(mask, data))
        return plain_values(data)

    def iter_column(self, name: str, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for batch in self._file.iter_batches(batch_size=chunk_rows, columns=[name]):
            yield start, self._values(batch.column(0), name)
            start += batch.num_rows

    def read_column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.n_rows if stop is None else stop
        return self.take_column(name, np.arange(start, max(start, stop)))

    def take_column(self, name: str, rows: np.ndarray) -> np.ndarray:
        meta = self._file.metadata
        bounds = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        groups = np.unique(np.searchsorted(bounds, rows, side="right") - 1)
        pieces, firsts = [], []
        for g in groups:
            table = self._file.read_row_group(int(g), columns=[name])
            pieces.append(self._values(table.column(0).combine_chunks(), name))
            firsts.append(int(bounds[g]))
        if not pieces:
            return self._values(None, name)
        out = []
        lookup = dict(zip(groups.tolist(), range(len(groups)), strict=True))
        for r in rows:
            g = int(np.searchsorted(bounds, r, side="right") - 1)
            out.append(pieces[lookup[g]][r - firsts[lookup[g]]])
        return np.asarray(out)

    def close(self) -> None:
        self._file.close()


def _cell_mask(mask: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A row's null flag for every cell of the row (vector columns)."""
    if data.ndim > 1:
        return np.broadcast_to(mask.reshape(-1, *[1] * (data.ndim - 1)), data.shape).copy()
    return mask


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _subtype_shape(subtype: str | None) -> tuple[int, ...]:
    if not subtype or "[" not in subtype:
        return ()
    dims = subtype[subtype.index("[") + 1 : subtype.rindex("]")].split(",")
    try:
        return tuple(int(d) for d in dims)
    except ValueError:
        return ()


def arrow_to_numpy(
    array: Any, arrow_type: Any, name: str, *, lists: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """numpy data and null mask (None when no nulls) of one Arrow column.

    Parameters
    ----------
    array : `pyarrow.Array` or None
        The values (None: zero rows, for a template).
    arrow_type : `pyarrow.DataType`
        Its type.
    name : str
        Column name, for messages.
    lists : bool, optional
        Read variable-length lists as (rows, longest) arrays, shorter rows null;
        otherwise they are refused like other types catalogs cannot hold.

    Returns
    -------
    data : ndarray
        Text as ``str``, dates as ISO text, fixed-size lists as (rows, size); null
        entries hold zeros (or empty text).
    mask : ndarray of bool or None
        One flag per row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
        array = None if array is None else array.dictionary_decode()
    if array is None:  # the zero-row template
        array = pa.array([], type=arrow_type)
    mask = np.asarray(array.is_null()) if array.null_count else None
    if _is_text(arrow_type):
        values = array.fill_null("").to_numpy(zero_copy_only=False)
        return np.asarray(values.astype(str) if len(values) else np.zeros(0, "U1")), mask
    is_list = pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
    if pa.types.is_fixed_size_list(arrow_type) or (lists and is_list):
        inner, _ = arrow_to_numpy(
            pc.list_flatten(array) if len(array) else pa.array([], arrow_type.value_type),
            arrow_type.value_type,
            name,
        )
        if is_list:
            return _padded(array, inner, mask)
        size = arrow_type.list_size
        if mask is not None:  # null cells have no values in the flattened array
            full = np.zeros((len(array), size), dtype=inner.dtype)
            full[~mask] = inner.reshape(-1, size)
            return full, mask
        return inner.reshape(len(array), size), None
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        values = array.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False)
        return np.asarray(values.astype(str) if len(values) else np.zeros(0, "U1")), mask
    if pa.types.is_boolean(arrow_type):
        return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), bool), mask
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        filled = array.fill_null(0) if mask is not None else array
        return np.asarray(filled.to_numpy(zero_copy_only=False)), mask
    msg = (
        f"input column {name!r} has Arrow type {arrow_type}, which the catalog formats cannot hold"
    )
    raise ValueError(msg)


def _padded(
    array: Any, inner: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, longest) array of a variable-length list column; other rows are null."""
    import pyarrow.compute as pc

    lengths = np.asarray(pc.list_value_length(array).fill_null(0), dtype=np.int64)
    size = int(lengths.max()) if len(lengths) else 0
    whole = lengths == size
    if mask is not None:
        whole &= ~mask
    full = np.zeros((len(array), size), dtype=inner.dtype)
    rows = np.flatnonzero(whole)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    full[rows] = inner[starts[rows, None] + np.arange(size)]
    return full, (None if whole.all() else ~whole)
