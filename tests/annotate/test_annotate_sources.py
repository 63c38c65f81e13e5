"""Cutouts from a path column, a directory with a file pattern, or fetched from a survey."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.annotate import annotate, annotate_file
from galaxalign_astro.cli.annotate import command
from galaxalign_astro.cli.options import EXIT_PARTIAL

from .conftest import MISSING, N_ROWS


def test_cutouts_directory_with_id_and_row_patterns(catalog, micro_predictor, tmp_path):
    path, table = catalog
    by_id = tmp_path / "by_id.parquet"
    annotate_file(path, by_id, model=micro_predictor, cutouts_dir=tmp_path / "cut", id_col="name")
    # the same files under row-number names
    rows = tmp_path / "rows"
    rows.mkdir()
    for i, name in enumerate(table["name"]):
        source = tmp_path / "cut" / f"{name}.fits"
        if source.exists():
            (rows / f"c{i:04d}.fits").symlink_to(source)
    by_row = tmp_path / "by_row.parquet"
    annotate_file(path, by_row, model=micro_predictor, cutouts_dir=rows, pattern="c{row:04d}.fits")
    a, b = Table.read(by_id), Table.read(by_row)
    assert list(np.flatnonzero(a["gxa_status"] != "ok")) == [MISSING]
    np.testing.assert_array_equal(a["gxa_class_id"], b["gxa_class_id"])
    np.testing.assert_allclose(a["gxa_probs"], b["gxa_probs"], rtol=1e-6)


def test_bad_source_options(catalog, micro_predictor, tmp_path):
    path, _ = catalog
    out = tmp_path / "o.fits"
    with pytest.raises(ValueError, match="exactly one source"):
        annotate_file(path, out, model=micro_predictor)
    with pytest.raises(ValueError, match="exactly one source"):
        annotate_file(
            path, out, model=micro_predictor, path_col="file", cutouts_dir=tmp_path / "cut"
        )
    with pytest.raises(ValueError, match="no column 'nope'"):
        annotate_file(path, out, model=micro_predictor, path_col="nope")
    with pytest.raises(ValueError, match=r"uses \{id\}"):
        annotate_file(path, out, model=micro_predictor, cutouts_dir=tmp_path / "cut")
    assert not out.exists() and not (tmp_path / "o.fits.partial").exists()


def test_empty_path_cells_are_error_rows(catalog, micro_predictor, tmp_path):
    _, table = catalog
    table["file"][2] = ""
    result = annotate(table, model=micro_predictor, path_col="file", base_dir=tmp_path)
    assert result["gxa_status"][2] == "error"
    assert "no cutout path" in result["gxa_message"][2]


def test_fetch_from_survey_with_failures(catalog, micro_predictor, survey_server, fetch_options):
    path, table = catalog
    table["DEJ2000"][[3, 9]] = 85.0  # outside the fake footprint (all-zero cutouts)
    table.write(path, overwrite=True)
    out = path.with_name("fetched.fits")
    summary = annotate_file(
        path,
        out,
        model=micro_predictor,
        fetch="legacysurvey",
        fetch_options=fetch_options,
        id_col="name",
        chunk_size=4,
    )
    assert summary.n_rows == N_ROWS and summary.n_failed == 2
    assert [row for row, _ in summary.failures] == [3, 9]
    assert summary.fetch_counts == {"network": N_ROWS - 2, "error": 2}
    result = Table.read(out)
    assert list(result["name"]) == list(table["name"])
    failed = result["gxa_status"] != "ok"
    assert list(np.flatnonzero(failed)) == [3, 9]
    assert all("fetch failed" in m for m in result["gxa_message"][failed])
    assert np.nanmax(result["gxa_sep"][~failed]) < 0.5
    assert result.meta["SURVEY"] == "legacysurvey"
    assert survey_server.count("legacy") == N_ROWS
    assert not out.with_name("fetched.fits.partial").exists()  # cutouts went with it


def test_fetch_needs_coordinates(micro_predictor, tmp_path, fetch_options):
    path = tmp_path / "nocoords.ecsv"
    Table({"name": ["a", "b"]}).write(path)
    with pytest.raises(ValueError, match="right ascension"):
        annotate_file(
            path,
            tmp_path / "o.fits",
            model=micro_predictor,
            fetch="legacysurvey",
            fetch_options=fetch_options,
        )


def test_cli_fetch_exit_status(catalog, micro_model, survey_server, fetch_options, tmp_path):
    path, table = catalog
    table = table[:6]
    table["DEJ2000"][4] = 85.0
    table.write(path, overwrite=True)
    out = tmp_path / "cli.ecsv"
    args = [
        str(path),
        "-o",
        str(out),
        "--model",
        str(micro_model),
        "--fetch",
        "legacysurvey",
        "--base-url",
        fetch_options["base_url"],
        "--cache-dir",
        fetch_options["cache_dir"],
        "--size",
        "48",
        "--rate-limit",
        "0",
        "--max-retries",
        "0",
        "--no-embeddings",
    ]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "1 row(s) failed" in result.output and "row 4 failed:" in result.output
    written = Table.read(out)
    assert len(written) == 6 and "gxa_embedding" not in written.colnames
    assert written["gxa_status"][4] == "error"

    again = CliRunner().invoke(command, args)  # the output exists now
    assert again.exit_code == 1 and "exists" in again.output

    usage = CliRunner().invoke(command, [str(path), "-o", str(tmp_path / "x.fits")])
    assert usage.exit_code == 2 and "--path-col" in usage.output
