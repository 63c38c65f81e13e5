"""Label catalogs: fine and coarse labels, splits, per-row columns, FITS/PNG/JPEG files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from galaxalign_astro.datasets import DatasetError, load_dataset, read_label_catalog
from galaxalign_astro.preprocess import PreprocessConfig
from galaxalign_astro.taxonomy import GALAXY10_DECALS
from tests.cutout_factory import galaxy_cube, write_cube

CONFIG = PreprocessConfig(size=32)
N_CLASSES = len(GALAXY10_DECALS)


def blob_rgb(size: int, radius: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    blob = np.exp(-0.5 * (x**2 + y**2) / radius**2)
    rgb = np.stack([blob * 0.9, blob * 0.7, blob * 0.5], axis=-1) + rng.uniform(
        0, 0.02, (size, size, 3)
    )
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def catalog(tmp_path):
    """Six labelled rows (JPEG, PNG, FITS), one unlabelled row, train/val splits."""
    (tmp_path / "img").mkdir()
    rows = [
        ("img/a.jpg", "train", "spiral", "", "gz1"),
        ("img/b.png", "train", "smooth", "Round Smooth", "gz2"),
        ("img/c.fits", "train", "", "Edge-on with Bulge", "mine"),
        ("img/d.jpg", "val", "merger-irregular", "", "gz1"),
        ("img/e.jpg", "val", "edge-on", "", "gz2"),
        ("img/f.png", "train", "", "barred_spiral", "gz1"),
        ("img/g.jpg", "unlabelled", "", "", "gz1"),
    ]
    for i, (name, *_rest) in enumerate(rows):
        path = tmp_path / name
        if name.endswith(".fits"):
            write_cube(path, galaxy_cube(48, seed=i))
        else:
            Image.fromarray(blob_rgb(60, 6 + i, i)).save(path)
    lines = ["file,split,coarse,galaxy10,source"]
    lines += [",".join(r) for r in rows]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "labels.csv"


def test_rows_become_class_or_coarse_group_labels(catalog):
    rows = read_label_catalog(catalog)
    smooth, spiral = GALAXY10_DECALS.group_label("smooth"), GALAXY10_DECALS.group_label("spiral")
    assert spiral == N_CLASSES + 1 and smooth == N_CLASSES
    assert rows.labels.tolist() == [
        spiral,
        GALAXY10_DECALS.class_label("Round Smooth"),
        GALAXY10_DECALS.class_label("edge_on_bulge"),
        GALAXY10_DECALS.group_label("merger_irregular"),
        GALAXY10_DECALS.group_label("edge-on"),
        5,
        -1,
    ]
    assert rows.splits.tolist()[-1] == "unlabelled"
    assert rows.info["source"].tolist()[:3] == ["gz1", "gz2", "mine"]


def test_load_dataset_reads_each_split_of_mixed_files(catalog):
    train = load_dataset(catalog, CONFIG, split="train")
    val = load_dataset(catalog, CONFIG, split="val")
    assert train.images.shape == (4, 3, 32, 32) and train.images.dtype == np.uint8
    assert len(val) == 2
    assert val.info["file"].tolist() == ["img/d.jpg", "img/e.jpg"]
    assert train.source["n_coarse_only"] == 1 and val.source["n_coarse_only"] == 2
    assert train.taxonomy is GALAXY10_DECALS
    # the unlabelled row is in no labelled split
    everything = load_dataset(catalog, CONFIG, split="all")
    assert len(everything) == 6


def test_unreadable_file_is_dropped_with_its_name(catalog, caplog):
    (catalog.parent / "img" / "a.jpg").write_bytes(b"not an image")
    train = load_dataset(catalog, CONFIG, split="train")
    assert len(train) == 3
    assert "a.jpg" in caplog.text
    assert train.info["file"].tolist() == ["img/b.png", "img/c.fits", "img/f.png"]


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("galaxy10", "Spiral-ish", "row 0: 'Spiral-ish' is not a galaxy10_decals class"),
        ("coarse", "blob", "row 0: 'blob' is not a coarse group"),
        ("galaxy10", "12", "class index 12 outside"),
    ],
)
def test_bad_labels_are_one_line_errors_naming_the_catalog(tmp_path, column, value, match):
    path = tmp_path / "labels.csv"
    coarse, fine = ("blob", "") if column == "coarse" else ("", value)
    path.write_text(f"file,coarse,galaxy10\nx.jpg,{coarse},{fine}\n")
    with pytest.raises(DatasetError, match=match) as info:
        read_label_catalog(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_fine_label_outside_its_coarse_group_is_refused(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,coarse,galaxy10\nx.jpg,smooth,Barred Spiral\n")
    with pytest.raises(DatasetError, match="not in coarse group 'smooth'"):
        read_label_catalog(path)


def test_no_label_column_and_no_val_split_are_clear_errors(tmp_path, catalog):
    path = tmp_path / "nolabel.csv"
    path.write_text("file,source\nx.jpg,a\n")
    with pytest.raises(DatasetError, match="no label column"):
        read_label_catalog(path)
    plain = tmp_path / "plain.csv"
    plain.write_text("file,galaxy10\nimg/b.png,Round Smooth\n")
    with pytest.raises(DatasetError, match="no 'val' split"):
        load_dataset(plain, CONFIG, split="val")
