"""Column specs, chunk checking and the generated column reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Column, MaskedColumn, Table

from galaxalign_astro.catalog import ColumnSpec, column_reference_markdown
from galaxalign_astro.catalog.columns import prepare_chunk


def test_spec_normalises_dtype_and_defaults():
    spec = ColumnSpec("probs", np.float32, shape=[10], unit="deg")
    assert spec.dtype == "f4"
    assert spec.shape == (10,)
    assert math.isnan(spec.null)
    assert ColumnSpec("n", "i2").null == -32768
    assert ColumnSpec("ok", "?").dtype == "b1"
    assert ColumnSpec("name", "U", width=8).numpy_dtype == np.dtype("U8")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "1st", "dtype": "f4"}, "column name"),
        ({"name": "x", "dtype": "c8"}, "not supported"),
        ({"name": "x", "dtype": "U"}, "positive width"),
        ({"name": "x", "dtype": "U", "width": 4, "shape": (2,)}, "scalar"),
        ({"name": "x", "dtype": "f4", "width": 4}, "only for text"),
        ({"name": "x", "dtype": "f4", "shape": (0,)}, "positive ints"),
        ({"name": "x", "dtype": "f4", "unit": "furlongs per fortnight"}, "not understood"),
        ({"name": "x", "dtype": "i2", "null": 70000}, "does not fit"),
        ({"name": "x", "dtype": "U", "width": 2, "null": "missing"}, "does not fit"),
        ({"name": "x", "dtype": "f4", "description": "two\nlines"}, "one-line"),
    ],
)
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColumnSpec(**kwargs)


def test_spec_from_existing_columns():
    spec = ColumnSpec.from_column(Column(["a", "abcd"], name="id", description="identifier"))
    assert (spec.dtype, spec.width, spec.description) == ("U", 4, "identifier")
    spec = ColumnSpec.from_column(Column(np.zeros((2, 3), "f4"), name="v", unit="mag"))
    assert (spec.dtype, spec.shape, spec.unit) == ("f4", (3,), "mag")


def test_prepare_chunk_converts_units_masks_and_dtypes():
    columns = [
        ColumnSpec("size", "f4", unit="arcsec"),
        ColumnSpec("label", "i2", null=-1),
        ColumnSpec("name", "U", width=3),
    ]
    chunk = Table(
        {
            "size": [1.0, 2.0] * u.arcmin,
            "label": MaskedColumn([3, 4], mask=[True, False]),
            "name": np.array([b"ab", b"cd"]),
        }
    )
    arrays, nrows = prepare_chunk(chunk, columns)
    assert nrows == 2
    np.testing.assert_allclose(arrays["size"], [60.0, 120.0])
    assert arrays["size"].dtype == np.float32
    assert arrays["label"].tolist() == [-1, 4]
    assert arrays["label"].dtype == np.int16
    assert arrays["name"].tolist() == ["ab", "cd"]


def test_prepare_chunk_rejects_overflow_and_ragged_columns():
    columns = [ColumnSpec("a", "i2"), ColumnSpec("b", "f8")]
    with pytest.raises(ValueError, match="do not fit"):
        prepare_chunk({"a": [1, 40000], "b": [0.0, 1.0]}, columns)
    with pytest.raises(ValueError, match="'b' has 1 rows"):
        prepare_chunk({"a": [1, 2], "b": [0.0]}, columns)
    with pytest.raises(ValueError, match="unexpected \\['c'\\]"):
        prepare_chunk({"a": [1], "b": [0.0], "c": [2]}, columns)
    with pytest.raises(TypeError, match="dict of arrays"):
        prepare_chunk([1, 2], columns)


def test_column_reference_markdown():
    text = column_reference_markdown(
        [
            ColumnSpec("objid", "U", width=20, description="input identifier"),
            ColumnSpec("ra", "f8", unit="deg", description="right ascension"),
            ColumnSpec("probs", "f4", shape=(10,), description="P(class) | softmax"),
        ]
    )
    lines = text.splitlines()
    assert lines[0] == "| Name | Type | Shape | Unit | Description |"
    assert lines[2] == (
        "| `objid` | string (at most 20 characters) | scalar |  | input identifier |"
    )
    assert lines[3] == "| `ra` | float64 | scalar | deg | right ascension |"
    assert lines[4] == "| `probs` | float32 | 10 |  | P(class) \\| softmax |"
    assert text.endswith("\n")
