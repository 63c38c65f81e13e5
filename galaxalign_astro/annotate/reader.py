"""Reading input catalogs a chunk of rows at a time.

One reader per storage layout, behind `open_catalog`:

FITS (``.fits``, ``.fit``, ``.fts``)
    The table HDU is memory-mapped; each chunk is a slice of its rows converted by
    astropy's own FITS table reader (units, descriptions, ``TNULL`` masks and the
    astropy metadata block as `~astropy.table.Table.read` gives them).
Parquet (``.parquet``, ``.pq``)
    `pyarrow.parquet.ParquetFile.iter_batches`; units, descriptions and metadata
    from astropy's ``table_meta_yaml`` when present; nulls become masked entries.
HDF5 (``.hdf5``, ``.h5``, ``.he5``)
    h5py slicing of astropy's compound-dataset layout (``Table.write(...,
    path=..., serialize_meta=True)``, and the catalogs this package writes).
CSV (``.csv``)
    astropy's fast reader in chunk mode; a first pass over the file fixes one type per
    column for the whole file (ours: types guessed chunk by chunk would differ between
    chunks).
ECSV (``.ecsv``)
    The header is read once and each block of data lines is parsed with it; a first
    pass measures text widths. Quoted values spanning several lines are not supported
    in chunk mode (ours).
Everything else astropy reads (VOTable, IPAC, other ASCII flavours, compressed FITS)
    is read whole with `~astropy.table.Table.read`: memory then grows with the file.

Every reader gives the same thing: an `InputSchema` describing the output form of the
input columns, and blocks of rows as plain (possibly masked) numpy arrays cast to it,
so the rows written do not depend on the chunk size.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.table import Column, MaskedColumn, Table

from ..catalog import ColumnSpec

__all__ = [
    "BLOCK_ROWS",
    "CatalogReader",
    "InputSchema",
    "open_catalog",
    "plain_table",
    "sanitize_name",
]

log = logging.getLogger(__name__)

#: rows per block read from streaming formats (re-cut into chunks by `CatalogReader.chunks`)
BLOCK_ROWS = 65536
#: bytes of text per block of the CSV reader
_CSV_BLOCK_BYTES = 16 << 20
#: text encoding of CSV and ECSV files: UTF-8, with or without the byte-order mark that
#: spreadsheet programs write (astropy's fast reader fails on that mark otherwise)
_TEXT_ENCODING = "utf-8-sig"
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FITS_SUFFIXES = (".fits", ".fit", ".fts")
_HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def sanitize_name(name: str) -> str:
    """A column name every output format accepts: ``_RAJ2000`` -> ``col_RAJ2000``.

    Characters other than letters, digits and ``_`` become ``_``; a name not starting
    with a letter gets the prefix ``col`` (ours).
    """
    text = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    if not text or not text[0].isalpha() or not text.isascii():
        text = "col" + (text if text.startswith("_") else "_" + text)
    return text


def plain_table(table: Table) -> Table:
    """``table`` with mixin columns (SkyCoord, Time, Quantity...) as plain columns.

    Quantities become columns with their unit; other mixins are split the way astropy
    serializes them (``coord`` -> ``coord.ra``, ``coord.dec``).
    """
    if all(isinstance(col, Column) for col in table.itercols()):
        return table
    from astropy.table.serialize import represent_mixins_as_columns

    out = represent_mixins_as_columns(Table(table, copy=False))
    out.meta.pop("__serialized_columns__", None)
    return out


def _target_dtype(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """The catalog dtype code an input dtype is stored as."""
    kind, size = dtype.kind, dtype.itemsize
    if kind in "US":
        if shape:
            msg = (
                f"input column {name!r} holds arrays of text (shape {shape}); "
                "catalog outputs hold one text value per cell"
            )
            raise ValueError(msg)
        return "U"
    if kind == "b":
        return "b1"
    if kind == "u":
        return {1: "u1", 2: "i4", 4: "i8"}.get(size, "i8")
    if kind == "i":
        return {1: "i2", 2: "i2", 4: "i4"}.get(size, "i8")
    if kind == "f":
        return "f4" if size <= 4 else "f8"
    if kind == "M":
        return "U"
    msg = (
        f"input column {name!r} has dtype {dtype}, which the catalog formats cannot hold; "
        "convert or remove it"
    )
    raise ValueError(msg)


def _as_text(values: np.ndarray) -> np.ndarray:
    """Text array of ``values`` (bytes decoded as UTF-8, dates in ISO format, None empty)."""
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8", "replace")
    if values.dtype.kind == "M":
        return np.datetime_as_string(values)
    if values.dtype.kind == "O":
        flat = ["" if v is None else str(v) for v in values.ravel()]
        return np.array(flat, dtype=str).reshape(values.shape) if flat else np.zeros(0, "U1")
    return np.asarray(values, dtype=str)


def _str_width(values: np.ndarray) -> int:
    if values.size == 0:
        return 1
    return max(1, int(np.char.str_len(_as_text(values)).max()))


@dataclass
class InputSchema:
    """How the input columns appear in the output.

    Attributes
    ----------
    names : list of str
        Column names as read (after mixins are split into plain columns).
    specs : list of `~galaxalign_astro.catalog.ColumnSpec`
        Output column of each, same order (names sanitized with `sanitize_name`).
    meta : dict
        Table metadata of the input.
    """

    names: list[str]
    specs: list[ColumnSpec]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def renamed(self) -> dict[str, str]:
        """Input names that had to change, and their output names."""
        return {a: s.name for a, s in zip(self.names, self.specs, strict=True) if a != s.name}

    def conform(self, table: Table) -> dict[str, np.ndarray]:
        """Arrays of one block of rows, keyed by output name, cast to the output dtypes.

        Masked entries stay masked (the writers store them as the column's null).
        """
        out: dict[str, np.ndarray] = {}
        for name, spec in zip(self.names, self.specs, strict=True):
            col = table[name]
            data = np.asarray(col)
            mask = np.ma.getmaskarray(col) if isinstance(col, MaskedColumn) else None
            if data.dtype.kind == "O":
                nulls = np.array([v is None for v in data.ravel()]).reshape(data.shape)
                mask = nulls if mask is None else (mask | nulls)
            shape = (len(data), *spec.shape)
            if mask is not None and mask.size and mask.all():
                # an all-empty block can carry any type (CSV guesses it per block)
                data = np.zeros(shape, spec.numpy_dtype)
            elif spec.dtype == "U":
                data = _as_text(data).astype(spec.numpy_dtype)
            else:
                data = data.astype(spec.numpy_dtype, copy=False).reshape(shape)
            if mask is not None and mask.any():
                data = np.ma.MaskedArray(data, mask=mask.reshape(shape))
            out[spec.name] = data
        return out


def _column_spec(
    col: Any, *, name: str, dtype: str, width: int | None = None, taken: set[str]
) -> ColumnSpec:
    """Output spec of one input column; bad units and names are reported and repaired."""
    out_name = sanitize_name(name)
    base, n = out_name, 1
    while out_name in taken:
        n += 1
        out_name = f"{base}_{n}"
    if out_name != name:
        log.warning("input column %r is written as %r (catalog column name rules)", name, out_name)
    taken.add(out_name)
    description = " ".join(str(getattr(col.info, "description", None) or "").split())
    unit = getattr(col, "unit", None)
    unit_text: str | None = None
    if unit is not None and unit != u.dimensionless_unscaled:
        unit_text = unit.to_string()
        try:
            u.Unit(unit_text)
        except ValueError:
            log.warning(
                "input column %r: unit %r is not understood by astropy; kept in the description",
                name,
                unit_text,
            )
            description = f"{description} [unit: {unit_text}]".strip()
            unit_text = None
    shape = tuple(np.shape(col)[1:])
    if dtype == "U":
        return ColumnSpec(out_name, "U", unit=unit_text, description=description, width=width)
    return ColumnSpec(out_name, dtype, shape=shape, unit=unit_text, description=description)


def _schema(template: Table, widths: dict[str, int], dtypes: dict[str, str] | None = None):
    """`InputSchema` of a zero-row (or any) table, with text widths measured elsewhere."""
    template = plain_table(template)
    names = list(template.colnames)
    specs: list[ColumnSpec] = []
    taken: set[str] = set()
    for name in names:
        col = template[name]
        data = np.asarray(col)
        dtype = (dtypes or {}).get(name) or _target_dtype(name, data.dtype, data.shape[1:])
        width = None
        if dtype == "U":
            width = widths.get(name)
            if width is None:
                width = _str_width(data) if data.dtype.kind in "OM" else _dtype_width(data.dtype)
        specs.append(_column_spec(col, name=name, dtype=dtype, width=width, taken=taken))
    meta = {k: v for k, v in template.meta.items() if k != "__serialized_columns__"}
    return InputSchema(names, specs, meta)


def _dtype_width(dtype: np.dtype) -> int:
    if dtype.kind == "U":
        return max(1, dtype.itemsize // 4)
    if dtype.kind == "S":
        return max(1, dtype.itemsize)
    return 1


class CatalogReader:
    """Rows of an input catalog, read a block at a time; use `open_catalog`.

    Attributes
    ----------
    path : `~pathlib.Path`
    format : str
        Reader kind: ``'fits'``, ``'parquet'``, ``'hdf5'``, ``'csv'``, ``'ecsv'`` or
        ``'table'`` (read whole by `~astropy.table.Table.read`).
    n_rows : int
    schema : `InputSchema`
    template : `~astropy.table.Table`
        Zero rows with the input's columns as read (original names), for finding
        coordinate and ID columns.
    """

    format = ""
    #: whether rows are read whole into memory
    in_memory = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.n_rows = 0
        self.template = Table()
        self.schema = InputSchema([], [])

    def close(self) -> None:
        """Release open files."""

    def __enter__(self) -> CatalogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.n_rows} rows)>"

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


class FitsReader(CatalogReader):
    """Memory-mapped FITS table, converted chunk by chunk with astropy's reader."""

    format = "fits"

    def __init__(self, path: str | os.PathLike[str], *, hdu: int | str | None = None) -> None:
        from astropy.io import fits

        super().__init__(path)
        self._hdul = fits.open(self.path, memmap=True)
        try:
            self._hdu = self._table_hdu(hdu)
            self.n_rows = int(self._hdu.header.get("NAXIS2", 0))
            self.template = self._read(0, 0)
            self.schema = _schema(self.template, {})
        except BaseException:
            self._hdul.close()
            raise

    def _table_hdu(self, hdu: int | str | None):
        from astropy.io import fits

        if hdu is not None:
            try:
                found = self._hdul[hdu]
            except (KeyError, IndexError):
                msg = f"{self.path}: no HDU {hdu!r}"
                raise ValueError(msg) from None
            if not isinstance(found, fits.BinTableHDU | fits.TableHDU):
                msg = f"{self.path}: HDU {hdu!r} is not a table"
                raise ValueError(msg)
            return found
        for candidate in self._hdul:
            if isinstance(candidate, fits.BinTableHDU | fits.TableHDU):
                return candidate
        msg = f"{self.path}: no table HDU"
        raise ValueError(msg)

    def _read(self, start: int, stop: int) -> Table:
        import warnings

        from astropy.io import fits

        rows = self._hdu.data[start:stop]
        with warnings.catch_warnings():
            # the header's NAXIS2 describes the whole table, not this slice
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            part = type(self._hdu)(data=rows, header=self._hdu.header)
            return plain_table(Table.read(part))

    def close(self) -> None:
        self._hdul.close()


class Hdf5Reader(CatalogReader):
    """A compound HDF5 dataset in astropy's layout, sliced with h5py."""

    format = "hdf5"

    def __init__(self, path: str | os.PathLike[str], *, hdf5_path: str | None = None) -> None:
        import h5py
        from astropy.table import meta as table_meta

        super().__init__(path)
        self._file = h5py.File(self.path, "r")
        try:
            self._dset = self._file[self._dataset_path(hdf5_path)]
            self.n_rows = int(self._dset.shape[0])
            header: dict[str, Any] = {}
            meta_name = self._dset.name + ".__table_column_meta__"
            if meta_name in self._file:
                lines = [line.decode("utf-8") for line in self._file[meta_name][()]]
                header = table_meta.get_header_from_yaml(lines)
            self._columns = {d["name"]: d for d in header.get("datatype", [])}
            if header:
                self._meta = dict(header.get("meta", {}))
            else:
                self._meta = {k: _attr_value(v) for k, v in self._dset.attrs.items()}
            self.template = self._read(0, 0)
            widths = {
                name: self._dset.dtype[name].itemsize
                for name in self._dset.dtype.names
                if self._dset.dtype[name].kind == "S"
            }
            self.schema = _schema(self.template, widths)
        except BaseException:
            self._file.close()
            raise

    def _dataset_path(self, wanted: str | None) -> str:
        import h5py

        if wanted is not None:
            if wanted not in self._file or not isinstance(self._file[wanted], h5py.Dataset):
                msg = f"{self.path}: no dataset {wanted!r}"
                raise ValueError(msg)
            return wanted
        found: list[str] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.dtype.names and obj.ndim == 1:
                found.append(name)

        self._file.visititems(visit)
        if "catalog" in found:
            return "catalog"
        if len(found) == 1:
            return found[0]
        msg = (
            f"{self.path}: cannot tell which table to read among {found or 'no tables'}; "
            "name it with hdf5_path (--hdf5-path)"
        )
        raise ValueError(msg)

    def _read(self, start: int, stop: int) -> Table:
        records = self._dset[start:stop]
        table = Table(meta=dict(self._meta))
        for name in records.dtype.names:
            data = records[name]
            info = self._columns.get(name, {})
            if data.dtype.kind == "S" and info.get("datatype", "string") == "string":
                data = np.char.decode(data, "utf-8", "replace")
            table[name] = Column(data, unit=info.get("unit"), description=info.get("description"))
        return _restore_serialized(table)

    def close(self) -> None:
        self._file.close()


def _restore_serialized(table: Table) -> Table:
    """Rebuild what astropy split into several stored columns (masks, mixins)."""
    if "__serialized_columns__" not in table.meta:
        return table
    # the step astropy's own HDF5 and Parquet readers take after reading the columns
    from astropy.table.serialize import _construct_mixins_from_columns

    return plain_table(_construct_mixins_from_columns(table))


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


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
        self._meta = dict(header.get("meta", {}))
        self._arrow_schema = arrow_schema
        empty = arrow_schema.empty_table().to_batches() or [None]
        self.template = self._convert(empty[0], 0)
        text = [name for name in self.template.colnames if self.template[name].dtype.kind in "OUS"]
        self.schema = _schema(self.template, self._text_widths(text))

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

    def _convert(self, batch: Any, n: int) -> Table:
        table = Table(meta=dict(self._meta))
        for i, arrow_field in enumerate(self._arrow_schema):
            name = arrow_field.name
            array = batch.column(i) if batch is not None else None
            data, mask = _arrow_to_numpy(array, arrow_field.type, n, name)
            info = self._columns.get(name, {})
            shape = _subtype_shape(info.get("subtype"))
            if shape and data.ndim == 2 and int(np.prod(shape)) == data.shape[1]:
                data = data.reshape((len(data), *shape))
            if mask is not None and data.ndim > 1:  # one null flag per row of a vector column
                mask = np.broadcast_to(mask.reshape(-1, *[1] * (data.ndim - 1)), data.shape).copy()
            cls = MaskedColumn if mask is not None and mask.any() else Column
            kwargs = {"mask": mask} if cls is MaskedColumn else {}
            table[name] = cls(
                data, unit=info.get("unit"), description=info.get("description"), **kwargs
            )
        return _restore_serialized(table)

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
            yield first, self._convert(batch, batch.num_rows)
            first += batch.num_rows

    def close(self) -> None:
        self._file.close()


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


def _arrow_to_numpy(array: Any, arrow_type: Any, n: int, name: str):
    """numpy data and null mask (None when no nulls) of one Arrow column."""
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
    if pa.types.is_fixed_size_list(arrow_type):
        size = arrow_type.list_size
        inner, _ = _arrow_to_numpy(
            pc.list_flatten(array) if len(array) else pa.array([], arrow_type.value_type),
            arrow_type.value_type,
            len(array) * size,
            name,
        )
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


class CsvReader(CatalogReader):
    """CSV read in blocks by astropy's fast reader, with one type per column."""

    format = "csv"

    def __init__(self, path: str | os.PathLike[str], **read_kwargs: Any) -> None:
        super().__init__(path)
        self._kwargs = read_kwargs
        kinds: dict[str, str] = {}
        widths: dict[str, int] = {}
        template: Table | None = None
        n = 0
        for block in self._raw_blocks():
            n += len(block)
            if template is None:
                template = block[:0]
            for name in block.colnames:
                col = block[name]
                if isinstance(col, MaskedColumn) and col.mask.all():
                    continue  # an all-empty stretch says nothing about the type
                kinds[name] = _merge_kind(kinds.get(name), np.asarray(col).dtype.kind)
                if col.dtype.kind in "US":
                    widths[name] = max(widths.get(name, 1), _str_width(np.asarray(col)))
        if template is None:
            template = Table.read(self.path, format="ascii.csv", encoding=_TEXT_ENCODING)[:0]
        self.n_rows = n
        self._dtypes = {name: _KIND_DTYPE[kind] for name, kind in kinds.items()}
        for name in template.colnames:
            self._dtypes.setdefault(name, "U")
            if self._dtypes[name] == "U":
                widths.setdefault(name, 1)
        self.template = template
        self.schema = _schema(template, widths, self._dtypes)

    def _raw_blocks(self) -> Iterator[Table]:
        from astropy.io import ascii

        options = {"chunk_size": _CSV_BLOCK_BYTES, "chunk_generator": True}
        # an open file rather than the name: the fast reader takes no encoding
        with open(self.path, encoding=_TEXT_ENCODING) as fh:
            yield from ascii.read(
                fh, format="csv", guess=False, fast_reader=options, **self._kwargs
            )

    def _blocks(self, start: int) -> Iterator[tuple[int, Table]]:
        first = 0
        for block in self._raw_blocks():
            if first + len(block) > start:
                yield first, block
            first += len(block)


_KIND_ORDER = {"b": 0, "i": 1, "u": 1, "f": 2, "U": 3, "S": 3, "O": 3}
_KIND_DTYPE = {"b": "b1", "i": "i8", "u": "i8", "f": "f8", "U": "U", "S": "U", "O": "U"}


def _merge_kind(have: str | None, new: str) -> str:
    if have is None:
        return new
    if {have, new} == {"b", "i"} or {have, new} == {"b", "f"}:
        return "U"  # True/False beside numbers: keep the text
    return have if _KIND_ORDER.get(have, 3) >= _KIND_ORDER.get(new, 3) else new


class EcsvReader(CatalogReader):
    """ECSV parsed a block of data lines at a time with the file's own header."""

    format = "ecsv"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        header_lines: list[str] = []
        with open(self.path, encoding=_TEXT_ENCODING) as fh:
            for line in fh:
                header_lines.append(line)
                if not line.startswith("#") and line.strip():
                    break  # the column-name line ends the header
        self._header = "".join(header_lines)
        self._header_len = len(header_lines)
        template: Table | None = None
        widths: dict[str, int] = {}
        n = 0
        for block in self._raw_blocks():
            n += len(block)
            plain = plain_table(block)
            if template is None:
                template = plain[:0]
            for name in plain.colnames:
                data = np.asarray(plain[name])
                if data.dtype.kind in "USOM":
                    widths[name] = max(widths.get(name, 1), _str_width(data))
        if template is None:  # no data lines
            template = plain_table(Table.read(self._header, format="ascii.ecsv"))
        self.n_rows = n
        self.template = template
        self.schema = _schema(self.template, widths)

    def _raw_blocks(self) -> Iterator[Table]:
        with open(self.path, encoding=_TEXT_ENCODING) as fh:
            for _ in range(self._header_len):
                next(fh)
            lines: list[str] = []
            for line in fh:
                if line.strip():
                    lines.append(line)
                if len(lines) >= BLOCK_ROWS:
                    yield self._parse(lines)
                    lines = []
            if lines:
                yield self._parse(lines)

    def _parse(self, lines: list[str]) -> Table:
        return Table.read(self._header + "".join(lines), format="ascii.ecsv")

    def _blocks(self, start: int) -> Iterator[tuple[int, Table]]:
        first = 0
        for block in self._raw_blocks():
            if first + len(block) > start:
                yield first, plain_table(block)
            first += len(block)


class TableReader(CatalogReader):
    """Any format `~astropy.table.Table.read` knows, read whole into memory."""

    format = "table"
    in_memory = True

    def __init__(
        self, path: str | os.PathLike[str], *, format: str | None = None, **read_kwargs: Any
    ) -> None:
        super().__init__(path)
        try:
            self._table = plain_table(Table.read(self.path, format=format, **read_kwargs))
        except Exception as exc:  # astropy raises many types for an unreadable table
            hint = "" if format else "; name its format (--format)"
            msg = f"cannot read catalog {self.path}: {exc}{hint}"
            raise ValueError(msg) from exc
        log.info("read %s whole (%d rows): its format is not read in chunks", self.path, len(self))
        self.n_rows = len(self._table)
        self.template = self._table[:0]
        text = {
            name: _str_width(np.asarray(self._table[name]))
            for name in self._table.colnames
            if self._table[name].dtype.kind in "USOM"
        }
        self.schema = _schema(self._table[:0], text)
        self.schema.meta = dict(self._table.meta)

    def __len__(self) -> int:
        return len(self._table)

    def _read(self, start: int, stop: int) -> Table:
        return self._table[start:stop]


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
    CatalogReader
        Chunked readers for FITS, Parquet, HDF5, CSV and ECSV; other formats are read
        whole (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        msg = (
            f"input catalog {path} does not exist" if not path.exists() else f"{path} is not a file"
        )
        raise FileNotFoundError(msg)
    kind = (format or "").lower().removeprefix("ascii.")
    suffix = path.suffix.lower()
    if kind == "fits" or (not kind and suffix in _FITS_SUFFIXES):
        return FitsReader(path, hdu=hdu)
    if kind == "hdf5" or (not kind and suffix in _HDF5_SUFFIXES):
        return Hdf5Reader(path, hdf5_path=hdf5_path)
    if kind == "parquet" or (not kind and suffix in _PARQUET_SUFFIXES):
        return ParquetReader(path)
    if kind == "csv" or (not kind and suffix == ".csv"):
        return CsvReader(path)
    if kind == "ecsv" or (not kind and suffix == ".ecsv"):
        return EcsvReader(path)
    return TableReader(path, format=format)
