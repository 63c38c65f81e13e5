"""Deterministic train/test splits and few-shot subsets defined on a label array.

Every split here is a pure function of the labels and a seed, built on a
hash ordering instead of a random-number generator, so that it is the same on
every machine, every numpy version and in any language that has SHA-256:

*hash order* (ours)
    The rank of row ``i`` under ``(name, seed)`` is the SHA-256 digest of the
    ASCII text ``f"{name}:{seed}:{i}"``; rows are ordered by increasing digest
    (bytes compared big-endian).

*stratified split* (ours)
    For every class ``c`` (increasing label value) with ``n_c`` rows, the
    ``n_test_c = floor(n_c * f + 1/2)`` rows first in hash order are the test
    set (``f`` read as a decimal, so 2645 rows at f = 0.1 give 265); the rest
    are the training set. Both index lists are returned sorted.

*few-shot subset* (ours)
    For every class, the ``max(1, floor(n_c * f + 1/2))`` rows first in hash
    order (under the name ``"fewshot"``). Subsets at smaller fractions are
    contained in those at larger ones, so a 1 % run sees a subset of the 10 %
    run's labels.

The index list of a split is identified by :func:`indices_sha256`, the SHA-256
of its text form (one decimal index per line, ``\\n``-terminated), which is the
body of the files written by :func:`write_index_file`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "few_shot_indices",
    "galaxy10_split",
    "hash_order",
    "indices_sha256",
    "labels_sha256",
    "read_index_file",
    "shipped_split_spec",
    "split_counts",
    "stratified_split",
    "write_index_file",
]

GALAXY10_SPLIT_NAME = "galaxy10_decals"
FEW_SHOT_NAME = "fewshot"


def _as_fraction(value: float, what: str) -> Fraction:
    if not 0.0 <= value <= 1.0:
        msg = f"{what} must be in [0, 1], got {value}"
        raise ValueError(msg)
    return Fraction(str(value))


def _rounded(n: int, fraction: Fraction) -> int:
    return math.floor(n * fraction + Fraction(1, 2))


def hash_order(indices: np.ndarray, *, name: str, seed: int) -> np.ndarray:
    """``indices`` sorted by the SHA-256 of ``f"{name}:{seed}:{i}"`` (see the module doc)."""
    indices = np.asarray(indices, dtype=np.int64)
    keys = [hashlib.sha256(f"{name}:{seed}:{int(i)}".encode("ascii")).digest() for i in indices]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return indices[np.asarray(order, dtype=np.int64)] if order else indices


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        msg = f"labels must be one-dimensional, got shape {labels.shape}"
        raise ValueError(msg)
    return labels


def split_counts(class_counts: dict[int, int] | list[int], test_fraction: float) -> dict[int, int]:
    """Test rows per class that :func:`stratified_split` takes from these class sizes."""
    frac = _as_fraction(test_fraction, "test fraction")
    items = class_counts.items() if isinstance(class_counts, dict) else enumerate(class_counts)
    return {int(c): _rounded(int(n), frac) for c, n in items}


def stratified_split(
    labels: np.ndarray, test_fraction: float, *, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices of a stratified hash split (see the module doc).

    Parameters
    ----------
    labels : ndarray
        One class label per row.
    test_fraction : float
        Fraction of every class put in the test set (rounded half up per class).
    seed : int
    name : str
        Salt of the hash order, so different data sets get unrelated splits.
    """
    labels = _check_labels(labels)
    frac = _as_fraction(test_fraction, "test fraction")
    train, test = [], []
    for value in np.unique(labels):
        members = hash_order(np.flatnonzero(labels == value), name=name, seed=seed)
        n_test = _rounded(len(members), frac)
        test.append(members[:n_test])
        train.append(members[n_test:])
    empty = np.zeros(0, dtype=np.int64)
    return (
        np.sort(np.concatenate(train)) if train else empty,
        np.sort(np.concatenate(test)) if test else empty,
    )


