"""Galaxy10 DECaLS and GalaxyMNIST readers, and load_dataset for every kind of spec."""

from __future__ import annotations

import hashlib
import logging

import h5py
import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from galaxalign_astro.datasets import (
    DatasetError,
    Galaxy10DECaLS,
    GalaxyMNIST,
    galaxy10_split,
    identify_dataset,
    load_dataset,
    verify_sha256,
)
from galaxalign_astro.datasets.splits import indices_sha256, read_index_file
from galaxalign_astro.errors import GalaxAlignWarning
from galaxalign_astro.io import read_cutout
from galaxalign_astro.preprocess import PreprocessConfig, prepare
from galaxalign_astro.taxonomy import GALAXY10_DECALS, GALAXY_MNIST
from galaxalign_astro.train.data import to_uint8
from tests.datasets.h5_factory import composite, write_galaxy10, write_mnist, write_mnist_pair

PRE = PreprocessConfig(size=32)


@pytest.fixture(scope="module")
def galaxy10(tmp_path_factory):
    path = tmp_path_factory.mktemp("g10") / "Galaxy10_DECals.h5"
    labels = write_galaxy10(path)
    return path, labels


def test_galaxy10_reader_reads_layout_and_columns(galaxy10):
    path, labels = galaxy10
    reader = Galaxy10DECaLS(path)
    assert len(reader) == 60
    assert reader.image_shape == (256, 256)
    assert reader.taxonomy is GALAXY10_DECALS
    assert np.array_equal(reader.labels, labels)
    assert reader.labels.dtype == np.int64
    assert reader.column("pxscale").dtype == np.float32  # stored dtype kept
    assert np.isnan(reader.column("redshift")[0])


def test_test_split_is_galaxy10_split_of_ans_and_written_beside_the_data(galaxy10):
    path, labels = galaxy10
    data = load_dataset(path, PRE, split="test")
    _, test = galaxy10_split(labels)
    assert np.array_equal(data.indices, test)
    assert np.array_equal(data.labels, labels[test])
    assert data.images.shape == (10, 3, 32, 32) and data.images.dtype == np.uint8
    index_file = path.with_name("Galaxy10_DECals.test_indices.seed42.txt")
    stored, header = read_index_file(index_file)
    assert np.array_equal(stored, test)
    assert header["test_indices_sha256"] == indices_sha256(test) == data.source["indices_sha256"]
    train = load_dataset(path, PRE, split="train")
    assert len(np.intersect1d(train.indices, data.indices)) == 0
    assert len(train) + len(data) == 60


def test_a_changed_index_file_is_reported_and_the_recomputed_split_used(tmp_path):
    path = tmp_path / "Galaxy10_DECals.h5"
    labels = write_galaxy10(path, size=64)
    index_file = path.with_name("Galaxy10_DECals.test_indices.seed42.txt")
    index_file.write_text("0\n1\n2\n")
    with pytest.warns(GalaxAlignWarning, match="differ from the split recomputed"):
        data = load_dataset(path, PRE, split="test")
    assert np.array_equal(data.indices, galaxy10_split(labels)[1])


def test_images_are_prepared_exactly_like_a_png_of_the_same_composite(galaxy10, tmp_path):
    path, labels = galaxy10
    data = load_dataset(path, PreprocessConfig(size=48), split="all")
    png = tmp_path / "g.png"
    Image.fromarray(composite(int(labels[5]), 256, 5)).save(png)
    expected = to_uint8(prepare(read_cutout(png), PreprocessConfig(size=48)).image)
    assert np.array_equal(data.images[5], expected)


