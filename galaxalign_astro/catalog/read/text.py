"""Reading CSV and ECSV catalogs a block of lines at a time.

CSV
    astropy's fast reader in chunk mode; a first pass over the file fixes one type per
    column for the whole file (ours: types guessed chunk by chunk would differ between
    chunks).
ECSV
    The header is read once and each block of data lines is parsed with it; a first
    pass measures text widths. Quoted values spanning several lines are not supported
    in chunk mode (ours).

Both are read in UTF-8, with or without the byte-order mark spreadsheet programs write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from astropy.table import MaskedColumn, Table

from .base import BLOCK_ROWS, CatalogReader
from .schema import build_schema, plain_table, text_width

__all__ = ["TEXT_ENCODING", "CsvReader", "EcsvReader"]

#: bytes of text per block of the CSV reader
_CSV_BLOCK_BYTES = 16 << 20
#: text encoding of CSV and ECSV files: UTF-8, with or without the byte-order mark that
#: spreadsheet programs write (astropy's fast reader fails on that mark otherwise)
TEXT_ENCODING = "utf-8-sig"


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
                    widths[name] = max(widths.get(name, 1), text_width(np.asarray(col)))
        if template is None:
            template = Table.read(self.path, format="ascii.csv", encoding=TEXT_ENCODING)[:0]
        self.n_rows = n
        self._dtypes = {name: _KIND_DTYPE[kind] for name, kind in kinds.items()}
        for name in template.colnames:
            self._dtypes.setdefault(name, "U")
            if self._dtypes[name] == "U":
                widths.setdefault(name, 1)
        self._template = template
        self._schema = build_schema(template, widths, self._dtypes)
        self.colnames = list(template.colnames)
        self.meta = dict(template.meta)

    def _raw_blocks(self) -> Iterator[Table]:
        from astropy.io import ascii

        options = {"chunk_size": _CSV_BLOCK_BYTES, "chunk_generator": True}
        # an open file rather than the name: the fast reader takes no encoding
        with open(self.path, encoding=TEXT_ENCODING) as fh:
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
        with open(self.path, encoding=TEXT_ENCODING) as fh:
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
                    widths[name] = max(widths.get(name, 1), text_width(data))
        if template is None:  # no data lines
            template = plain_table(Table.read(self._header, format="ascii.ecsv"))
        self.n_rows = n
        self._template = template
        self._schema = build_schema(template, widths)
        self.colnames = list(template.colnames)
        self.meta = dict(template.meta)

    def _raw_blocks(self) -> Iterator[Table]:
        with open(self.path, encoding=TEXT_ENCODING) as fh:
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
