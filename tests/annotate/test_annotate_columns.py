"""annotate keeps every input column and row, appends the model's columns, and names them safely."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.annotate import annotate, annotate_file, annotation_columns
from tests.cutout_factory import galaxy_cube

from .conftest import MISSING, N_ROWS, catalog_table


def test_file_keeps_columns_rows_units_and_meta(catalog, micro_predictor, tmp_path):
    path, table = catalog
    out = tmp_path / "out.fits"
    summary = annotate_file(
        path, out, model=micro_predictor, path_col="file", base_dir=tmp_path, chunk_size=4
    )
    assert (summary.n_rows, summary.n_ok, summary.n_failed) == (N_ROWS, N_ROWS - 1, 1)
    assert summary.failures[0][0] == MISSING and "no such file" in summary.failures[0][1]

    result = Table.read(out, mask_invalid=False)
    added = [
        s.name
        for s in annotation_columns(
            micro_predictor.class_names, embed_dim=micro_predictor.embed_dim
        )
    ]
    assert result.colnames == table.colnames + added
    for name in table.colnames:
        values = np.asarray(result[name])
        if values.dtype.kind == "S":  # FITS text comes back as bytes with mask_invalid=False
            values = np.char.decode(values)
        np.testing.assert_array_equal(values, np.asarray(table[name]))
    assert result["RAJ2000"].unit == "deg" and result["mag"].unit == "mag"
    assert result["RAJ2000"].description == "Right ascension (J2000)"
    assert result.meta["ORIGIN"] == "galaxalign-astro tests"
    assert result.meta["WSHA256"] == micro_predictor.loaded.weights_sha256
    assert result.meta["galaxalign"]["annotate"]["path_col"] == "file"

    ok = result["gxa_status"] == "ok"
    assert list(np.flatnonzero(~ok)) == [MISSING]
    # the FITS null of class_id is -1 (TNULL), so astropy masks it
    assert np.ma.getdata(result["gxa_class_id"])[MISSING] == -1
    assert result["gxa_class_id"].mask[MISSING] and np.isnan(result["gxa_class_prob"][MISSING])
    np.testing.assert_allclose(np.asarray(result["gxa_probs"][ok]).sum(axis=1), 1.0, rtol=1e-5)
    names = micro_predictor.class_names
    assert [names[i] for i in result["gxa_class_id"][ok]] == list(result["gxa_class_name"][ok])
    # the cutouts are centred on the catalog positions
    assert np.nanmax(result["gxa_sep"]) < 0.01 and result["gxa_sep"].unit == "arcsec"


def test_in_memory_table_is_copied_not_changed(catalog, micro_predictor, tmp_path):
    _, table = catalog
    before = table.copy()
    result = annotate(table, model=micro_predictor, path_col="file", base_dir=tmp_path)
    assert table.colnames == before.colnames and table.meta == before.meta
    assert result.colnames[: len(table.colnames)] == table.colnames
    assert list(result["name"]) == list(table["name"])
    assert (result["gxa_status"] == "ok").sum() == N_ROWS - 1
    assert result.meta["galaxalign"]["weights_sha256"] == micro_predictor.loaded.weights_sha256


def test_in_memory_images(micro_predictor):
    cubes = np.stack([galaxy_cube(48, q=0.4 + 0.1 * i, seed=i) for i in range(3)])
    table = Table({"id": [1, 2, 3], "cube": cubes})
    result = annotate(table, model=micro_predictor, images="cube", bands="grz", embeddings=False)
    assert (result["gxa_status"] == "ok").all()
    assert "gxa_embedding" not in result.colnames
    assert np.isnan(result["gxa_sep"]).all()  # no RA/Dec columns


def test_prefix_collisions(catalog, micro_predictor, tmp_path):
    _, table = catalog
    table["gxa_class_id"] = np.zeros(len(table), dtype=int)
    clash = tmp_path / "clash.fits"
    table.write(clash)
    with pytest.raises(ValueError, match=r"gxa_class_id.*prefix"):
        annotate_file(clash, tmp_path / "o.fits", model=micro_predictor, path_col="file")
    with pytest.raises(ValueError, match="prefix"):
        annotate(table, model=micro_predictor, path_col="file", base_dir=tmp_path)
    out = tmp_path / "o.fits"
    annotate_file(
        clash, out, model=micro_predictor, path_col="file", base_dir=tmp_path, prefix="morph_"
    )
    result = Table.read(out)
    assert "gxa_class_id" in result.colnames and "morph_class_id" in result.colnames
    assert (result["gxa_class_id"] == 0).all()


def test_names_that_formats_reject_are_sanitized(micro_predictor, tmp_path, catalog):
    _, table = catalog
    table.rename_column("RAJ2000", "_RAJ2000")
    table.rename_column("mag", "mag-g")
    path = tmp_path / "vizier.ecsv"
    table.write(path)
    out = tmp_path / "o.parquet"
    annotate_file(path, out, model=micro_predictor, path_col="file", base_dir=tmp_path)
    result = Table.read(out)
    assert result.colnames[:6] == ["name", "col_RAJ2000", "DEJ2000", "mag_g", "flux_vec", "file"]
    assert result.meta["galaxalign"]["renamed_columns"] == {
        "_RAJ2000": "col_RAJ2000",
        "mag-g": "mag_g",
    }
    # the coordinates were still found under their original name
    assert np.nanmax(result["gxa_sep"]) < 0.01


def test_source_step_measurements_become_columns(sources_model, catalog, tmp_path):
    _, table = catalog
    result = annotate(table[:3], model=sources_model, path_col="file", base_dir=tmp_path)
    for name in ("gxa_ellipticity", "gxa_n_sources", "gxa_noise_sigma", "gxa_flags"):
        assert name in result.colnames
    assert result["gxa_noise_sigma"].shape == (3, 3)  # one value per model band
    assert (result["gxa_n_sources"] >= 1).all()
    assert result.colnames[-2:] == ["gxa_status", "gxa_message"]
    assert result["gxa_semimajor_sigma"].unit == "pix"


def test_row_order_survives_a_small_last_chunk(micro_predictor, tmp_path, catalog):
    path, _ = catalog
    big = catalog_table(N_ROWS)
    out = tmp_path / "o.ecsv"
    annotate_file(
        path, out, model=micro_predictor, path_col="file", base_dir=tmp_path, chunk_size=5
    )
    assert list(Table.read(out)["name"]) == list(big["name"])


def test_annotate_misuse_raises_instead_of_error_rows(micro_predictor, tmp_path):
    table = Table({"file": ["a.fits", "b.fits"]})
    with pytest.raises(TypeError, match="path_col='file'"):
        annotate(table, model=micro_predictor, images="file")  # paths given as images
    with pytest.raises(TypeError, match="not file paths"):
        annotate(table, model=micro_predictor, images=["a.fits", "b.fits"])
    with pytest.raises(TypeError, match="annotate_file"):
        annotate(str(tmp_path / "cat.fits"), model=micro_predictor, path_col="file")
    with pytest.raises(TypeError, match="from_pandas"):
        annotate(table.to_pandas(), model=micro_predictor, path_col="file")
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        annotate(table, model=micro_predictor, path_col="file", batch_size="many")


def test_annotate_warns_when_rows_fail(micro_predictor, tmp_path, caplog):
    import logging

    table = Table({"file": ["missing.fits"]})
    with caplog.at_level(logging.WARNING, logger="galaxalign_astro.annotate"):
        result = annotate(table, model=micro_predictor, path_col="file", base_dir=tmp_path)
    assert result["gxa_status"][0] == "error"
    assert "1 of 1 rows failed" in caplog.text and "missing.fits" in caplog.text