def galaxy10_split(labels: np.ndarray, *, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The Galaxy10 DECaLS split of this project: stratified 90/10, seed 42 (ours).

    ``labels`` is the file's ``ans`` array in file order; the result is (train,
    test) row indices into the file. On the published file (SHA-256 in
    :data:`~galaxalign_astro.datasets.galaxy10.GALAXY10_SHA256`) the test set has
    1,773 images: 108, 185, 265, 203, 33, 204, 183, 263, 142, 187 per class.
    """
    return stratified_split(labels, 0.1, seed=seed, name=GALAXY10_SPLIT_NAME)


def few_shot_indices(
    labels: np.ndarray, fraction: float, *, seed: int = 42, ids: np.ndarray | None = None
) -> np.ndarray:
    """Sorted positions of a stratified, nested few-shot subset (at least one per class).

    Parameters
    ----------
    labels : ndarray
    fraction : float
        In (0, 1]; 1 returns every position.
    seed : int
    ids : ndarray, optional
        Identifier of each position used in the hash order (default: the
        position). Passing the rows of the source file makes a subset of a
        split independent of how the split is stored.

    Returns
    -------
    ndarray
        Positions in ``labels``.
    """
    labels = _check_labels(labels)
    frac = _as_fraction(fraction, "label fraction")
    if frac == 0:
        msg = "label fraction must be above 0"
        raise ValueError(msg)
    if frac == 1:
        return np.arange(len(labels), dtype=np.int64)
    ids = np.arange(len(labels)) if ids is None else np.asarray(ids, dtype=np.int64)
    if ids.shape != labels.shape or len(np.unique(ids)) != len(ids):
        msg = "ids must be unique and give one identifier per label"
        raise ValueError(msg)
    position = {int(i): p for p, i in enumerate(ids)}
    keep = []
    for value in np.unique(labels):
        members = hash_order(ids[labels == value], name=FEW_SHOT_NAME, seed=seed)
        chosen = members[: max(1, _rounded(len(members), frac))]
        keep.append(np.array([position[int(i)] for i in chosen], dtype=np.int64))
    return np.sort(np.concatenate(keep))


def indices_sha256(indices: np.ndarray) -> str:
    """SHA-256 (hex) of the index list as text: one decimal index per line, each ending in LF."""
    text = "".join(f"{int(i)}\n" for i in np.asarray(indices).ravel())
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def labels_sha256(labels: np.ndarray) -> str:
    """SHA-256 (hex) of the labels as text (as :func:`indices_sha256`): names a label order."""
    return indices_sha256(labels)


def write_index_file(
    path: str | os.PathLike[str], indices: np.ndarray, *, header: dict[str, Any]
) -> None:
    """Write ``indices`` one per line after ``# key: value`` header lines, atomically."""
    path = Path(path)
    lines = [f"# {key}: {json.dumps(value)}\n" for key, value in header.items()]
    body = "".join(f"{int(i)}\n" for i in np.asarray(indices).ravel())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(lines) + body, encoding="ascii")
    os.replace(tmp, path)


def read_index_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices and header of a file written by :func:`write_index_file`."""
    header: dict[str, Any] = {}
    values: list[int] = []
    for number, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), 1):
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            try:
                header[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                header[key.strip()] = value.strip()
        elif line.strip():
            try:
                values.append(int(line))
            except ValueError:
                msg = f"{path}:{number}: not an index: {line!r}"
                raise ValueError(msg) from None
    return np.asarray(values, dtype=np.int64), header


def shipped_split_spec(name: str) -> dict[str, Any]:
    """The split description shipped in ``galaxalign_astro/data/splits/<name>.json``."""
    folder = resources.files("galaxalign_astro") / "data" / "splits"
    target = folder / f"{name}.json"
    if not target.is_file():
        known = sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.is_file())
        msg = f"no shipped split {name!r}; known: {', '.join(known)}"
        raise ValueError(msg)
    return json.loads(target.read_text())
