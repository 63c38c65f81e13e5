"""The one format table: suffixes, readers and writers of every catalog format."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from galaxalign_astro.catalog import (
    CATALOG_FORMATS,
    FORMATS,
    SUFFIXES,
    ColumnSpec,
    ColumnView,
    open_catalog,
    open_column_reader,
    output_format,
    reading_format,
    write_table,
)
from galaxalign_astro.catalog.read import TableReader
from galaxalign_astro.catalog.text import csv_column_names
from galaxalign_astro.search import open_catalog_columns

WRITTEN = sorted(name for name, fmt in CATALOG_FORMATS.items() if fmt.writer is not None)


def small_table() -> Table:
    table = Table()
    table["flux"] = np.array([1.5, -2.25, 3.0], dtype=np.float64)
    table["flux"].unit = u.Jy
    table["flux"].description = "total flux density"
    table["name"] = np.array(["a", "bb", "ccc"])
    table["vec"] = np.arange(12, dtype=np.float32).reshape(3, 4)
    return table


def test_every_suffix_is_one_format():
    seen: dict[str, str] = {}
    for name, fmt in CATALOG_FORMATS.items():
        assert fmt.name == name
        for suffix in fmt.suffixes:
            assert suffix == suffix.lower() and suffix.startswith(".")
            assert suffix not in seen, f"{suffix} is both {seen.get(suffix)} and {name}"
            seen[suffix] = name
            assert reading_format(f"cat{suffix.upper()}").name == name
        assert set(fmt.write_suffixes) <= set(fmt.suffixes)
        if fmt.writer is not None:
            assert fmt.writer.format == name
            assert FORMATS[name] is fmt.writer
            assert fmt.write_suffixes
    assert SUFFIXES == {s: fmt.name for fmt in CATALOG_FORMATS.values() for s in fmt.write_suffixes}
    for suffix, name in SUFFIXES.items():
        assert output_format(f"out{suffix}") == name
    assert reading_format("cat.xml").name == "table"
    assert reading_format("cat.dat", "ascii.csv").name == "csv"


def _expected_columns(name: str, table: Table) -> dict[str, np.ndarray]:
    """What a reader of format ``name`` gives for the stored columns of ``table``."""
    if name != "csv":
        return {c: np.asarray(table[c]) for c in table.colnames}
    # CSV stores one column per element of a vector cell
    out = {c: np.asarray(table[c]) for c in ("flux", "name")}
    spec = ColumnSpec.from_column(table["vec"], name="vec")
    for i, col in enumerate(csv_column_names(spec)):
        out[col] = np.asarray(table["vec"][:, i])
    return out


@pytest.mark.parametrize("name", WRITTEN)
def test_reader_reads_what_its_writer_wrote(tmp_path, name):
    fmt = CATALOG_FORMATS[name]
    path = tmp_path / f"cat{fmt.write_suffixes[0]}"
    table = small_table()
    write_table(table, path)
    expected = _expected_columns(name, table)

    # the chunk reader (annotate): schema and blocks of rows
    with open_catalog(path) as reader:
        assert isinstance(reader, fmt.reader)
        assert reader.format == name and reader.n_rows == 3
        specs = {s.name: s for s in reader.schema.specs}
        assert list(specs) == list(expected)
        if name != "csv":  # CSV holds no units nor descriptions
            assert specs["flux"].unit == "Jy"
            assert specs["flux"].description == "total flux density"
            assert specs["vec"].shape == (4,)
        assert specs["name"].dtype == "U" and specs["name"].width == 3
        rows = [chunk for _, chunk in reader.chunks(2)]
        assert [len(chunk) for chunk in rows] == [2, 1]
        for col, values in expected.items():
            got = np.concatenate([reader.schema.conform(chunk)[col] for chunk in rows])
            np.testing.assert_array_equal(got, values)

    # the column view (index, search): whole columns and rows by number
    with open_catalog_columns(path) as cols:
        assert cols.n_rows == 3 and list(cols.colnames) == list(expected)
        for col, values in expected.items():
            np.testing.assert_array_equal(cols.read_rows([2, 0], [col])[col], values[[2, 0]])
            chunks = list(cols.iter_column(col, chunk_rows=2))
            assert [start for start, _ in chunks] == [0, 2]
            np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), values)


def test_table_reader_of_a_table_in_memory():
    table = small_table()
    reader = open_column_reader(table)
    assert isinstance(reader, TableReader) and reader.in_memory
    specs = {s.name: s for s in reader.schema.specs}
    assert specs["flux"].unit == "Jy" and specs["vec"].shape == (4,)
    ((k, chunk),) = list(reader.chunks(5))
    assert k == 0
    np.testing.assert_array_equal(reader.schema.conform(chunk)["vec"], table["vec"])
    with ColumnView(reader) as view:
        np.testing.assert_array_equal(view.read_rows([1], ["name"])["name"], ["bb"])
        with pytest.raises(IndexError, match="outside catalog"):
            view.read_rows([3], ["name"])
        with pytest.raises(ValueError, match="no column 'nope'"):
            view.require("nope")
