"""Small HDF5 files in the Galaxy10 DECaLS and GalaxyMNIST layouts, for tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tests.cutout_factory import galaxy_cube


def composite(label: int, size: int, seed: int) -> np.ndarray:
    """A uint8 (size, size, 3) colour composite whose elongation depends on the label."""
    cube = galaxy_cube(size, q=1.0 - 0.08 * label, angle=0.4 * seed, flux=size / 6, seed=seed)
    rgb = np.clip(cube[::-1] / cube.max(), 0, 1)  # z, r, g -> R, G, B
    return np.moveaxis(np.rint(rgb * 255).astype(np.uint8), 0, -1)


def write_galaxy10(
    path: str | Path,
    *,
    n: int = 60,
    size: int = 256,
    n_classes: int = 10,
    ans_dtype: str = "uint8",
    layout: str = "nhwc",
) -> np.ndarray:
    """Galaxy10-like file (chunked, gzip) with shuffled balanced labels; returns the labels."""
    rng = np.random.default_rng(7)
    labels = rng.permutation(np.arange(n) % n_classes)
    images = np.stack([composite(int(c), size, i) for i, c in enumerate(labels)])
    if layout == "nchw":
        images = np.ascontiguousarray(np.moveaxis(images, -1, 1))
    with h5py.File(path, "w") as fh:
        fh.create_dataset("images", data=images, chunks=(1, *images.shape[1:]), compression="gzip")
        fh.create_dataset("ans", data=labels.astype(ans_dtype))
        fh.create_dataset("ra", data=rng.uniform(0, 360, n))
        fh.create_dataset("dec", data=rng.uniform(-10, 60, n))
        redshift = rng.uniform(0.01, 0.2, n).astype(np.float32)
        redshift[::7] = np.nan
        fh.create_dataset("redshift", data=redshift)
        fh.create_dataset("pxscale", data=np.full(n, 0.262, dtype=np.float32))
    return labels


def write_mnist(
    path: str | Path, *, n: int, size: int = 64, seed: int = 0, n_classes: int = 4
) -> np.ndarray:
    """GalaxyMNIST-like file (images uint8 NHWC, labels uint8); returns the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.uint8)
    images = np.stack([composite(int(c) * 3, size, seed * 1000 + i) for i, c in enumerate(labels)])
    with h5py.File(path, "w") as fh:
        fh.create_dataset("images", data=images)
        fh.create_dataset("labels", data=labels)
    return labels


def write_mnist_pair(folder: str | Path, *, n_train: int = 24, n_test: int = 8) -> Path:
    """``train_dataset.hdf5`` and ``test_dataset.hdf5`` in ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_mnist(folder / "train_dataset.hdf5", n=n_train, seed=1)
    write_mnist(folder / "test_dataset.hdf5", n=n_test, seed=2)
    return folder
