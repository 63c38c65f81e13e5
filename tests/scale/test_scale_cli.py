"""The annotate-hats command, and the annotate command on a Dask cluster."""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.cli.annotate import command as annotate_command
from galaxalign_astro.cli.annotate_hats import command as annotate_hats_command
from galaxalign_astro.scale.hats import _import_lsdb

from .conftest import MISSING, N_ROWS


def test_annotate_hats_command(hats_input, micro_model, tmp_path):
    out = tmp_path / "gxa"
    args = [
        str(hats_input),
        "-o",
        str(out),
        "--images",
        "image",
        "--image-bands",
        "grz",
        "--model",
        str(micro_model),
        "--batch-size",
        "16",
    ]
    result = CliRunner().invoke(annotate_hats_command, args)
    assert result.exit_code == 0, result.output
    assert f"Annotated {N_ROWS} of {N_ROWS} rows in 13 partitions" in result.output
    frame = _import_lsdb().open_catalog(out).compute()
    assert (frame["gxa_status"] == "ok").all() and len(frame) == N_ROWS

    again = CliRunner().invoke(annotate_hats_command, args)
    assert again.exit_code == 1 and "exists" in again.output
    finished = CliRunner().invoke(annotate_hats_command, [*args, "--resume"])
    assert finished.exit_code == 1 and "finished" in finished.output


def test_annotate_hats_command_usage(hats_input, tmp_path):
    out = str(tmp_path / "gxa")
    none = CliRunner().invoke(annotate_hats_command, [str(hats_input), "-o", out])
    assert none.exit_code == 2 and "give one of" in none.output
    both = CliRunner().invoke(
        annotate_hats_command,
        [
            str(hats_input),
            "-o",
            out,
            "--images",
            "image",
            "--scheduler",
            "tcp://x:1",
            "--dask-workers",
            "2",
        ],
    )
    assert both.exit_code == 2 and "exclude each other" in both.output
    shape = CliRunner().invoke(
        annotate_hats_command,
        [str(hats_input), "-o", out, "--images", "flat", "--image-shape", "3,a"],
    )
    assert shape.exit_code == 2 and "not a shape" in shape.output


def test_annotate_command_with_a_scheduler_address(
    sky_catalog, micro_model, thread_client, tmp_path
):
    folder, table = sky_catalog
    table.write(folder / "catalog_cli.fits", overwrite=True)
    out = tmp_path / "out.fits"
    result = CliRunner().invoke(
        annotate_command,
        [
            str(folder / "catalog_cli.fits"),
            "-o",
            str(out),
            "--path-col",
            "file",
            "--base-dir",
            str(folder),
            "--model",
            str(micro_model),
            "--chunk-size",
            "20",
            "--scheduler",
            thread_client.scheduler.address,
        ],
    )
    # one row has no cutout file: exit status 3, every other row classified
    assert result.exit_code == 3, result.output
    written = Table.read(out, mask_invalid=False)
    assert len(written) == N_ROWS
    status = np.asarray(written["gxa_status"], dtype=str)
    assert status[MISSING] == "error" and (np.delete(status, MISSING) == "ok").all()
