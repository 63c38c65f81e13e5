"""The ``simulate`` command."""

from __future__ import annotations

import subprocess
import sys

from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.cli.simulate import command


def test_simulate_command_writes_and_summarises(tmp_path):
    out = tmp_path / "sims"
    runner = CliRunner()
    result = runner.invoke(
        command,
        [
            "-n",
            "10",
            "-o",
            str(out),
            "--seed",
            "3",
            "--size",
            "32",
            "--workers",
            "1",
            "--galaxy10-h5",
            str(out / "g10.h5"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 10 cutouts" in result.output
    assert "Barred Spiral" in result.output
    assert (out / "g10.h5").exists()
    table = Table.read(out / "labels.ecsv")
    assert len(table) == 10 and sorted(table["label"]) == list(range(10))
    again = runner.invoke(command, ["-n", "10", "-o", str(out), "--size", "32", "--seed", "3"])
    assert again.exit_code == 1
    assert "Error:" in again.output and "overwrite" in again.output
    forced = runner.invoke(
        command, ["-n", "10", "-o", str(out), "--size", "32", "--seed", "3", "--overwrite", "-q"]
    )
    assert forced.exit_code == 0 and forced.output == ""


def test_simulate_imports_no_torch():
    code = (
        "import sys, galaxalign_astro.cli.simulate, galaxalign_astro.simulate; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