def test_chunked_and_parallel_reading_give_the_same_images(galaxy10):
    path, _ = galaxy10
    reader = Galaxy10DECaLS(path)
    rows = np.array([3, 4, 5, 6, 30, 59])
    one = reader.prepare(PRE, indices=rows)
    small = reader.prepare(PRE, indices=rows[::-1], block=2)
    parallel = reader.prepare(PRE, indices=rows, workers=2, block=2)
    for other in (small, parallel):
        for a, b in zip(one, other, strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("ans_dtype", ["uint8", "int16", "int64", "float32"])
def test_label_dtypes_are_read_from_the_file(tmp_path, ans_dtype):
    path = tmp_path / "g.h5"
    labels = write_galaxy10(path, n=20, size=32, ans_dtype=ans_dtype)
    assert np.array_equal(Galaxy10DECaLS(path).labels, labels)


def test_channel_first_images_are_understood(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_galaxy10(a, n=20, size=32)
    write_galaxy10(b, n=20, size=32, layout="nchw")
    assert Galaxy10DECaLS(b).layout == "nchw"
    assert np.array_equal(
        load_dataset(a, PRE, split="all").images, load_dataset(b, PRE, split="all").images
    )


def test_sha256_is_checked_when_asked(galaxy10):
    path, _ = galaxy10
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert verify_sha256(path, digest.upper()) == digest
    with pytest.raises(DatasetError, match="does not match"):
        Galaxy10DECaLS(path, verify=True)
    with pytest.raises(DatasetError, match="does not match"):
        load_dataset(path, PRE, split="test", verify=True)


def test_label_fraction_keeps_every_class_of_the_train_split(galaxy10):
    path, _ = galaxy10
    full = load_dataset(path, PRE, split="train")
    few = load_dataset(path, PRE, split="train", label_fraction=0.01)
    assert np.bincount(few.labels, minlength=10).tolist() == [1] * 10
    assert np.all(np.isin(few.indices, full.indices))
    assert few.source["label_fraction"] == 0.01


def test_broken_files_are_reported_by_name(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as fh:
        fh["images"] = np.zeros((3, 8, 8, 3), np.uint8)
        fh["ans"] = np.array([0, 1, 12])
    with pytest.raises(DatasetError, match=r"bad\.h5: label 12 outside 0\.\.9"):
        Galaxy10DECaLS(path).labels  # noqa: B018
    with h5py.File(path, "w") as fh:
        fh["images"] = np.zeros((3, 8, 8, 3), np.uint8)
        fh["ans"] = np.array([0, 1.5, np.nan])
    with pytest.raises(DatasetError, match="non-integer"):
        Galaxy10DECaLS(path).labels  # noqa: B018
    with h5py.File(path, "w") as fh:
        fh["images"] = np.zeros((3, 8, 8), np.uint8)
        fh["ans"] = np.array([0, 1, 2])
    with pytest.raises(DatasetError, match="expected"):
        Galaxy10DECaLS(path)
    with pytest.raises(DatasetError, match="no dataset 'labels'"):
        GalaxyMNIST(path)


def test_galaxy_mnist_canonical_halves(tmp_path):
    folder = write_mnist_pair(tmp_path / "mnist")
    test = load_dataset(folder / "train_dataset.hdf5", PRE, split="test")
    assert len(test) == 8 and test.source["canonical_split"] is True
    assert test.source["path"].endswith("test_dataset.hdf5")
    assert test.taxonomy is GALAXY_MNIST
    with h5py.File(folder / "test_dataset.hdf5") as fh:
        assert np.array_equal(test.labels, fh["labels"][()])
    train = load_dataset(folder, PRE, split="train")
    assert len(train) == 24
    both = load_dataset(folder, PRE, split="all")
    assert len(both) == 32
    assert np.array_equal(both.images[24:], test.images)
    assert np.array_equal(both.indices, np.arange(32))


def test_galaxy_mnist_missing_half_and_single_file(tmp_path, caplog):
    lone = tmp_path / "test_dataset.hdf5"
    write_mnist(lone, n=8)
    with pytest.raises(DatasetError, match="train half"):
        load_dataset(lone, PRE, split="train")
    whole = tmp_path / "galaxy_mnist_all.hdf5"
    write_mnist(whole, n=40)
    with caplog.at_level(logging.WARNING):
        test = load_dataset(whole, PRE, split="test")
    assert "not the canonical" in caplog.text
    assert np.bincount(test.labels).tolist() == [2, 2, 2, 2]  # 20 % of 10 per class
    assert test.source["canonical_split"] is False


def test_identify_dataset(galaxy10, tmp_path):
    path, _ = galaxy10
    assert identify_dataset(path) == "galaxy10_decals"
    assert identify_dataset(path.parent) == "galaxy10_decals"
    assert identify_dataset(write_mnist_pair(tmp_path / "m")) == "galaxy_mnist"
    assert identify_dataset("simulated:20:1") == "simulated"
    Table({"path": ["a.png"], "label": [0]}).write(tmp_path / "c.ecsv")
    assert identify_dataset(tmp_path / "c.ecsv") == "catalog"
    with pytest.raises(DatasetError, match="no such file"):
        identify_dataset(tmp_path / "missing.h5")


def test_catalog_with_and_without_split_column(tmp_path):
    paths, labels = [], []
    for i in range(20):
        Image.fromarray(composite(i % 2, 64, i)).save(tmp_path / f"g{i}.png")
        paths.append(f"g{i}.png")
        labels.append(i % 2)
    split = ["test" if i < 4 else "train" for i in range(20)]
    Table({"path": paths, "label": labels, "split": split}).write(tmp_path / "s.ecsv")
    test = load_dataset(tmp_path / "s.ecsv", PRE, split="test")
    assert test.indices.tolist() == [0, 1, 2, 3]
    assert test.source["split_from"] == "column 'split'"
    Table({"path": paths, "label": labels}).write(tmp_path / "n.csv")
    hashed = load_dataset(tmp_path / "n.csv", PRE, split="test")
    assert np.bincount(hashed.labels).tolist() == [1, 1]  # 10 % of 10 per class
    assert hashed.taxonomy is None


def test_simulated_split_simulates_only_its_rows():
    test = load_dataset("simulated:50:3", PRE, split="test")
    assert len(test) == 10 and sorted(test.labels.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="simulated:N:SEED"):
        load_dataset("simulated:x", PRE)
    with pytest.raises(DatasetError, match="test split is empty"):
        load_dataset("simulated:20:3", PRE, split="test")


def test_unknown_split_is_refused(galaxy10):
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_dataset(galaxy10[0], PRE, split="val")


def _full_size_file(path, labels):
    with h5py.File(path, "w") as fh:
        fh["images"] = np.zeros((len(labels), 8, 8, 3), np.uint8)
        fh["ans"] = labels.astype(np.uint8)


def test_a_file_of_the_published_size_is_checked_against_the_shipped_split(tmp_path):
    counts = [1081, 1853, 2645, 2027, 334, 2043, 1829, 2628, 1423, 1873]
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), counts))
    _full_size_file(tmp_path / "ok.h5", labels)
    train, test, record = Galaxy10DECaLS(tmp_path / "ok.h5").split()
    assert len(test) == 1773 and len(train) == 15963
    assert record["test_indices_sha256"] == indices_sha256(test)
    labels[labels == 4] = 3  # class counts no longer the published ones
    _full_size_file(tmp_path / "bad.h5", labels)
    with pytest.warns(GalaxAlignWarning, match="class counts"):
        Galaxy10DECaLS(tmp_path / "bad.h5").split(write=False)
