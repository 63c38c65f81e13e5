"""``galaxalign-astro symbols`` and write_symbol_set."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from click.testing import CliRunner
from PIL import Image

from galaxalign_astro.cli.main import cli
from galaxalign_astro.symbols import SymbolConfig, symbol_bank
from galaxalign_astro.taxonomy import GALAXY10_DECALS, GALAXY_MNIST


def _run(*args: str):
    return CliRunner().invoke(cli, ["symbols", *args])


def test_cli_writes_every_variant_and_a_montage(tmp_path):
    out = tmp_path / "symbols"
    result = _run("-o", str(out), "--size", "24", "--variants", "2", "--seed", "5")
    assert result.exit_code == 0, result.output
    bank = symbol_bank(GALAXY10_DECALS.keys, size=24, config=SymbolConfig(variants=2, seed=5))
    for i, key in enumerate(GALAXY10_DECALS.keys):
        for v in range(2):
            with Image.open(out / key / f"{key}_{v}.png") as im:
                assert np.array_equal(np.asarray(im), bank[i, v])
    with Image.open(out / "symbols.png") as montage:
        # one row per class, one column per variant, plus labels and the header
        assert montage.height > 10 * 24 and montage.width > 2 * 24
    meta = json.loads((out / "symbols.json").read_text())
    assert meta["keys"] == GALAXY10_DECALS.keys
    assert SymbolConfig.from_dict(meta["config"]) == SymbolConfig(variants=2, seed=5)


def test_cli_refuses_to_overwrite_without_flag(tmp_path):
    out = tmp_path / "symbols"
    assert _run("-o", str(out), "--size", "16", "--variants", "3").exit_code == 0
    before = (out / "round_smooth" / "round_smooth_1.png").read_bytes()
    result = _run("-o", str(out), "--size", "16", "--variants", "3", "--seed", "1")
    assert result.exit_code == 1
    assert "exists" in result.output and "--overwrite" in result.output
    assert (out / "round_smooth" / "round_smooth_1.png").read_bytes() == before
    result = _run("-o", str(out), "--size", "16", "--variants", "2", "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "round_smooth" / "round_smooth_1.png").read_bytes() != before
    # variant 2 of the former, larger set is gone
    assert not (out / "round_smooth" / "round_smooth_2.png").exists()


def test_cli_other_taxonomy_and_bad_options(tmp_path):
    out = tmp_path / "mnist"
    result = _run("-o", str(out), "--size", "16", "--variants", "1", "--taxonomy", "galaxy_mnist")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(GALAXY_MNIST.keys)
    result = _run("-o", str(tmp_path / "x"), "--taxonomy", "hubble")
    assert result.exit_code == 1
    assert "unknown taxonomy 'hubble'" in result.output
    assert _run("-o", str(tmp_path / "y"), "--size", "4").exit_code == 2


def test_symbols_modules_do_not_import_torch():
    code = (
        "import sys, galaxalign_astro.cli.symbols, galaxalign_astro.symbols, galaxalign_astro.text;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
