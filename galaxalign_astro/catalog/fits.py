"""Streaming FITS binary-table catalog writer.

Layout: an empty primary HDU, then one ``BINTABLE`` extension named ``CATALOG``.
The extension header is built once, before any row: ``TTYPEn`` (with the column
description as the card comment), ``TCOMMn`` (the full description, the convention
TOPCAT and fitsverify know; astropy reads these cards into ``meta``, and the
package's catalog readers leave them out there), ``TFORMn``
(``nE``/``nD``/``nJ``... for vectors), ``TDIMn`` for cells of two or more
dimensions, ``TUNITn``, ``TNULLn`` for integer columns, the metadata cards of
`fits_header_cards`, and the astropy serialized-columns block (``COMMENT`` cards)
that gives `~astropy.table.Table.read` the full descriptions and metadata values.
Rows are appended as big-endian records chunk by chunk; `close` writes the final
row count into the ``NAXIS2`` card (whose size does not change), pads the data
to a multiple of 2880 bytes, and fills in the ``DATASUM`` and ``CHECKSUM`` cards
of both HDUs (FITS checksum convention, computed by astropy from the memory-mapped
file; the cards are reserved in the headers from the start, so the header size
does not change and nothing is rewritten). ``fitsverify`` and
``fits.open(path, checksum=True)`` check them.

Text is stored as ASCII (``nA``); other characters are replaced by ``?``, with one
logged warning per column (ours). Header cards hold ASCII approximations of
non-ASCII metadata; the astropy block keeps the exact values.

Reading back: ``Table.read(path)`` masks NaN floats and ``TNULLn`` integers
(astropy's default); ``Table.read(path, mask_invalid=False)`` keeps NaN as NaN.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import meta as table_meta

from .base import CatalogWriter
from .columns import ColumnSpec, empty_table, encode_ascii
from .provenance import ascii_text, fits_header_cards, fitting_card

__all__ = ["EXTNAME", "FitsCatalogWriter", "fits_header"]

log = logging.getLogger(__name__)

#: name of the table extension
EXTNAME = "CATALOG"
_BLOCK = 2880
_TFORM = {"b1": "L", "u1": "B", "i2": "I", "i4": "J", "i8": "K", "f4": "E", "f8": "D"}
#: astropy's markers around the YAML column description stored in COMMENT cards
_YAML_BEGIN = "--BEGIN-ASTROPY-SERIALIZED-COLUMNS--"
_YAML_END = "--END-ASTROPY-SERIALIZED-COLUMNS--"


def _record_dtype(columns: tuple[ColumnSpec, ...]) -> np.dtype:
    fields: list[tuple[str, Any, tuple[int, ...]]] = []
    for spec in columns:
        if spec.dtype == "U":
            fields.append((spec.name, f"S{spec.width}", ()))
        elif spec.dtype == "b1":
            fields.append((spec.name, "S1", spec.shape))
        else:
            fields.append((spec.name, spec.numpy_dtype.newbyteorder(">"), spec.shape))
    return np.dtype(fields)


def _fits_unit(spec: ColumnSpec) -> str | None:
    """``TUNITn`` value; units outside the FITS standard are written as astropy names them."""
    if spec.unit is None:
        return None
    try:
        return u.Unit(spec.unit).to_string("fits")
    except ValueError:
        log.warning(
            "column %r: unit %r is not a FITS standard unit; FITS readers may not parse it",
            spec.name,
            spec.unit,
        )
        return spec.unit


def _yaml_comment_lines(columns: tuple[ColumnSpec, ...], meta: dict) -> list[str]:
    """astropy's YAML table header, cut into COMMENT-card lines ending in ``\\``."""
    # COMMENT and HISTORY cards come back through astropy's own reading of them
    block_meta = {
        key: value for key, value in meta.items() if key not in ("comments", "COMMENT", "HISTORY")
    }
    block_meta["__serialized_columns__"] = {}
    table = empty_table(columns, meta=block_meta, text_as_bytes=True)
    lines = [_YAML_BEGIN]
    for line in table_meta.get_yaml_from_table(table):
        pieces = [line[i : i + 70] for i in range(0, len(line), 70)] or [""]
        lines.extend(piece + "\\" for piece in pieces[:-1])
        lines.append(pieces[-1])
    lines.append(_YAML_END)
    return lines


