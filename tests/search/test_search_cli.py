"""``index`` and ``search`` commands: outputs, refusals and exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner
from PIL import Image

import galaxalign_astro
from galaxalign_astro.catalog import write_table
from galaxalign_astro.cli.index import command as index_command
from galaxalign_astro.cli.search import command as search_command
from galaxalign_astro.inference import classify_to_file
from galaxalign_astro.search import EmbeddingIndex
from galaxalign_astro.search.montage import montage_size

SAMPLES = Path(galaxalign_astro.__file__).parent / "data" / "samples"


@pytest.fixture(scope="module")
def catalog(micro_model, tmp_path_factory):
    """The ten simulated sample galaxies classified by the micro model."""
    folder = tmp_path_factory.mktemp("samples")
    for path in sorted(SAMPLES.glob("sim_*.fits")):
        shutil.copy(path, folder)
    out = folder / "catalog.fits"
    classify_to_file([folder], out, model=micro_model, workers=0)
    return out


@pytest.fixture(scope="module")
def built(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "galaxies.index"
    result = CliRunner().invoke(index_command, [str(catalog), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def other_model(micro_model, tmp_path_factory):
    """The micro model with one weight changed: same name, different weights sha256."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("other") / "micro"
    shutil.copytree(micro_model, out)
    tensors = load_file(str(out / "model.safetensors"))
    key = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[key] = tensors[key] + 0.01
    save_file(tensors, str(out / "model.safetensors"))
    return out


def run(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args])


def test_index_from_catalog(built, catalog):
    assert (built / "index.json").is_file() and (built / "search.json").is_file()
    index = EmbeddingIndex.load(built)
    assert len(index) == 10 and index.kind == "exact" and index.model_name == "micro-test"
    again = run(index_command, catalog, "-o", built)
    assert again.exit_code == 1
    assert "already holds an index" in again.output
    assert len(again.output.strip().splitlines()) == 1


def test_search_by_row_writes_results(built, catalog, tmp_path):
    out = tmp_path / "res.ecsv"
    result = run(search_command, built, "--row", 6, "-k", 4, "-o", out)
    assert result.exit_code == 0, result.output
    table = Table.read(out)
    assert table.colnames[:3] == ["rank", "row", "score"]
    assert {"source", "ra", "dec", "class_name"} <= set(table.colnames)
    assert table["row"][0] == 6 and table["score"][0] == pytest.approx(1.0, abs=1e-5)
    assert table["source"][0] == Table.read(catalog)["source"][6]
    printed = run(search_command, built, "--row", 6, "-k", 2)
    assert printed.exit_code == 0 and "rank" in printed.output
    missing = run(search_command, built, "--row", 99)
    assert missing.exit_code == 1 and "row 99 is not in the index" in missing.output


def test_search_without_output_prints_the_table_even_when_quiet(built, catalog):
    for quiet in ([], ["-q"]):
        printed = run(search_command, built, "--row", 6, "-k", 3, *quiet)
        assert printed.exit_code == 0, printed.output
        lines = printed.stdout.strip().splitlines()
        assert lines[0].split()[:3] == ["rank", "row", "score"]
        neighbours = [line.split() for line in lines if line.split()[0].isdigit()]
        assert len(neighbours) == 3 and neighbours[0][:2] == ["1", "6"]


def test_search_by_text_with_montage(built, tmp_path):
    png = tmp_path / "m.png"
    result = run(search_command, built, "--text", "an edge-on disk", "-k", 5, "--montage", png)
    assert result.exit_code == 0, result.output
    with Image.open(png) as img:
        assert img.size == montage_size(6, ncols=6, panel_px=128, title=True)
    refused = run(search_command, built, "--text", "an edge-on disk", "--montage", png)
    assert refused.exit_code == 1 and "exists" in refused.output


def test_search_by_symbol_family_and_drawing(built, tmp_path):
    family = run(search_command, built, "--symbol", "merging", "-k", 3, "-o", tmp_path / "a.csv")
    assert family.exit_code == 0, family.output
    assert len(Table.read(tmp_path / "a.csv")) == 3
    drawing = np.full((120, 90), 250, dtype=np.uint8)
    drawing[40:80, 20:70] = 10  # a dark blob on white paper
    Image.fromarray(drawing).save(tmp_path / "sketch.png")
    sketch = run(search_command, built, "--symbol", tmp_path / "sketch.png", "-k", 3)
    assert sketch.exit_code == 0, sketch.output
    unknown = run(search_command, built, "--symbol", "no_such_shape")
    assert unknown.exit_code == 1 and "neither a built-in symbol family" in unknown.output


