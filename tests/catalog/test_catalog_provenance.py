"""Provenance metadata and its FITS header cards."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from astropy.io import fits

from galaxalign_astro import __version__
from galaxalign_astro.catalog import fits_header_cards, provenance_meta


def test_provenance_meta_keys():
    meta = provenance_meta(
        model="galaxalign-vit-b16",
        weights_sha256="ab" * 32,
        preprocessing={"size": 224},
        bands="grz",
        stretch=None,
    )
    assert list(meta) == ["GAVERSN", "CREATOR", "DATE", "MODEL", "WSHA256", "PREPROC", "BANDS"]
    assert meta["GAVERSN"] == __version__
    assert meta["CREATOR"] == f"galaxalign-astro {__version__}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", meta["DATE"])
    assert meta["PREPROC"] == {"size": 224}
    assert provenance_meta(date="2024-01-02T03:04:05")["DATE"] == "2024-01-02T03:04:05"


@pytest.mark.parametrize("name", ["weights_file_sha", "naxis2", "ttype1"])
def test_provenance_meta_rejects_names_without_a_header_key(name):
    with pytest.raises(ValueError, match=name):
        provenance_meta(**{name: "x"})


def test_header_cards_fit_the_fits_rules():
    preprocessing = {"stretch": "dr2_rgb", "scales": [6.0, 3.4, 2.2], "note": "y" * 120}
    meta = provenance_meta(
        model="m", weights_sha256="0" * 64, preprocessing=preprocessing, survey="é-DR10"
    )
    meta.update({"lower": 1, "COMMENT": "made by a test", "NANVAL": float("nan")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation or verification warnings
        cards = fits_header_cards(meta)
        header = fits.Header(cards)
        text = header.tostring()
    keys = [card.keyword for card in cards]
    assert "lower" not in keys and "LOWER" not in keys  # non-FITS keys stay out
    assert "NANVAL" not in keys
    assert header["WSHA256"] == "0" * 64
    assert header.comments["MODEL"] == "model name"
    assert json.loads(header["PREPROC"]) == preprocessing
    assert "CONTINUE" in text
    assert header["SURVEY"].isascii()
    assert header["COMMENT"][0] == "made by a test"


def test_header_cards_leave_out_structural_keys():
    cards = fits_header_cards({"NAXIS2": 3, "EXTNAME": "OLD", "SURVEY": "ls-dr10"})
    assert [c.keyword for c in cards] == ["SURVEY"]


def test_a_table_read_from_a_fits_catalog_can_be_written_again(tmp_path):
    """astropy keeps EXTNAME in the meta of a table it read; writing it back must work."""
    from astropy.table import Table

    from galaxalign_astro.catalog import write_table

    first = Table({"a": [1.0, 2.0]}, meta={"SURVEY": "ls-dr10"})
    write_table(first, tmp_path / "a.fits")
    again = Table.read(tmp_path / "a.fits")
    assert "EXTNAME" in again.meta
    write_table(again, tmp_path / "b.fits")
    back = Table.read(tmp_path / "b.fits")
    assert list(back["a"]) == [1.0, 2.0] and back.meta["SURVEY"] == "ls-dr10"
