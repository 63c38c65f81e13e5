"""The fixed splits and few-shot subsets: deterministic, stratified, as documented."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from galaxalign_astro.datasets.splits import (
    few_shot_indices,
    galaxy10_split,
    hash_order,
    indices_sha256,
    read_index_file,
    shipped_split_spec,
    split_counts,
    stratified_split,
    write_index_file,
)

GALAXY10_COUNTS = [1081, 1853, 2645, 2027, 334, 2043, 1829, 2628, 1423, 1873]


def published_like_labels(seed: int = 0) -> np.ndarray:
    """Labels with the published Galaxy10 class counts, in a shuffled order."""
    labels = np.repeat(np.arange(10), GALAXY10_COUNTS)
    return np.random.default_rng(seed).permutation(labels)


def test_hash_order_is_the_documented_sha256_order():
    rows = np.array([5, 17, 2, 40, 9])
    expected = sorted(rows, key=lambda i: hashlib.sha256(f"x:3:{i}".encode()).digest())
    assert hash_order(rows, name="x", seed=3).tolist() == [int(i) for i in expected]


def test_galaxy10_split_per_class_counts_and_partition():
    labels = published_like_labels()
    train, test = galaxy10_split(labels)
    assert len(test) == 1773
    assert np.bincount(labels[test]).tolist() == [108, 185, 265, 203, 33, 204, 183, 263, 142, 187]
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.union1d(train, test), np.arange(len(labels)))
    assert np.all(np.diff(test) > 0)


def test_galaxy10_split_is_deterministic_and_seeded():
    labels = published_like_labels()
    a = galaxy10_split(labels)[1]
    assert np.array_equal(a, galaxy10_split(labels.copy())[1])
    assert not np.array_equal(a, galaxy10_split(labels, seed=43)[1])


def test_shipped_spec_agrees_with_the_algorithm():
    spec = shipped_split_spec("galaxy10_decals")
    counts = split_counts(spec["class_counts"], spec["test_fraction"])
    assert list(counts.values()) == spec["test_counts"]
    assert sum(spec["test_counts"]) == spec["n_test"]
    assert sum(spec["class_counts"]) == spec["n_images"]
    with pytest.raises(ValueError, match="no shipped split"):
        shipped_split_spec("nope")


def test_rounding_is_half_up_per_class():
    labels = np.repeat([0, 1], [25, 15])  # 2.5 -> 3 and 1.5 -> 2 at 10 %
    _, test = stratified_split(labels, 0.1, seed=0, name="t")
    assert np.bincount(labels[test]).tolist() == [3, 2]


def test_few_shot_is_stratified_nested_and_keeps_every_class():
    labels = published_like_labels()
    one = few_shot_indices(labels, 0.01)
    ten = few_shot_indices(labels, 0.1)
    assert np.all(np.isin(one, ten))
    assert np.bincount(labels[one], minlength=10).min() >= 1
    assert np.bincount(labels[one])[4] == 3  # 334 * 1 % = 3.34 -> 3
    assert np.array_equal(few_shot_indices(labels, 1.0), np.arange(len(labels)))
    rare = np.array([0] * 50 + [1])
    assert 50 in few_shot_indices(rare, 0.01)  # a class of one keeps its image


def test_few_shot_hashes_source_ids_so_subsets_do_not_depend_on_storage():
    labels = published_like_labels()
    train, _ = galaxy10_split(labels)
    subset = train[few_shot_indices(labels[train], 0.1, ids=train)]
    shuffled = np.random.default_rng(1).permutation(train)
    again = shuffled[few_shot_indices(labels[shuffled], 0.1, ids=shuffled)]
    assert np.array_equal(np.sort(again), subset)


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1])
def test_few_shot_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="label fraction"):
        few_shot_indices(np.array([0, 1]), fraction)


def test_index_file_round_trip_and_hash_of_its_body(tmp_path):
    indices = np.array([3, 10, 11, 400])
    path = tmp_path / "test.txt"
    write_index_file(path, indices, header={"seed": 42, "name": "galaxy10_decals"})
    read, header = read_index_file(path)
    assert np.array_equal(read, indices)
    assert header == {"seed": 42, "name": "galaxy10_decals"}
    body = "".join(line for line in path.read_text().splitlines(True) if not line.startswith("#"))
    assert indices_sha256(indices) == hashlib.sha256(body.encode()).hexdigest()
