import subprocess
import sys
import time

import numpy as np
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.cli.main import cli


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys; from galaxalign_astro.cli.main import cli\n"
        "try:\n    cli(['classify', '--help'])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'astropy' not in sys.modules, 'astropy imported'\n"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--embeddings / --no-embeddings" in proc.stdout
    assert time.perf_counter() - start < 5  # generous: the budget is start-up, not torch
    out = subprocess.run(
        [sys.executable, "-m", "galaxalign_astro", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "galaxalign-astro, version" in out.stdout


def test_classify_exit_codes(micro_model, cutout_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out.fits"
    res = runner.invoke(
        cli,
        [
            "classify",
            str(cutout_dir),
            "-o",
            str(out),
            "--model",
            str(micro_model),
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Classified 5 of 5" in res.output
    # an existing output is refused (fatal error 1), and kept
    before = out.read_bytes()
    res = runner.invoke(
        cli, ["classify", str(cutout_dir), "-o", str(out), "--model", str(micro_model)]
    )
    assert res.exit_code == 1
    assert "exists" in res.output and out.read_bytes() == before
    # one bad input -> exit 3, the others classified, one line naming the file
    (cutout_dir / "zero.fits").write_bytes(b"")
    out2 = tmp_path / "out2.ecsv"
    res = runner.invoke(
        cli,
        [
            "classify",
            str(cutout_dir / "*.fits"),
            "-o",
            str(out2),
            "--model",
            str(micro_model),
            "--no-embeddings",
            "-q",
        ],
    )
    assert res.exit_code == 3
    table = Table.read(out2)
    assert len(table) == 6 and (table["status"] == "error").sum() == 1
    assert "embedding" not in table.colnames
    assert "zero.fits: empty file" in res.output


def test_degenerate_images_are_error_rows(micro_model, cutout_dir, tmp_path):
    from astropy.io import fits
    from PIL import Image

    from tests.cutout_factory import galaxy_cube

    fits.PrimaryHDU(galaxy_cube(2)).writeto(cutout_dir / "tiny.fits")
    fits.PrimaryHDU(np.full((3, 32, 32), 0.25, np.float32)).writeto(cutout_dir / "flat.fits")
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(cutout_dir / "dot.png")
    out = tmp_path / "out.ecsv"
    res = CliRunner().invoke(
        cli,
        ["classify", str(cutout_dir), "-o", str(out), "--model", str(micro_model), "-q"],
    )
    assert res.exit_code == 3, res.output
    table = Table.read(out)
    assert len(table) == 8
    failed = {
        str(p).rsplit("/", 1)[-1]: m
        for p, s, m in table["source", "status", "message"]
        if s == "error"
    }
    assert sorted(failed) == ["dot.png", "flat.fits", "tiny.fits"]
    assert failed["tiny.fits"].endswith("image is 2x2 pixels; at least 8x8 needed")
    assert failed["dot.png"].endswith("image is 1x1 pixels; at least 8x8 needed")
    assert "constant image: no signal" in failed["flat.fits"]
    assert (table["status"] == "ok").sum() == 5


def test_sub_folders_recursive_and_double_star(micro_model, cutout_dir, tmp_path):
    survey = tmp_path / "survey"
    for i, path in enumerate(sorted(cutout_dir.iterdir())):
        (survey / f"brick{i % 2}").mkdir(parents=True, exist_ok=True)
        path.rename(survey / f"brick{i % 2}" / path.name)
    (survey / "brick0" / "gone.fits").symlink_to(tmp_path / "deleted.fits")
    base = ["--model", str(micro_model), "--workers", "0", "-q"]
    res = CliRunner().invoke(cli, ["classify", str(survey), "-o", str(tmp_path / "a.ecsv"), *base])
    assert res.exit_code == 1
    assert "only sub-folders (brick0, brick1); pass --recursive" in res.output
    assert "empty directory" not in res.output
    for args, name in [
        ([str(survey), "--recursive"], "b.ecsv"),
        ([f"{survey}/**/*.fits"], "c.ecsv"),
    ]:
        res = CliRunner().invoke(cli, ["classify", *args, "-o", str(tmp_path / name), *base])
        assert res.exit_code == 3, res.output
        table = Table.read(tmp_path / name)
        assert len(table) == 6 and (table["status"] == "ok").sum() == 5
        assert "gone.fits: broken symbolic link" in res.output


def test_usage_error_is_2(tmp_path):
    res = CliRunner().invoke(cli, ["classify", "x.fits"])
    assert res.exit_code == 2


def test_unsupported_output_suffix_is_a_usage_error(cutout_dir, tmp_path):
    # found before the model is looked up: a usage error wins over the missing model
    out = tmp_path / "out.xyz"
    res = CliRunner().invoke(cli, ["classify", str(cutout_dir), "-o", str(out), "--model", "nope"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"Error: cannot tell the catalog format of {str(out)!r} from its suffix '.xyz'; "
        "use one of .fits, .fit, .hdf5, .h5, .parquet, .ecsv, .csv"
    ]
    assert not out.exists()


def test_closed_stdout_ends_quietly(micro_model, cutout_dir, tmp_path):
    """``classify ... | head -1``: the reader leaves; no traceback, no error status 1."""
    out = tmp_path / "out.fits"
    args = ["classify", str(cutout_dir), "-o", str(out), "--model", str(micro_model)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "galaxalign_astro", *args, "--workers", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before the summary is printed, whatever the timing
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 141, stderr
    assert stderr == ""
    assert len(Table.read(out)) == 5


def test_missing_model_is_1(cutout_dir, tmp_path):
    res = CliRunner().invoke(
        cli, ["classify", str(cutout_dir), "-o", str(tmp_path / "o.fits"), "--model", "nope"]
    )
    assert res.exit_code == 1
    assert "model 'nope' not found" in res.output
    assert not (tmp_path / "o.fits").exists()


def test_fits_output_passes_fitsverify(micro_model, cutout_dir, tmp_path):
    import os
    import shutil

    import pytest

    out = tmp_path / "v.fits"
    res = CliRunner().invoke(
        cli,
        [
            "classify",
            str(cutout_dir),
            "-o",
            str(out),
            "--model",
            str(micro_model),
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 0
    if shutil.which("fitsverify") is None:
        if os.environ.get("CI"):
            pytest.fail("fitsverify is not installed in CI")
        pytest.skip("fitsverify not installed")
    proc = subprocess.run(["fitsverify", "-q", str(out)], capture_output=True, text=True)
    assert "0 error" in proc.stdout + proc.stderr or proc.returncode == 0, proc.stdout
    header = Table.read(out).meta
    assert any("SHA" in k for k in header) or "galaxalign" in str(header).lower()
    assert np.isfinite(Table.read(out)["class_prob"]).all()
