"""``galaxalign-astro evaluate``: report folder, printed summary, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from galaxalign_astro.cli.evaluate import command
from tests.datasets.h5_factory import write_galaxy10
from tests.evaluate.model_factory import save_untrained_model


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = save_untrained_model(folder / "model")
    data = folder / "Galaxy10_DECals.h5"
    write_galaxy10(data, n=60, size=64)
    return model, data, folder


def test_evaluate_writes_the_report_and_prints_the_summary(inputs):
    model, data, folder = inputs
    out = folder / "report"
    args = ["--model", str(model), "--data", str(data), "-o", str(out)]
    result = CliRunner().invoke(command, [*args, "--batch-size", "7"])
    assert result.exit_code == 0, result.output
    assert "| linear probe |" in result.output and "mAP@10" in result.output
    assert f"Report written to {out}" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["split"] == "test" and report["train_data"]["split"] == "train"
    assert {p.name for p in out.iterdir()} == {
        "report.json",
        "report.md",
        "confusion.png",
        "reliability.png",
    }

    again = CliRunner().invoke(command, args)
    assert again.exit_code == 1
    assert again.output.startswith("Error: ") and "overwrite" in again.output
    assert len(again.output.strip().splitlines()) == 1

    quiet = CliRunner().invoke(
        command, [*args, "--overwrite", "--no-probe", "--split", "all", "-q"]
    )
    assert quiet.exit_code == 0 and quiet.output == ""
    assert "probe" not in json.loads((out / "report.json").read_text())["classification"]


def test_bad_data_is_a_one_line_error(inputs, tmp_path):
    model, _, _ = inputs
    result = CliRunner().invoke(
        command, ["--model", str(model), "--data", str(tmp_path / "nope.h5"), "-o", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "nope.h5: no such file" in result.output


def test_label_fraction_is_validated(inputs, tmp_path):
    model, data, _ = inputs
    args = ["--model", str(model), "--data", str(data), "-o", str(tmp_path)]
    result = CliRunner().invoke(command, [*args, "--label-fraction", "0"])
    assert result.exit_code == 2


def test_importing_the_command_does_not_import_torch():
    code = "import sys, galaxalign_astro.cli.evaluate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
