"""2-D embedding maps: the projection, the image and the ``plot embeddings`` command."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner
from PIL import Image

import galaxalign_astro
from galaxalign_astro.catalog import write_table
from galaxalign_astro.cli.plot import command as plot_command
from galaxalign_astro.search import embedding_map, project_embeddings

SAMPLES = Path(galaxalign_astro.__file__).parent / "data" / "samples"
HAVE_UMAP = importlib.util.find_spec("umap") is not None


@pytest.fixture
def catalog(tmp_path):
    """A classify-like catalog: 60 embeddings in three classes, sources = sample cutouts."""
    rng = np.random.default_rng(0)
    files = sorted(SAMPLES.glob("sim_*.fits"))[:3]
    for f in files:
        shutil.copy(f, tmp_path)
    names = ["Round Smooth", "Barred Spiral", "Merging"]
    centres = rng.normal(size=(3, 32))
    labels = np.repeat(np.arange(3), 20)
    emb = centres[labels] + 0.2 * rng.normal(size=(60, 32))
    emb[5] = np.nan  # a failed row
    table = Table(
        {
            "source": [files[i].name for i in labels],  # relative to the catalog's folder
            "class_name": [names[i] for i in labels],
            "embedding": emb.astype(np.float32),
        },
        meta={"galaxalign": {"model_name": "m", "class_names": names}},
    )
    path = tmp_path / "cat.fits"
    write_table(table, path)
    return path


def test_pca_projection_separates_clusters():
    rng = np.random.default_rng(2)
    a = rng.normal(size=32)
    x = np.concatenate([a + 0.1 * rng.normal(size=(30, 32)), -a + 0.1 * rng.normal(size=(30, 32))])
    coords, method = project_embeddings(x, method="pca")
    assert coords.shape == (60, 2) and method.startswith("PCA")
    gap = abs(coords[:30, 0].mean() - coords[30:, 0].mean())
    assert gap > 5 * max(coords[:30, 0].std(), coords[30:, 0].std())
    with pytest.raises(ValueError, match="at least 3"):
        project_embeddings(x[:2])


@pytest.mark.skipif(not HAVE_UMAP, reason="umap-learn is not installed")
def test_umap_projection_separates_clusters(recwarn):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=32), rng.normal(size=32)
    x = np.concatenate([a + 0.1 * rng.normal(size=(40, 32)), b + 0.1 * rng.normal(size=(40, 32))])
    coords, method = project_embeddings(x, method="auto", seed=1)
    assert coords.shape == (80, 2) and method == "UMAP (cosine)"
    # every point is nearer its own cluster's centre than the other one's
    centres = np.stack([coords[:40].mean(axis=0), coords[40:].mean(axis=0)])
    nearest = np.argmin(np.linalg.norm(coords[:, None] - centres[None], axis=2), axis=1)
    np.testing.assert_array_equal(nearest, np.repeat([0, 1], 40))
    # the same seed draws the same map, without warnings from umap-learn
    np.testing.assert_allclose(project_embeddings(x, method="umap", seed=1)[0], coords)
    assert not recwarn.list


def test_umap_without_umap_learn_is_a_clear_error(monkeypatch):
    from galaxalign_astro.search import embedmap

    monkeypatch.setattr(embedmap, "_umap_available", lambda: False)
    with pytest.raises(ValueError, match="umap-learn"):
        project_embeddings(np.eye(5), method="umap")
    assert project_embeddings(np.eye(5) + 0.1, method="auto")[1].startswith("PCA")


def test_embedding_map_png(catalog, tmp_path, caplog):
    out = tmp_path / "map.png"
    with caplog.at_level(logging.INFO, logger="galaxalign_astro.search.embedmap"):
        embedding_map(catalog, out, n_thumbnails=3, size_px=(800, 600))
    with Image.open(out) as img:
        assert img.size == (800, 600)
    assert "embedding map of 59 rows" in caplog.text  # the failed row is left out
    assert "placed 3 thumbnails" in caplog.text  # found beside the catalog
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="galaxalign_astro.search.embedmap"):
        embedding_map(Table.read(catalog), tmp_path / "sub.png", max_points=10, n_thumbnails=0)
    assert "embedding map of 10 rows" in caplog.text


def test_plot_embeddings_command(catalog, tmp_path):
    out = tmp_path / "map.png"
    runner = CliRunner()
    result = runner.invoke(plot_command, ["embeddings", str(catalog), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    again = runner.invoke(plot_command, ["embeddings", str(catalog), "-o", str(out)])
    assert again.exit_code == 1 and "exists" in again.output
    bad = runner.invoke(
        plot_command, ["embeddings", str(catalog), "-o", str(out), "--embedding-col", "x"]
    )
    assert bad.exit_code == 1 and "no column 'x'" in bad.output


def test_thumbnails_of_a_moved_catalog_warn_and_base_dir_finds_them(catalog, tmp_path, caplog):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(catalog, moved / "cat.fits")  # its relative sources now point nowhere
    with caplog.at_level(logging.INFO, logger="galaxalign_astro.search"):
        embedding_map(moved / "cat.fits", tmp_path / "a.png", n_thumbnails=3)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not be drawn" in warnings[0].getMessage()
    assert "--base-dir" in warnings[0].getMessage()
    caplog.clear()
    result = CliRunner().invoke(
        plot_command,
        [
            "embeddings",
            str(moved / "cat.fits"),
            "-o",
            str(tmp_path / "b.png"),
            "--base-dir",
            str(tmp_path),
            "--thumbnails",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "could not be drawn" not in result.output
