"""The parameters as values: CutoutSpec and AnnotateOptions, SkyCoord positions, in place."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from galaxalign_astro.annotate import AnnotateOptions, CutoutSpec, annotate, annotate_file, stream

from .conftest import MISSING, N_ROWS


def test_cutout_spec_takes_exactly_one_source():
    assert CutoutSpec(path_col="file").kind == "path_col"
    assert CutoutSpec.from_survey("sdss", {"size": 64}).kind == "fetch"
    assert CutoutSpec.from_directory("cut", "name").pattern == "{id}.fits"
    with pytest.raises(ValueError, match=r"exactly one source of cutouts.*got none"):
        CutoutSpec()
    with pytest.raises(ValueError, match="got path_col, fetch"):
        CutoutSpec(path_col="file", fetch="sdss")
    with pytest.raises(ValueError, match="fetch_options apply only with fetch"):
        CutoutSpec(path_col="file", fetch_options={"size": 64})
    with pytest.raises(ValueError, match="exactly one"):
        CutoutSpec(path_col="file").replace(cutouts_dir="cut")


def test_annotate_options_are_checked_once():
    assert AnnotateOptions().prefix == "gxa_"
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        AnnotateOptions(chunk_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        AnnotateOptions(batch_size="many")
    assert AnnotateOptions(dask_workers=2).on_cluster


def test_values_and_keywords_give_the_same_table(catalog, micro_predictor, tmp_path):
    _, table = catalog
    by_keywords = annotate(table, model=micro_predictor, path_col="file", base_dir=tmp_path)
    by_values = annotate(
        table,
        CutoutSpec.from_path_column("file", tmp_path),
        AnnotateOptions(model=micro_predictor),
    )
    np.testing.assert_allclose(by_keywords["gxa_probs"], by_values["gxa_probs"], rtol=1e-6)
    with pytest.raises(TypeError, match="unexpected keyword argument 'resume'"):
        annotate(table, model=micro_predictor, path_col="file", resume=True)
    with pytest.raises(TypeError, match="source must be a CutoutSpec"):
        annotate(table, {"path_col": "file"})


def test_inplace_adds_the_columns_to_the_table_itself(catalog, micro_predictor, tmp_path):
    _, table = catalog
    table = table.copy()
    result = annotate(
        table, model=micro_predictor, path_col="file", base_dir=tmp_path, inplace=True
    )
    assert result is table and "gxa_class_name" in table.colnames
    assert table.meta["galaxalign"]["annotate"]["path_col"] == "file"
    with pytest.raises(TypeError, match="inplace"):
        annotate(table, model=micro_predictor, path_col="file", inplace="yes")


def test_skycoord_column_and_coords_give_the_positions(catalog, micro_predictor, tmp_path):
    _, table = catalog
    reference = annotate(table, model=micro_predictor, path_col="file", base_dir=tmp_path)
    sky = SkyCoord(table["RAJ2000"], table["DEJ2000"])
    plain = table.copy()
    plain.remove_columns(["RAJ2000", "DEJ2000"])
    with_column = plain.copy()
    with_column["pos"] = sky
    for result, name in (
        (annotate(with_column, model=micro_predictor, path_col="file", base_dir=tmp_path), "pos"),
        (
            annotate(plain, model=micro_predictor, path_col="file", base_dir=tmp_path, coords=sky),
            "coords",
        ),
    ):
        ok = result["gxa_status"] == "ok"
        np.testing.assert_allclose(result["gxa_sep"][ok], reference["gxa_sep"][ok], atol=1e-6)
        assert result.meta["galaxalign"]["annotate"]["ra_col"] == f"{name}.ra"
        assert f"{name}.ra" not in result.colnames
    assert result["gxa_status"][MISSING] == "error" and len(result) == N_ROWS
    with pytest.raises(TypeError, match="SkyCoord"):
        annotate(plain, model=micro_predictor, path_col="file", coords=[1.0, 2.0])
    with pytest.raises(ValueError, match="positions for"):
        annotate(plain, model=micro_predictor, path_col="file", coords=sky[:3])
    with pytest.raises(ValueError, match="not both"):
        annotate(table, model=micro_predictor, path_col="file", coords=sky, ra_col="RAJ2000")


def test_skycoord_positions_fetch(catalog, micro_predictor, survey_server, fetch_options):
    _, table = catalog
    plain = table.copy()
    sky = SkyCoord(table["RAJ2000"], table["DEJ2000"])
    plain.remove_columns(["RAJ2000", "DEJ2000"])
    plain["where"] = sky.transform_to("galactic")  # any frame: positions go in ICRS
    result = annotate(
        plain,
        model=micro_predictor,
        fetch="legacysurvey",
        fetch_options=fetch_options,
        id_col="name",
    )
    assert len(result) == N_ROWS
    np.testing.assert_allclose(plain["where"].icrs.ra.deg, sky.ra.deg, atol=1e-9)
    assert result.meta["galaxalign"]["annotate"]["ra_col"] == "where.ra"
    assert u.deg  # positions are in degrees


def test_cluster_without_a_runner_says_how_to_get_one(
    catalog, micro_predictor, tmp_path, monkeypatch
):
    path, _ = catalog
    monkeypatch.setattr(stream, "_RUNNERS", [])
    with pytest.raises(ValueError, match="needs a cluster runner"):
        annotate_file(
            path, tmp_path / "o.fits", model=micro_predictor, path_col="file", dask_workers=1
        )


def test_a_runner_handed_in_classifies_the_chunks(catalog, micro_predictor, tmp_path):
    """Any ClusterRunner works: this one classifies the chunks here, like the Dask one."""
    path, _ = catalog
    calls = []

    def runner(chunks, *, annotator, source_options, coords, store, bar, **kwargs):
        from galaxalign_astro.annotate.engine import catalog_radec, cutout_source

        source = cutout_source(
            CutoutSpec(**source_options), coords=coords, preprocess=annotator.predictor.config
        )
        for index, rows in chunks:
            calls.append(index)
            paths, errors = source.resolve(rows, index * kwargs["chunk_size"])
            store(index, rows, annotator.block(paths, errors, catalog_radec(rows, coords), bar))

    reference = tmp_path / "ref.fits"
    annotate_file(path, reference, model=micro_predictor, path_col="file", base_dir=tmp_path)
    out = tmp_path / "out.fits"
    summary = annotate_file(
        path,
        out,
        CutoutSpec.from_path_column("file", tmp_path),
        AnnotateOptions(model=micro_predictor, chunk_size=4, dask_workers=1),
        runner=runner,
    )
    assert calls == [0, 1, 2, 3] and summary.n_failed == 1
    from astropy.table import Table

    a, b = Table.read(reference), Table.read(out)
    np.testing.assert_allclose(a["gxa_probs"], b["gxa_probs"], rtol=1e-5, atol=1e-6)
