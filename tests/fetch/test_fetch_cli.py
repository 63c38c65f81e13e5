"""``galaxalign-astro fetch``: exit codes, failures table, options."""

from __future__ import annotations

import astropy.units as u
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.cli.fetch import command
from galaxalign_astro.cli.options import EXIT_PARTIAL
from galaxalign_astro.fetch import conf


def write_catalogue(path, *, outside=False):
    table = Table(
        {
            "objid": ["a1", "b2", "c3"],
            "RA": [150.0, 150.2, 150.4] * u.deg,
            "Dec": [2.0, 85.0 if outside else 2.2, 2.4] * u.deg,
        }
    )
    table.write(path)
    return path


def run(args):
    # the command itself, so these tests do not depend on its registration in cli.main
    return CliRunner().invoke(command, [str(a) for a in args], prog_name="galaxalign-astro fetch")


def common(server, tmp_path):
    return [
        "--base-url",
        server.url,
        "--cache-dir",
        tmp_path / "cache",
        "--rate-limit",
        "0",
        "--timeout",
        "1",
        "--size",
        "16",
    ]


def test_all_rows_ok_exit_0(survey_server, tmp_path):
    cat = write_catalogue(tmp_path / "cat.ecsv")
    out = tmp_path / "out"
    result = run([cat, "-o", out, "--id-col", "objid", *common(survey_server, tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 of 3 cutouts" in result.output and "0 failed" in result.output
    assert sorted(p.name for p in out.glob("*.fits")) == ["a1.fits", "b2.fits", "c3.fits"]
    with fits.open(out / "a1.fits") as hdul:
        assert hdul[0].data.shape == (3, 16, 16)
    assert len(Table.read(out / "failures.ecsv")) == 0


def test_failed_row_gives_exit_3_and_failures_table(survey_server, tmp_path):
    cat = write_catalogue(tmp_path / "cat.csv", outside=True)
    out = tmp_path / "out"
    result = run(
        [cat, "-o", out, "--id-col", "objid", "--bands", "gr", *common(survey_server, tmp_path)]
    )
    assert result.exit_code == EXIT_PARTIAL == 3
    assert "2 of 3 cutouts" in result.output and "1 failed" in result.output
    failures = Table.read(out / "failures.ecsv")
    assert list(failures["id"]) == ["b2"]
    assert "outside the survey footprint" in failures["error"][0]
    assert failures.meta["survey"] == "legacysurvey"
    assert "b2: OutsideFootprintError" in result.output


def test_rerun_keeps_files_and_clears_failures(survey_server, tmp_path):
    cat = write_catalogue(tmp_path / "cat.fits")
    out = tmp_path / "out"
    survey_server.inject("legacy", *[("status", 503)] * 3)
    with conf.set_temp("backoff_factor", 0.01):
        first = run(
            [
                cat,
                "-o",
                out,
                "--max-workers",
                "1",
                "--max-retries",
                "2",
                *common(survey_server, tmp_path),
            ]
        )
    assert first.exit_code == 3
    assert len(Table.read(out / "failures.ecsv")) == 1
    second = run([cat, "-o", out, *common(survey_server, tmp_path)])
    assert second.exit_code == 0
    assert "1 downloaded" in second.output and "2 already there" in second.output
    assert len(Table.read(out / "failures.ecsv")) == 0


def test_missing_coordinate_column_is_a_one_line_error(tmp_path):
    cat = tmp_path / "cat.csv"
    Table({"x": [1.0], "y": [2.0]}).write(cat)
    result = run([cat, "-o", tmp_path / "out"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no right ascension column")
    assert len(result.output.strip().splitlines()) == 1


def test_named_columns_and_dry_run(survey_server, tmp_path):
    cat = tmp_path / "cat.csv"
    Table({"alpha": [150.0], "delta": [2.0]}).write(cat)
    result = run(
        [
            cat,
            "-o",
            tmp_path / "out",
            "--ra-col",
            "alpha",
            "--dec-col",
            "delta",
            "--dry-run",
            *common(survey_server, tmp_path),
        ]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("000000\tGET " + survey_server.url + "/viewer/fits-cutout?")
    assert "ra=150.0000000" in result.output
    assert survey_server.count() == 0


def test_sdss_and_hips_surveys(survey_server, tmp_path):
    cat = write_catalogue(tmp_path / "cat.ecsv")
    for survey, extra in (
        ("sdss", ["--bands", "r"]),
        ("hips", ["--hips-id", "g=CDS/P/SDSS9/g", "--bands", "g"]),
    ):
        out = tmp_path / survey
        result = run(
            [cat, "-o", out, "--survey", survey, "-q", *extra, *common(survey_server, tmp_path)]
        )
        assert result.exit_code == 0, result.output
        assert result.output == ""
        with fits.open(out / "000000.fits") as hdul:
            assert hdul[0].header["SURVEY"] == survey
    assert survey_server.requests[-1].params["hips"] == "CDS/P/SDSS9/g"


def test_hips_id_needs_hips_survey(tmp_path):
    cat = write_catalogue(tmp_path / "cat.ecsv")
    result = run([cat, "-o", tmp_path / "out", "--hips-id", "g=X"])
    assert result.exit_code == 2
    assert "--hips-id" in result.output


def test_unreadable_catalogue(tmp_path):
    cat = tmp_path / "cat.txt"
    cat.write_text("this is not a table\n\x00\x01")
    result = run([cat, "-o", tmp_path / "out"])
    assert result.exit_code == 1
    assert "cannot read catalogue" in result.output