def fits_header(columns: tuple[ColumnSpec, ...], meta: dict) -> fits.Header:
    """Header of the ``CATALOG`` extension for zero rows (``NAXIS2`` is patched later)."""
    header = fits.Header()
    header.append(("XTENSION", "BINTABLE", "binary table extension"))
    header.append(("BITPIX", 8, "array data type"))
    header.append(("NAXIS", 2, "number of array dimensions"))
    header.append(("NAXIS1", _record_dtype(columns).itemsize, "length of a row in bytes"))
    header.append(("NAXIS2", 0, "number of rows"))
    header.append(("PCOUNT", 0, "number of group parameters"))
    header.append(("GCOUNT", 1, "number of groups"))
    header.append(("TFIELDS", len(columns), "number of columns"))
    for i, spec in enumerate(columns, start=1):
        header.append(fitting_card(f"TTYPE{i}", spec.name, spec.description))
        if spec.description:
            header.append(fits.Card(f"TCOMM{i}", ascii_text(spec.description)))
        if spec.dtype == "U":
            header.append((f"TFORM{i}", f"{spec.width}A"))
        else:
            repeat = int(np.prod(spec.shape, dtype=int))
            header.append((f"TFORM{i}", f"{repeat if repeat != 1 else ''}{_TFORM[spec.dtype]}"))
        if len(spec.shape) > 1:
            header.append((f"TDIM{i}", "(" + ",".join(str(n) for n in spec.shape[::-1]) + ")"))
        unit = _fits_unit(spec)
        if unit:
            header.append((f"TUNIT{i}", unit))
        if spec.dtype[0] in "iu":
            header.append((f"TNULL{i}", int(spec.null), "value of missing entries"))
    header.append(("EXTNAME", EXTNAME, "name of this HDU"))
    _reserve_checksum_cards(header)
    cards = fits_header_cards(meta)
    if any(len(card.image) > 80 for card in cards):  # fitsverify wants it declared
        header.append(("LONGSTRN", "OGIP 1.0", "CONTINUE long-string convention used"))
    for card in cards:
        header.append(card, end=True)
    for line in _yaml_comment_lines(columns, meta):
        header.append(("COMMENT", line), end=True)
    return header


def _reserve_checksum_cards(header: fits.Header) -> None:
    """Placeholders that astropy's ``add_checksum`` fills in place once the file is
    complete."""
    header.append(("CHECKSUM", "0" * 16, "HDU checksum"))
    header.append(("DATASUM", "0", "data unit checksum"))


def _primary_header() -> fits.Header:
    header = fits.Header()
    header.append(("SIMPLE", True, "conforms to FITS standard"))
    header.append(("BITPIX", 8, "array data type"))
    header.append(("NAXIS", 0, "number of array dimensions"))
    header.append(("EXTEND", True, "extensions follow"))
    _reserve_checksum_cards(header)
    header.append(("COMMENT", f"catalog table in extension {EXTNAME}"))
    return header


class FitsCatalogWriter(CatalogWriter):
    """Write a FITS binary table incrementally (see the module docstring for the layout)."""

    format = "fits"

    def _open(self, tmp: Path) -> None:
        self._dtype = _record_dtype(self.columns)
        header = fits_header(self.columns, self.meta).tostring()
        self._naxis2_offset = header.index("NAXIS2  =")
        primary = _primary_header().tostring().encode("ascii")
        self._fh: BinaryIO = open(tmp, "wb")
        self._handles.append(self._fh)
        self._fh.write(primary)
        self._table_start = len(primary)
        self._fh.write(header.encode("ascii"))
        self._data_start = self._fh.tell()

    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        records = np.empty(nrows, dtype=self._dtype)
        for spec in self.columns:
            values = arrays[spec.name]
            if spec.dtype == "U":
                values = encode_ascii(spec, values, warned=self._warned, where="FITS")
            elif spec.dtype == "b1":
                values = np.where(values, b"T", b"F")
            records[spec.name] = values
        self._fh.write(records.view(np.uint8).data)

    def _finish(self) -> None:
        fh = self._fh
        size = fh.tell() - self._data_start
        fh.write(b"\0" * (-size % _BLOCK))
        fh.seek(self._table_start + self._naxis2_offset)
        fh.write(fits.Card("NAXIS2", self._rows, "number of rows").image.encode("ascii"))
        fh.close()
        with fits.open(self._tmp, mode="update", memmap=True) as hdul:
            for hdu in hdul:
                hdu.add_checksum()
