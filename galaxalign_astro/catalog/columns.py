"""Column specifications of output catalogs and the conversion of result chunks to arrays."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy import units as u
from astropy.table import Column, Table

__all__ = [
    "ColumnSpec",
    "column_reference_markdown",
    "empty_table",
    "encode_ascii",
    "prepare_chunk",
]

log = logging.getLogger(__name__)

#: dtypes an output column may have, with the words used in the column reference
_DTYPE_WORDS = {
    "b1": "boolean",
    "u1": "uint8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "f4": "float32",
    "f8": "float64",
    "U": "string",
}
_DTYPE_ALIASES = {"?": "b1", "bool": "b1", "S": "U", "str": "U"}
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ColumnSpec:
    """Description of one output catalog column.

    Parameters
    ----------
    name : str
        Column name: a letter followed by letters, digits or underscores (ours: the
        names every output format and TOPCAT/pandas accept unchanged).
    dtype : str
        numpy dtype code: ``'b1'``, ``'u1'``, ``'i2'``, ``'i4'``, ``'i8'``, ``'f4'``,
        ``'f8'`` or ``'U'`` for text.
    shape : tuple of int, optional
        Shape of one cell: ``()`` for scalars, ``(n,)`` for vectors such as class
        probabilities or embeddings. Text columns must be scalar.
    unit : str or None, optional
        Unit understood by `astropy.units` (and writable in FITS), or `None`.
    description : str, optional
        One-line description; it goes into every format that can hold it.
    width : int or None, optional
        For text columns, the maximum number of characters (required). Longer values
        are truncated, with one logged warning per column and writer.
    null : scalar or None, optional
        Value written for masked (missing) entries. `None` selects the default: NaN
        for floats, the smallest representable value for integers (also declared as
        ``TNULLn`` in FITS), `False` for booleans and ``''`` for text.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    unit: str | None = None
    description: str = ""
    width: int | None = None
    null: Any = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            msg = (
                f"column name {self.name!r} is not allowed: use a letter followed by "
                "letters, digits or underscores"
            )
            raise ValueError(msg)
        dtype = _DTYPE_ALIASES.get(self.dtype, self.dtype)
        if dtype not in _DTYPE_WORDS:
            try:
                dtype = np.dtype(dtype).str.lstrip("<>|=")
            except TypeError:
                dtype = str(self.dtype)
        if dtype not in _DTYPE_WORDS:
            msg = (
                f"column {self.name!r}: dtype {self.dtype!r} is not supported; "
                f"use one of {', '.join(_DTYPE_WORDS)}"
            )
            raise ValueError(msg)
        object.__setattr__(self, "dtype", dtype)

        shape = tuple(self.shape)
        if not all(isinstance(n, int | np.integer) and n > 0 for n in shape):
            msg = f"column {self.name!r}: shape {self.shape!r} must be a tuple of positive ints"
            raise ValueError(msg)
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))

        if dtype == "U":
            if shape:
                msg = f"column {self.name!r}: text columns must be scalar, not shape {shape}"
                raise ValueError(msg)
            if not isinstance(self.width, int | np.integer) or self.width < 1:
                msg = (
                    f"column {self.name!r}: text columns need a positive width, not {self.width!r}"
                )
                raise ValueError(msg)
            object.__setattr__(self, "width", int(self.width))
        elif self.width is not None:
            msg = f"column {self.name!r}: width is only for text columns (dtype {dtype!r})"
            raise ValueError(msg)

        if self.unit is not None:
            try:
                unit = u.Unit(self.unit)
            except ValueError as exc:
                msg = f"column {self.name!r}: unit {self.unit!r} is not understood ({exc})"
                raise ValueError(msg) from None
            object.__setattr__(self, "unit", unit.to_string() or None)

        if not isinstance(self.description, str) or "\n" in self.description:
            msg = f"column {self.name!r}: description must be a one-line string"
            raise ValueError(msg)

        object.__setattr__(self, "null", self._checked_null(self.null))

    def _checked_null(self, null: Any) -> Any:
        kind = self.dtype[0]
        if null is None:
            if kind == "f":
                return math.nan
            if kind in "iu":
                return int(np.iinfo(self.dtype).min)
            return False if kind == "b" else ""
        try:
            if kind == "U":
                if not isinstance(null, str) or len(null) > (self.width or 0):
                    raise ValueError
                return null
            value = np.array(null).item()
            if kind in "iu":
                info = np.iinfo(self.dtype)
                if not isinstance(value, int) or not info.min <= value <= info.max:
                    raise ValueError
                return int(value)
            if kind == "f":
                return float(value)
            if not isinstance(value, bool):
                raise ValueError
            return value
        except (ValueError, TypeError):
            msg = f"column {self.name!r}: null value {null!r} does not fit dtype {self.dtype!r}"
            raise ValueError(msg) from None

    @property
    def numpy_dtype(self) -> np.dtype:
        """numpy dtype of one element (native byte order; ``U<width>`` for text)."""
        if self.dtype == "U":
            return np.dtype(f"U{self.width}")
        return np.dtype(self.dtype)

    @classmethod
    def from_column(cls, column: Any, *, name: str | None = None) -> ColumnSpec:
        """Build the spec of an existing astropy `~astropy.table.Column` (or Quantity).

        Text columns get the width of their longest value (at least 1).
        """
        info = getattr(column, "info", None)
        name = name if name is not None else getattr(info, "name", None)
        data = np.asarray(getattr(column, "value", column))
        unit = getattr(column, "unit", None)
        description = (getattr(info, "description", None) or "") if info is not None else ""
        if data.dtype.kind in "US":
            width = int(data.dtype.itemsize // (4 if data.dtype.kind == "U" else 1))
            return cls(
                name=str(name),
                dtype="U",
                unit=None,
                description=description,
                width=max(width, 1),
            )
        return cls(
            name=str(name),
            dtype=data.dtype.str.lstrip("<>|="),
            shape=data.shape[1:],
            unit=None if unit is None else unit.to_string(),
            description=description,
        )


def empty_table(
    columns: Sequence[ColumnSpec],
    *,
    meta: Mapping[str, Any] | None = None,
    text_as_bytes: bool = False,
) -> Table:
    """Zero-row `~astropy.table.Table` carrying the columns' dtypes, units and descriptions.

    The writers build their astropy-readable headers (ECSV, the YAML blocks of FITS,
    HDF5 and Parquet) from it, so every format describes the columns the same way.
    """
    cols = []
    for spec in columns:
        dtype = spec.numpy_dtype
        if text_as_bytes and spec.dtype == "U":
            dtype = np.dtype(f"S{spec.width}")
        cols.append(
            Column(
                np.zeros((0, *spec.shape), dtype=dtype),
                name=spec.name,
                unit=spec.unit,
                description=spec.description or None,
            )
        )
    return Table(cols, meta=dict(meta or {}), copy=False)


def _chunk_items(chunk: Any) -> dict[str, Any]:
    if isinstance(chunk, Table):
        return {name: chunk[name] for name in chunk.colnames}
    if isinstance(chunk, np.ndarray) and chunk.dtype.names:
        return {name: chunk[name] for name in chunk.dtype.names}
    if isinstance(chunk, Mapping):
        return dict(chunk)
    msg = f"a chunk must be an astropy Table or a dict of arrays, not {type(chunk).__name__}"
    raise TypeError(msg)


def _values(spec: ColumnSpec, value: Any) -> np.ndarray:
    """Plain (possibly masked) array of ``value`` expressed in the unit of ``spec``."""
    unit = getattr(value, "unit", None)
    if unit is not None:
        target = u.Unit(spec.unit) if spec.unit is not None else u.dimensionless_unscaled
        if unit != target:
            try:
                quantity = value.quantity if isinstance(value, Column) else u.Quantity(value)
                converted = quantity.to_value(target)
            except u.UnitsError:
                msg = (
                    f"column {spec.name!r}: values in unit {unit.to_string()!r} cannot be "
                    f"converted to {target.to_string() or 'dimensionless'!r}"
                )
                raise ValueError(msg) from None
            mask = np.ma.getmask(value)
            if mask is np.ma.nomask:
                return converted
            return np.ma.MaskedArray(converted, mask=mask)
        if isinstance(value, u.Quantity):
            return value.value
    if isinstance(value, np.ma.MaskedArray):
        return value
    if isinstance(value, Column):
        return np.asarray(value)
    return np.asanyarray(value)


def _cast(spec: ColumnSpec, values: np.ndarray, warned: set[str]) -> np.ndarray:
    if spec.dtype == "U":
        if values.dtype.kind == "S":
            values = np.char.decode(values, "utf-8", "replace")
        elif values.dtype.kind == "O":
            values = values.astype(str)
        if values.dtype.kind != "U":
            msg = f"column {spec.name!r}: expected text, got dtype {values.dtype}"
            raise ValueError(msg)
        width = spec.width or 0
        if values.size and values.dtype.itemsize // 4 > width:
            too_long = np.char.str_len(values) > width
            if too_long.any() and spec.name not in warned:
                warned.add(spec.name)
                log.warning(
                    "column %r: %d value(s) longer than its width %d were truncated, e.g. %r",
                    spec.name,
                    int(too_long.sum()),
                    spec.width,
                    str(values[too_long][0]),
                )
        return values.astype(spec.numpy_dtype)

    target = spec.numpy_dtype
    if not np.can_cast(values.dtype, target, casting="same_kind"):
        msg = f"column {spec.name!r}: cannot store dtype {values.dtype} as {target}"
        raise ValueError(msg)
    if target.kind in "iu" and values.dtype.kind in "iu" and values.size:
        info = np.iinfo(target)
        lo, hi = values.min(), values.max()
        if lo < info.min or hi > info.max:
            msg = f"column {spec.name!r}: values {lo}..{hi} do not fit dtype {target}"
            raise ValueError(msg)
    return values.astype(target, copy=False)


def prepare_chunk(
    chunk: Any, columns: Sequence[ColumnSpec], *, warned: set[str] | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Check a chunk of results against the column specs and convert it to plain arrays.

    Parameters
    ----------
    chunk : `~astropy.table.Table`, dict of array-like or structured `~numpy.ndarray`
        One block of rows holding exactly the columns in ``columns``. Quantities and
        columns with units are converted to the spec's unit; masked entries are
        replaced by the spec's ``null`` value.
    columns : sequence of `ColumnSpec`
        The output columns.
    warned : set of str, optional
        Names of the columns whose truncation was already reported; updated in place
        so a writer reports each column once.

    Returns
    -------
    arrays : dict of str to `~numpy.ndarray`
        One array per column, in the column order, native byte order, shape
        ``(nrows, *spec.shape)`` and dtype ``spec.numpy_dtype``.
    nrows : int
        Number of rows in the chunk.
    """
    warned = set() if warned is None else warned
    items = _chunk_items(chunk)
    names = [spec.name for spec in columns]
    missing = [name for name in names if name not in items]
    extra = [name for name in items if name not in names]
    if missing or extra:
        msg = f"chunk columns do not match the catalog: missing {missing}, unexpected {extra}"
        raise ValueError(msg)

    arrays: dict[str, np.ndarray] = {}
    nrows: int | None = None
    for spec in columns:
        values = _values(spec, items[spec.name])
        if values.ndim >= 1 and values.shape[0] == 0:  # e.g. [] from an empty result
            values = np.empty((0, *spec.shape), dtype=spec.numpy_dtype)
        if values.ndim == 0 or values.shape[1:] != spec.shape:
            msg = (
                f"column {spec.name!r}: expected cells of shape {spec.shape}, "
                f"got an array of shape {values.shape}"
            )
            raise ValueError(msg)
        if nrows is None:
            nrows = values.shape[0]
        elif values.shape[0] != nrows:
            msg = f"column {spec.name!r} has {values.shape[0]} rows, the others {nrows}"
            raise ValueError(msg)
        if isinstance(values, np.ma.MaskedArray):
            values = values.filled(spec.null)
        arrays[spec.name] = _cast(spec, np.asarray(values), warned)
    return arrays, int(nrows or 0)


def encode_ascii(
    spec: ColumnSpec, values: np.ndarray, *, warned: set[str], where: str
) -> np.ndarray:
    """Text as ASCII bytes for byte-string formats; other characters become ``?``.

    The replacement is reported once per column (``warned`` records the columns).
    """
    try:
        return np.char.encode(values, "ascii")
    except UnicodeEncodeError:
        if spec.name not in warned:
            warned.add(spec.name)
            log.warning("column %r: non-ASCII characters written to %s as '?'", spec.name, where)
        return np.char.encode(values, "ascii", "replace")


def column_reference_markdown(columns: Sequence[ColumnSpec]) -> str:
    """Markdown table (name, type, shape, unit, description) documenting output columns.

    The output column reference of the documentation is generated from it.

    Parameters
    ----------
    columns : sequence of `ColumnSpec`
        The columns, in output order.

    Returns
    -------
    str
        A GitHub-flavoured markdown table ending with a newline.
    """

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| Name | Type | Shape | Unit | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in columns:
        kind = _DTYPE_WORDS[spec.dtype]
        if spec.dtype == "U":
            kind = f"string (at most {spec.width} characters)"
        shape = "scalar" if not spec.shape else " × ".join(str(n) for n in spec.shape)
        lines.append(
            f"| `{spec.name}` | {kind} | {shape} | {cell(spec.unit or '')} "
            f"| {cell(spec.description)} |"
        )
    return "\n".join(lines) + "\n"
