"""``galaxalign-astro train RECIPE [--set ...]`` end to end on simulated cutouts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from galaxalign_astro.cli.main import cli
from galaxalign_astro.train import TrainingInterrupted

RECIPE = """
architecture = "gxa-micro"
batch_size = 8
augment = "flips"
log_every = 1
device = "cpu"
symbols = {{ variants = 2 }}
text = {{ templates = ["{{}}"] }}

[data]
spec = "simulated:30:1"

[[stages]]
name = "stage1"
epochs = 1
lr = 1e-3

[[stages]]
name = "stage2"
symbol_tower = "separate"
epochs = 2
lr = 5e-4

[meta]
description = "test recipe"
output = "{output}"
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "run"
    recipe = folder / "tiny.toml"
    recipe.write_text(RECIPE.format(output=out))
    result = CliRunner().invoke(cli, ["train", str(recipe), "--set", "stages.stage2.epochs=1"])
    return recipe, out, result


def test_train_recipe_with_one_command(trained):
    _, out, result = trained
    assert result.exit_code == 0, result.output
    assert f"Saved {out}" in result.output
    assert "validation accuracy: mix" in result.output
    spec = json.loads((out / "galaxalign.json").read_text())
    config = spec["training"]["config"]
    assert config["stages"][1]["epochs"] == 1  # the --set override
    assert config["data"]["spec"] == "simulated:30:1"
    assert config["preprocess"]["size"] == 32  # from the architecture
    assert (out / "last" / "model.safetensors").exists()
    assert (out / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_a_readable_line_per_epoch_without_a_terminal(trained):
    """CliRunner's stderr is no terminal: batch jobs still see every epoch, not dict reprs."""
    _, _, result = trained
    lines = [line for line in result.output.splitlines() if " epoch " in line and "loss" in line]
    assert [line.split(":")[0] for line in lines] == ["stage1 epoch 1/1", "stage2 epoch 1/1"]
    assert "validation mix" in lines[0] and "images/s" in lines[0]
    assert "{" not in result.output


def test_existing_output_needs_overwrite_or_resume(trained):
    recipe, out, _ = trained
    again = CliRunner().invoke(cli, ["train", str(recipe)])
    assert again.exit_code == 2
    assert "--overwrite or --resume" in again.output
    # resuming a finished run trains nothing more and keeps its history
    before = (out / "metrics.csv").read_text()
    resumed = CliRunner().invoke(
        cli, ["train", str(recipe), "--resume", "--set", "stages.stage2.epochs=1"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert (out / "metrics.csv").read_text() == before


def test_bad_setting_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--simulate", "10", "-o", str(tmp_path / "x"), "--set", "bogus=1"]
    )
    assert result.exit_code == 1
    assert "Error:" in result.output and "unknown training settings: bogus" in result.output


def test_interrupted_run_exits_with_128_plus_signal(tmp_path, monkeypatch):
    def stopped(**kwargs):
        raise TrainingInterrupted("stopped at step 3", signum=signal.SIGTERM)

    monkeypatch.setattr("galaxalign_astro.train.api.train_model", stopped)
    result = CliRunner().invoke(cli, ["train", "--simulate", "10", "-o", str(tmp_path / "x")])
    assert result.exit_code == 143
    assert "stopped at step 3" in result.output


def test_train_help_does_not_import_torch():
    code = (
        "import sys; from galaxalign_astro.cli.main import cli\n"
        "try:\n    cli(['train', '--help'])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--set KEY=VALUE" in proc.stdout and "--resume" in proc.stdout
