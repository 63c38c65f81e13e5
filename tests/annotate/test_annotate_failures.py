"""Failed rows: named once, by id, with the root cause kept even in a long message."""

import logging

import numpy as np
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.annotate import annotate_file
from galaxalign_astro.cli.annotate import command as annotate_command
from galaxalign_astro.inference.columns import MESSAGE_WIDTH, fit_message

from .conftest import MISSING


def test_fit_message_keeps_start_and_root_cause():
    text = "cut/GAL003.fits: " + "while reading: " * 30 + "root cause: disk quota exceeded"
    fitted = fit_message(text)
    assert len(fitted) == MESSAGE_WIDTH
    assert fitted.startswith("cut/GAL003.fits") and fitted.endswith("disk quota exceeded")
    assert " ... " in fitted
    assert fit_message("short") == "short"


def test_failed_rows_are_logged_once_by_id(catalog, micro_predictor, tmp_path, caplog):
    path, table = catalog
    out = tmp_path / "out.fits"
    with caplog.at_level(logging.WARNING):
        summary = annotate_file(
            path,
            out,
            model=micro_predictor.loaded,
            path_col="file",
            base_dir=path.parent,
            id_col="name",
            workers=0,
        )
    assert summary.n_failed == 1
    lines = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith(f"row {MISSING} (name={table['name'][MISSING]}) failed:")
    written = Table.read(out)
    assert written["gxa_status"][MISSING] == "error"
    assert np.sum(written["gxa_status"] == "error") == 1


def test_cli_names_each_failure_once(catalog, micro_model, tmp_path):
    path, table = catalog
    out = tmp_path / "out.fits"
    result = CliRunner().invoke(
        annotate_command,
        [
            str(path),
            "-o",
            str(out),
            "--model",
            micro_model,
            "--path-col",
            "file",
            "--base-dir",
            str(path.parent),
            "--id-col",
            "name",
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 3, result.output
    failed = [line for line in result.output.splitlines() if "GAL005.fits" in line]
    assert len(failed) == 1, result.output  # once, not once by the run and once by the CLI
    assert f"(name={table['name'][MISSING]})" in failed[0]