def test_search_usage_errors(built):
    assert run(search_command, built).exit_code == 2
    assert run(search_command, built, "--row", 1, "--text", "x").exit_code == 2


def test_search_refuses_another_model(built, other_model, catalog):
    result = run(search_command, built, "--text", "a spiral", "--model", other_model)
    assert result.exit_code == 1
    assert "weights sha256" in result.output and len(result.output.strip().splitlines()) == 1
    not_a_model = run(search_command, built, "--text", "a spiral", "--model", catalog.parent)
    assert not_a_model.exit_code == 1 and "not found" in not_a_model.output


def test_index_add_grown_catalog(catalog, tmp_path):
    table = Table.read(catalog, mask_invalid=False)
    table.meta.pop("EXTNAME", None)
    grown = tmp_path / "grown.parquet"
    write_table(table[:4], grown)
    out = tmp_path / "idx"
    assert run(index_command, grown, "-o", out).exit_code == 0
    write_table(table, grown, overwrite=True)
    result = run(index_command, grown, "-o", out, "--add")
    assert result.exit_code == 0, result.output
    assert "Added 6 rows to 4" in result.output
    assert len(EmbeddingIndex.load(out)) == 10
    hit = run(search_command, out, "--row", 8, "-k", 1, "-o", tmp_path / "r.fits")
    assert hit.exit_code == 0 and Table.read(tmp_path / "r.fits")["row"][0] == 8


def test_index_from_cutouts_and_add(micro_model, other_model, cutout_dir, tmp_path):
    out = tmp_path / "idx"
    first = sorted(cutout_dir.glob("*.fits"))[:3]
    result = run(index_command, "--cutouts", *first, "-o", out, "--model", micro_model)
    assert result.exit_code == 0, result.output
    assert (out / "catalog.fits").is_file() and len(EmbeddingIndex.load(out)) == 3
    # the model is taken from the index; files already indexed are skipped
    added = run(index_command, "--cutouts", cutout_dir, "-o", out, "--add")
    assert added.exit_code == 0, added.output
    assert len(EmbeddingIndex.load(out)) == 5 and len(Table.read(out / "catalog.fits")) == 5
    hit = run(search_command, out, "--row", 4, "-k", 5, "-o", tmp_path / "r.ecsv")
    assert hit.exit_code == 0 and len(Table.read(tmp_path / "r.ecsv")) == 5
    refused = run(
        index_command, "--cutouts", tmp_path / "new", "-o", out, "--add", "--model", other_model
    )
    assert refused.exit_code == 1 and "build a separate index" in refused.output


def test_unsupported_output_suffix_is_a_usage_error(built, tmp_path):
    result = run(search_command, built, "--row", 0, "-o", tmp_path / "r.xyz")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: cannot tell the catalog format of {str(tmp_path / 'r.xyz')!r} from its suffix "
        "'.xyz'; use one of .fits, .fit, .hdf5, .h5, .parquet, .ecsv, .csv"
    ]


def test_index_cutouts_recursive(micro_model, cutout_dir, tmp_path):
    nested = cutout_dir / "night2"
    nested.mkdir()
    shutil.move(cutout_dir / "g0.fits", nested / "g0.fits")
    out = tmp_path / "idx"
    flat = run(index_command, "--cutouts", cutout_dir, "-o", out, "--model", micro_model)
    assert flat.exit_code == 0, flat.output
    assert len(EmbeddingIndex.load(out)) == 4
    deep = run(
        index_command,
        "--cutouts",
        cutout_dir,
        "--recursive",
        "-o",
        out,
        "--model",
        micro_model,
        "--overwrite",
    )
    assert deep.exit_code == 0, deep.output
    assert len(EmbeddingIndex.load(out)) == 5


def test_index_partial_failure_exit_code(micro_model, cutout_dir, tmp_path):
    (cutout_dir / "broken.fits").write_bytes(b"not a fits file")
    out = tmp_path / "i"
    result = run(index_command, "--cutouts", cutout_dir, "-o", out, "--model", micro_model)
    assert result.exit_code == 3
    assert len(EmbeddingIndex.load(out)) == 5
