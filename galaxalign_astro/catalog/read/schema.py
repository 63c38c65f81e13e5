"""How input columns appear in an output catalog: names, dtypes, units, widths.

`InputSchema` is what every catalog reader gives besides its rows: the output
`~galaxalign_astro.catalog.ColumnSpec` of each input column, and the cast of a
block of rows to them, so the rows written do not depend on the chunk size.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy import units as u
from astropy.table import Column, MaskedColumn, Table

from ..columns import ColumnSpec

__all__ = ["InputSchema", "build_schema", "plain_table", "sanitize_name", "text_width"]

log = logging.getLogger(__name__)


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


def text_width(values: np.ndarray) -> int:
    """Longest text of ``values`` as written (at least 1)."""
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


def build_schema(
    template: Table, widths: dict[str, int], dtypes: dict[str, str] | None = None
) -> InputSchema:
    """`InputSchema` of a zero-row (or any) table, with text widths measured elsewhere.

    Parameters
    ----------
    template : `~astropy.table.Table`
        The input's columns (mixins are split into plain columns).
    widths : dict
        Text width of columns whose width the template does not show.
    dtypes : dict, optional
        Output dtype code of columns whose type was fixed elsewhere (CSV).
    """
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
                width = text_width(data) if data.dtype.kind in "OM" else _dtype_width(data.dtype)
        specs.append(_column_spec(col, name=name, dtype=dtype, width=width, taken=taken))
    meta = {k: v for k, v in template.meta.items() if k != "__serialized_columns__"}
    return InputSchema(names, specs, meta)


def _dtype_width(dtype: np.dtype) -> int:
    if dtype.kind == "U":
        return max(1, dtype.itemsize // 4)
    if dtype.kind == "S":
        return max(1, dtype.itemsize)
    return 1
