"""Labelled training images, prepared once with the model's preprocessing.

Every source (a label catalog of FITS/PNG cutouts, the simulator) ends up as a
:class:`LabelledImages`: uint8 (N, 3, S, S) model inputs and integer labels.
Preparing once and keeping uint8 in memory makes an epoch cost only the model
(about 12 KB per 64 px image: 100,000 images take 1.2 GB).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CutoutError
from ..io.cutouts import read_cutout
from ..preprocess.pipeline import PreprocessConfig, prepare

__all__ = [
    "LabelledImages",
    "from_catalog",
    "from_simulation",
    "prepare_files",
    "split_stratified",
    "to_uint8",
]

log = logging.getLogger(__name__)

#: file columns of label catalogs, here and in datasets/catalog.py
PATH_COLUMNS = ("path", "filepath", "file", "filename")
#: the label columns this older reader knows (label catalogs: datasets/catalog.py)
LABEL_COLUMNS = ("label", "ans", "class_id", "labels")


@dataclass
class LabelledImages:
    """Prepared model inputs (uint8, (N, 3, S, S)) with integer labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> LabelledImages:
        return LabelledImages(self.images[index], self.labels[index])


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def split_stratified(
    labels: np.ndarray, fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out) with ``fraction`` of every class held out (at least one)."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        rng.shuffle(idx)
        n_held = max(1, round(fraction * len(idx))) if fraction > 0 and len(idx) > 1 else 0
        held.append(idx[:n_held])
        train.append(idx[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _prepare_file(args: tuple[str, PreprocessConfig]) -> np.ndarray | str:
    path, config = args
    try:
        return to_uint8(prepare(read_cutout(path, fov_arcsec=config.fov_arcsec), config).image)
    except CutoutError as exc:
        return str(exc)


def _map(func: Callable, items: Sequence, workers: int) -> list:
    if workers <= 1 or len(items) < 64:
        return [func(item) for item in items]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, items, chunksize=32))


def prepare_files(
    paths: Sequence[str], config: PreprocessConfig, *, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Prepared uint8 images of the readable ``paths`` and the positions they came from.

    Unreadable files are skipped with a warning naming them.
    """
    results = _map(_prepare_file, [(p, config) for p in paths], workers)
    keep = np.array([i for i, r in enumerate(results) if not isinstance(r, str)], dtype=np.int64)
    for r in results:
        if isinstance(r, str):
            log.warning("skipped: %s", r)
    if not len(keep):
        size = config.size
        return np.zeros((0, 3, size, size), dtype=np.uint8), keep
    return np.stack([results[i] for i in keep]), keep


def from_catalog(
    catalog: str | os.PathLike[str],
    config: PreprocessConfig,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    workers: int = 1,
) -> LabelledImages:
    """Prepare every cutout listed in a label catalog (any astropy-readable table).

    Paths are relative to the catalog's directory unless absolute. Files that
    cannot be read are skipped with a warning naming them.
    """
    from astropy.table import Table

    table = Table.read(catalog)
    path_col = path_column or _find(table.colnames, PATH_COLUMNS, catalog, "path")
    label_col = label_column or _find(table.colnames, LABEL_COLUMNS, catalog, "label")
    base = Path(catalog).resolve().parent
    paths = [str(p) if os.path.isabs(str(p)) else str(base / str(p)) for p in table[path_col]]
    labels = np.asarray(table[label_col], dtype=np.int64)
    images, keep = prepare_files(paths, config, workers=workers)
    if not len(keep):
        msg = f"{catalog}: none of its {len(paths)} cutouts could be read"
        raise ValueError(msg)
    return LabelledImages(images, labels[keep])


def _find(names: Sequence[str], candidates: Sequence[str], catalog, what: str) -> str:
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c in lower:
            return lower[c]
    msg = f"{catalog}: no {what} column (looked for {', '.join(candidates)})"
    raise ValueError(msg)


def _simulate_prepare(args: tuple[int, int, PreprocessConfig, int]) -> tuple[np.ndarray, int]:
    from ..io.cutouts import Cutout
    from ..simulate import simulate_cutout

    index, seed, config, size = args
    sim = simulate_cutout(index, seed=seed, size=size)
    from astropy.wcs import WCS

    cutout = Cutout(sim.cube, ("g", "r", "z"), "flux", WCS(sim.header, naxis=2), f"sim:{index}")
    return to_uint8(prepare(cutout, config).image), int(sim.label)


def from_simulation(
    n: int,
    config: PreprocessConfig,
    *,
    seed: int,
    start: int = 0,
    size: int = 256,
    workers: int = 1,
) -> LabelledImages:
    """Simulate cutouts ``start .. start+n-1`` of ``seed`` and prepare them."""
    items = [(i, seed, config, size) for i in range(start, start + n)]
    results = _map(_simulate_prepare, items, workers)
    images = np.stack([r[0] for r in results])
    labels = np.array([r[1] for r in results], dtype=np.int64)
    return LabelledImages(images, labels)
