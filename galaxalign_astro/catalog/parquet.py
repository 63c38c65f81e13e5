"""Incremental Parquet catalog writer with astropy's metadata convention.

Columns are Arrow types (text as UTF-8 strings, vectors as fixed-size lists of the
flattened cell, as astropy writes them, so cells of two or more dimensions come back
flat). The schema metadata holds astropy's ``table_meta_yaml`` (units, descriptions,
table metadata) and ``table::len::<name>`` text widths, so `~astropy.table.Table.read`
restores them. For Arrow readers (pyarrow, pandas, HATS) each field's metadata also
holds its ``unit`` and ``description``, and the schema's ``galaxalign`` key the
provenance as JSON. Chunks are buffered into row groups of about `ROW_GROUP_BYTES` (ours:
small chunks would make slow, tiny row groups; the buffer bounds memory).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.table import meta as table_meta

from .base import CatalogWriter
from .columns import ColumnSpec, empty_table
from .provenance import json_text

log = logging.getLogger(__name__)

__all__ = ["ROW_GROUP_BYTES", "ParquetCatalogWriter"]

#: uncompressed size at which buffered rows are written out as one row group
ROW_GROUP_BYTES = 32 << 20


def _arrow_type(spec: ColumnSpec):
    import pyarrow as pa

    if spec.dtype == "U":
        return pa.string()
    value_type = pa.from_numpy_dtype(spec.numpy_dtype)
    if spec.shape:
        return pa.list_(value_type, int(np.prod(spec.shape)))
    return value_type


def _field_metadata(spec: ColumnSpec) -> dict[bytes, bytes] | None:
    """Arrow field metadata of a column: its unit and description, for pyarrow/HATS users."""
    out = {}
    if spec.unit:
        out[b"unit"] = str(spec.unit).encode()
    if spec.description:
        out[b"description"] = str(spec.description).encode()
    return out or None


class ParquetCatalogWriter(CatalogWriter):
    """Write a Parquet file incrementally (see the module docstring)."""

    format = "parquet"

    def _open(self, tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        header = table_meta.get_yaml_from_table(empty_table(self.columns, meta=self.meta))
        metadata = {"table_meta_yaml": "\n".join(header)}
        for spec in self.columns:
            if spec.dtype == "U":
                metadata[f"table::len::{spec.name}"] = str(spec.width)
        try:
            # the provenance as JSON for Arrow readers (pandas, HATS), beside astropy's YAML
            metadata["galaxalign"] = json_text(dict(self.meta or {}))
        except (TypeError, ValueError):
            log.debug("catalog metadata has no JSON form; kept in astropy's YAML block only")
        self._schema = pa.schema(
            [
                pa.field(spec.name, _arrow_type(spec), metadata=_field_metadata(spec))
                for spec in self.columns
            ],
            metadata={key.encode(): value.encode() for key, value in metadata.items()},
        )
        self._writer = pq.ParquetWriter(tmp, self._schema, compression="zstd")
        self._handles.append(self._writer)
        self._buffer: list = []
        self._buffered_bytes = 0

    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        import pyarrow as pa

        columns = []
        for spec in self.columns:
            values = arrays[spec.name]
            if spec.shape:
                flat = pa.array(values.reshape(-1))
                columns.append(pa.FixedSizeListArray.from_arrays(flat, int(np.prod(spec.shape))))
            else:
                columns.append(pa.array(values, type=self._schema.field(spec.name).type))
        batch = pa.RecordBatch.from_arrays(columns, schema=self._schema)
        self._buffer.append(batch)
        self._buffered_bytes += batch.nbytes
        if self._buffered_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._buffer:
            table = pa.Table.from_batches(self._buffer, schema=self._schema)
            self._writer.write_table(table, row_group_size=table.num_rows)
        self._buffer = []
        self._buffered_bytes = 0

    def _finish(self) -> None:
        self._flush()
        self._writer.close()
