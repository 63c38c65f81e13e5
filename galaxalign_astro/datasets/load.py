"""One entry point for evaluation and training data: :func:`load_dataset`.

A *spec* names the data:

``path/to/Galaxy10_DECals.h5``
    Galaxy10 DECaLS (an HDF5 file with ``images`` and ``ans``); split: ours,
    stratified 90/10 with seed 42 (:mod:`~galaxalign_astro.datasets.galaxy10`).
``path/to/train_dataset.hdf5``, ``test_dataset.hdf5`` or their folder
    GalaxyMNIST (``images`` and ``labels``); split: the two published files.
    Another file name means the whole set, split by our stratified 80/20 hash
    split (ours).
``labels.csv``, ``catalog.ecsv`` (or .fits, any astropy-readable table)
    A label catalog of FITS/PNG/JPEG cutouts with fine and/or coarse labels
    (:mod:`~galaxalign_astro.datasets.catalog`). A ``split`` column (``train``,
    ``val``, ``test``...) is used when present; otherwise our stratified 90/10
    hash split (ours).
``simulated:N:SEED``
    The first N cutouts of the simulator under SEED (labels are known before
    rendering, so only the rows of the split are simulated); split: stratified
    90/10 hash split (ours).

Every split is a pure function of the labels (:mod:`~galaxalign_astro.datasets.splits`);
``label_fraction`` then keeps a stratified, nested few-shot subset.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..preprocess.pipeline import PreprocessConfig
from ..taxonomy import GALAXY10_DECALS, GALAXY_MNIST, Taxonomy
from .catalog import read_label_catalog
from .galaxy10 import Galaxy10DECaLS
from .galaxy_mnist import GalaxyMNIST
from .hdf5 import DatasetError
from .prepared import LabelledImages, prepare_files
from .splits import few_shot_indices, indices_sha256, shipped_split_spec, stratified_split

__all__ = ["SPLITS", "DatasetImages", "concat_datasets", "identify_dataset", "load_dataset"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")
#: test fraction and hash salt of the splits that are ours (catalogs, simulation)
DEFAULT_TEST_FRACTION = 0.1


@dataclass
class DatasetImages(LabelledImages):
    """:class:`LabelledImages` that remember where they came from.

    Attributes
    ----------
    indices : ndarray or None
        Row of each image in its source (file row, catalog row, simulation
        index); None when unreadable catalog rows were dropped and rows are
        no longer known.
    taxonomy : Taxonomy or None
        Class set the labels index, when the source says.
    source : dict
        JSON-serialisable record: kind, path, split, seed, label fraction,
        SHA-256 of the index list...
    info : dict
        Per-image str arrays (a label catalog's ``file``, ``source``, ``survey``).
    """

    indices: np.ndarray | None = None
    taxonomy: Taxonomy | None = None
    source: dict[str, Any] = field(default_factory=dict)
    info: dict[str, np.ndarray] = field(default_factory=dict)

    def subset(self, index: np.ndarray) -> DatasetImages:
        rows = None if self.indices is None else self.indices[index]
        info = {k: v[index] for k, v in self.info.items()}
        return DatasetImages(
            self.images[index], self.labels[index], rows, self.taxonomy, dict(self.source), info
        )


def concat_datasets(parts: list[DatasetImages]) -> DatasetImages:
    """One data set of several (same image size and taxonomy), e.g. simulated and real.

    ``info`` columns missing from a part are '' for its rows; a part without
    a ``source`` column names its rows by its kind (``simulated``...); ``part``
    is the position of each row's data set in ``parts``.
    """
    if not parts:
        msg = "nothing to concatenate"
        raise ValueError(msg)
    sizes = {p.images.shape[1:] for p in parts}
    if len(sizes) != 1:
        msg = f"data sets of different image shapes cannot be combined: {sorted(sizes)}"
        raise ValueError(msg)
    names = {p.taxonomy.name for p in parts if p.taxonomy is not None}
    if len(names) > 1:
        msg = f"data sets of different taxonomies cannot be combined: {sorted(names)}"
        raise ValueError(msg)
    taxonomy = next((p.taxonomy for p in parts if p.taxonomy is not None), None)
    keys = sorted({k for p in parts for k in p.info} | {"source"})
    info = {"part": np.concatenate([np.full(len(p), str(i)) for i, p in enumerate(parts)])}
    for key in keys:
        columns = []
        for p in parts:
            default = str(p.source.get("kind", "")) if key == "source" else ""
            columns.append(p.info.get(key, np.full(len(p), default, dtype=object)).astype(str))
        info[key] = np.concatenate(columns)
    return DatasetImages(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        None,
        taxonomy,
        {"kind": "combined", "parts": [p.source for p in parts], "n_images": sum(map(len, parts))},
        info,
    )


def identify_dataset(spec: str | os.PathLike[str]) -> str:
    """What a spec names: ``galaxy10_decals``, ``galaxy_mnist``, ``catalog`` or ``simulated``."""
    text = str(spec)
    if text.startswith("simulated:"):
        return "simulated"
    path = Path(text)
    if path.is_dir():
        if _mnist_pair(path) is not None:
            return "galaxy_mnist"
        if (path / "Galaxy10_DECals.h5").exists():
            return "galaxy10_decals"
        msg = f"{path}: a folder without train_dataset.hdf5/test_dataset.hdf5 or Galaxy10_DECals.h5"
        raise DatasetError(msg)
    if not path.exists():
        msg = f"{path}: no such file"
        raise DatasetError(msg)
    import h5py

    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as fh:
            names = set(fh)
        if "images" in names and "ans" in names:
            return "galaxy10_decals"
        if "images" in names and "labels" in names:
            return "galaxy_mnist"
    return "catalog"


def _mnist_pair(folder: Path) -> Path | None:
    for name in ("test_dataset.hdf5", "train_dataset.hdf5"):
        if (folder / name).exists():
            return folder / name
    return None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        msg = f"unknown split {split!r}; use one of {', '.join(SPLITS)}"
        raise ValueError(msg)


def load_dataset(
    spec: str | os.PathLike[str],
    preprocess: PreprocessConfig,
    *,
    split: str = "train",
    label_fraction: float = 1.0,
    seed: int = 42,
    workers: int = 1,
    verify: bool = False,
) -> DatasetImages:
    """Prepared images and labels of one split of a data set.

    Parameters
    ----------
    spec : str or path-like
        See the module documentation.
    preprocess : PreprocessConfig
        The model's preprocessing (size; stretch for flux cutouts).
    split : {'train', 'test', 'all'}
    label_fraction : float
        Keep this fraction of every class (at least one image), chosen by a
        seeded hash order so smaller fractions are subsets of larger ones.
    seed : int
        Seed of the split and of the few-shot subset; 42 gives the shipped splits.
    workers : int
        Processes preparing images.
    verify : bool
        Check the SHA-256 of a Galaxy10 DECaLS file first.

    Returns
    -------
    DatasetImages
    """
    _check_split(split)
    kind = identify_dataset(spec)
    if split == "val" and kind != "catalog":
        msg = (
            f"unknown split 'val' for {kind} data; use train, test or all ('val' is for "
            "label catalogs with a split column)"
        )
        raise ValueError(msg)
    if kind == "galaxy10_decals":
        path = Path(spec)
        path = path / "Galaxy10_DECals.h5" if path.is_dir() else path
        return _load_galaxy10(path, preprocess, split, label_fraction, seed, workers, verify)
    if kind == "galaxy_mnist":
        return _load_mnist(Path(spec), preprocess, split, label_fraction, seed, workers)
    if kind == "simulated":
        return _load_simulated(str(spec), preprocess, split, label_fraction, seed, workers)
    return _load_catalog(Path(spec), preprocess, split, label_fraction, seed, workers)


def _few_shot(labels: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rows of the few-shot subset; hashed on the source rows so the subset is split-independent."""
    if fraction == 1.0:
        return rows
    return rows[few_shot_indices(labels[rows], fraction, seed=seed, ids=rows)]


def _require(rows: np.ndarray, spec: object, split: str) -> np.ndarray:
    if not len(rows):
        msg = (
            f"{spec}: the {split} split is empty (too few images per class for a "
            f"{DEFAULT_TEST_FRACTION:.0%} test share?)"
        )
        raise DatasetError(msg)
    return rows


def _record(kind: str, path: str, split: str, seed: int, fraction: float, rows) -> dict[str, Any]:
    return {
        "kind": kind,
        "path": path,
        "split": split,
        "seed": seed,
        "label_fraction": fraction,
        "n_images": len(rows),
        "indices_sha256": indices_sha256(rows),
    }


def _from_hdf5(reader, preprocess, rows, workers, source) -> DatasetImages:
    images, labels, kept = reader.prepare(preprocess, indices=rows, workers=workers)
    if len(kept) != len(rows):
        source = {**source, "n_images": len(kept), "indices_sha256": indices_sha256(kept)}
    return DatasetImages(images, labels, kept, reader.taxonomy, source)


def _load_galaxy10(path, preprocess, split, fraction, seed, workers, verify) -> DatasetImages:
    reader = Galaxy10DECaLS(path, verify=verify)
    labels = reader.labels
    if split == "all":
        rows, split_record = np.arange(len(labels)), None
    else:
        train, test, split_record = reader.split(seed=seed)
        rows = test if split == "test" else train
    rows = _require(_few_shot(labels, rows, fraction, seed), path, split)
    source = _record("galaxy10_decals", str(path), split, seed, fraction, rows)
    source["sha256_verified"] = verify
    if split_record is not None:
        source["split_record"] = split_record
    return _from_hdf5(reader, preprocess, rows, workers, source)


def _load_mnist(path, preprocess, split, fraction, seed, workers) -> DatasetImages:
    if path.is_dir():
        path = _mnist_pair(path) or path
    reader = GalaxyMNIST(path)
    if reader.role is None:
        labels = reader.labels
        spec = shipped_split_spec("galaxy_mnist")
        if split == "all":
            rows = np.arange(len(labels))
        else:
            train, test = stratified_split(
                labels, spec["fallback_test_fraction"], seed=seed, name=spec["hash_name"]
            )
            rows = test if split == "test" else train
            log.warning(
                "%s is not train_dataset/test_dataset: using our stratified 80/20 split "
                "(not the canonical GalaxyMNIST split)",
                path,
            )
        rows = _require(_few_shot(labels, rows, fraction, seed), path, split)
        source = _record("galaxy_mnist", str(path), split, seed, fraction, rows)
        source["canonical_split"] = False
        return _from_hdf5(reader, preprocess, rows, workers, source)
    roles = ("train", "test") if split == "all" else (split,)
    parts, offsets, offset = [], [], 0
    for role in roles:
        file = reader.sibling(role)
        if file is None:
            msg = f"{path}: the {role} half of GalaxyMNIST ({role}_dataset.hdf5) is not beside it"
            raise DatasetError(msg)
        part = GalaxyMNIST(file)
        rows = _require(_few_shot(part.labels, np.arange(len(part)), fraction, seed), file, role)
        source = _record("galaxy_mnist", str(file), role, seed, fraction, rows)
        source["canonical_split"] = True
        parts.append(_from_hdf5(part, preprocess, rows, workers, source))
        offsets.append(offset)
        offset += len(part)
    if len(parts) == 1:
        return parts[0]
    # 'all': train rows keep their numbers, test rows follow them
    rows = np.concatenate(
        [np.asarray(p.indices) + start for p, start in zip(parts, offsets, strict=True)]
    )
    source = _record("galaxy_mnist", str(path), "all", seed, fraction, rows)
    source.update(canonical_split=True, files=[p.source["path"] for p in parts])
    return DatasetImages(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        rows,
        GALAXY_MNIST,
        source,
    )


def _parse_simulated(spec: str) -> tuple[int, int]:
    parts = spec.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        n, sim_seed = int(parts[1]), int(parts[2])
    except ValueError:
        msg = f"simulated data must be given as simulated:N:SEED, got {spec!r}"
        raise ValueError(msg) from None
    if n < 2 or sim_seed < 0:
        msg = f"simulated:N:SEED needs N >= 2 and SEED >= 0, got {spec!r}"
        raise ValueError(msg)
    return n, sim_seed


def _load_simulated(spec, preprocess, split, fraction, seed, workers) -> DatasetImages:
    from ..simulate.cutout import balanced_label
    from .prepared import _map, _simulate_prepare

    n, sim_seed = _parse_simulated(spec)
    labels = np.array([balanced_label(sim_seed, i) for i in range(n)], dtype=np.int64)
    rows = _split_rows(labels, split, seed, "simulated")
    rows = _require(_few_shot(labels, rows, fraction, seed), spec, split)
    results = _map(_simulate_prepare, [(int(i), sim_seed, preprocess, 256) for i in rows], workers)
    images = np.stack([r[0] for r in results])
    source = _record("simulated", spec, split, seed, fraction, rows)
    return DatasetImages(images, labels[rows], rows, GALAXY10_DECALS, source)


def _split_rows(labels: np.ndarray, split: str, seed: int, name: str) -> np.ndarray:
    if split == "all":
        return np.arange(len(labels))
    train, test = stratified_split(labels, DEFAULT_TEST_FRACTION, seed=seed, name=name)
    return test if split == "test" else train


def _load_catalog(path, preprocess, split, fraction, seed, workers) -> DatasetImages:
    catalog = read_label_catalog(path)
    labels = catalog.labels
    if catalog.splits is not None and split != "all":
        rows = np.flatnonzero(catalog.splits == split)
        how = "column 'split'"
    elif split == "val":
        msg = f"{path}: no split column, so no 'val' split (use test: our 90/10 hash split)"
        raise DatasetError(msg)
    else:
        rows = _split_rows(np.maximum(labels, 0), split, seed, "catalog")
        how = "stratified hash split" if split != "all" else "all rows"
    unlabelled = int(np.sum(labels[rows] < 0))
    if unlabelled:
        log.info("%s: %d unlabelled rows of the %s split left out", path, unlabelled, split)
    rows = rows[labels[rows] >= 0]
    rows = _few_shot(labels, rows, fraction, seed)
    if not len(rows):
        msg = f"{path}: no labelled rows in the {split} split ({how})"
        raise DatasetError(msg)
    images, kept = prepare_files([catalog.paths[i] for i in rows], preprocess, workers=workers)
    if not len(kept):
        msg = f"{path}: none of its {len(rows)} cutouts could be read"
        raise DatasetError(msg)
    if len(kept) != len(rows):
        log.warning("%s: %d unreadable cutouts dropped", path, len(rows) - len(kept))
    rows = rows[kept]
    source = _record("catalog", str(path), split, seed, fraction, rows)
    source["split_from"] = how
    n_classes = len(catalog.taxonomy) if catalog.taxonomy is not None else None
    source["n_coarse_only"] = int(np.sum(labels[rows] >= n_classes)) if n_classes else 0
    info = {k: v[rows] for k, v in catalog.info.items()}
    return DatasetImages(images, labels[rows], rows, catalog.taxonomy, source, info)
