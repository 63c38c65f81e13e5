"""Lazy, chunked reading of image data sets stored as HDF5 arrays of colour composites.

Galaxy10 DECaLS (17,736 x 256 x 256 x 3 bytes, 3.5 GB uncompressed) and
GalaxyMNIST keep every image in one ``images`` array. :class:`HDF5ImageSet`
reads only the rows asked for, a block at a time, and turns each into a model
input through :func:`~galaxalign_astro.preprocess.pipeline.prepare` with a
``kind='rgb'`` :class:`~galaxalign_astro.io.Cutout`: exactly the path a PNG of
the same composite takes at inference (no stretch; resize to the model size).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import CutoutError, GalaxAlignError
from ..io.cutouts import Cutout
from ..preprocess.pipeline import PreprocessConfig, prepare
from ..taxonomy import Taxonomy
from .prepared import to_uint8

__all__ = ["DatasetError", "HDF5ImageSet", "composite_planes"]

log = logging.getLogger(__name__)

#: images read from the file per block (256 Galaxy10 images are 50 MB)
BLOCK = 256
#: HDF5 chunk cache per open file, so rows sharing a compressed chunk decompress it once
CHUNK_CACHE = 64 * 2**20


class DatasetError(GalaxAlignError):
    """A data set file is missing, has the wrong layout or fails its checksum."""


def composite_planes(raw: np.ndarray, *, layout: str) -> np.ndarray:
    """(n, 3, H, W) float32 in [0, 1] from stored images (integers scaled by their dtype's max)."""
    data = np.moveaxis(raw, -1, 1) if layout == "nhwc" else raw
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max)
    return data.astype(np.float32, copy=False)


def _read_rows(dataset, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted, unique) of an h5py dataset with as few selections as is sensible."""
    first, last = int(rows[0]), int(rows[-1])
    span = last - first + 1
    if span == len(rows):
        return dataset[first : last + 1]
    if span <= 4 * len(rows):
        # a dense selection: one hyperslab costs less than many small ones
        return dataset[first : last + 1][rows - first]
    # row by row: h5py's list selection is 30x slower on compressed, chunked data
    return np.stack([dataset[int(row)] for row in rows])


def _prepare_block(
    args: tuple[str, str, str, np.ndarray, PreprocessConfig],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Prepared uint8 images of ``rows``; rows that fail come back as messages."""
    import h5py

    path, key, layout, rows, config = args
    with h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE) as fh:
        planes = composite_planes(_read_rows(fh[key], rows), layout=layout)
    out, kept, failed = [], [], []
    for row, image in zip(rows, planes, strict=True):
        cutout = Cutout(image, ("R", "G", "B"), "rgb", None, f"{path}[{int(row)}]")
        try:
            out.append(to_uint8(prepare(cutout, config).image))
            kept.append(int(row))
        except CutoutError as exc:
            failed.append(str(exc))
    size = config.size
    images = np.stack(out) if out else np.zeros((0, 3, size, size), dtype=np.uint8)
    return images, np.asarray(kept, dtype=np.int64), failed


class HDF5ImageSet:
    """Colour composites and integer labels held in one HDF5 file, read lazily.

    Parameters
    ----------
    path : path-like
    labels_key : str
        Dataset holding one integer class per image (``ans``, ``labels``).
    taxonomy : Taxonomy
        Class set the labels index.
    images_key : str
        Dataset holding the images, (N, H, W, 3) or (N, 3, H, W), any numeric dtype.

    Raises
    ------
    DatasetError
        When the file cannot be opened or lacks the datasets, naming the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels_key: str,
        taxonomy: Taxonomy,
        images_key: str = "images",
    ) -> None:
        self.path = str(path)
        self.images_key = images_key
        self.labels_key = labels_key
        self.taxonomy = taxonomy
        self._labels: np.ndarray | None = None
        with self._open() as fh:
            for key in (images_key, labels_key):
                if key not in fh:
                    msg = f"{self.path}: no dataset {key!r} (has {', '.join(sorted(fh))})"
                    raise DatasetError(msg)
            shape, dtype = fh[images_key].shape, fh[images_key].dtype
            n_labels = fh[labels_key].shape[0] if fh[labels_key].ndim == 1 else -1
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            msg = (
                f"{self.path}: {images_key} has shape {shape}; "
                "expected (N, H, W, 3) or (N, 3, H, W)"
            )
            raise DatasetError(msg)
        if not np.issubdtype(dtype, np.number):
            msg = f"{self.path}: {images_key} has non-numeric dtype {dtype}"
            raise DatasetError(msg)
        if n_labels != shape[0]:
            msg = f"{self.path}: {labels_key} does not hold one label per image ({shape[0]} images)"
            raise DatasetError(msg)
        self.layout = "nhwc" if shape[3] == 3 else "nchw"
        self.n_images = int(shape[0])
        axes = (1, 2) if self.layout == "nhwc" else (2, 3)
        self.image_shape = (int(shape[axes[0]]), int(shape[axes[1]]))
        self.dtype = np.dtype(dtype)

    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE)
        except (OSError, ValueError) as exc:
            msg = f"{self.path}: not a readable HDF5 file ({exc})"
            raise DatasetError(msg) from None

    def __len__(self) -> int:
        return self.n_images

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, n={self.n_images}, "
            f"image_shape={tuple(self.image_shape)}, dtype={self.dtype})"
        )

    @property
    def labels(self) -> np.ndarray:
        """Class index of every image (int64), read once."""
        if self._labels is None:
            with self._open() as fh:
                raw = np.asarray(fh[self.labels_key][()])
            if not np.issubdtype(raw.dtype, np.integer) and not (
                np.issubdtype(raw.dtype, np.floating) and np.isfinite(raw).all()
            ):
                msg = f"{self.path}: {self.labels_key} holds non-integer values ({raw.dtype})"
                raise DatasetError(msg)
            labels = raw.astype(np.int64)
            if not np.array_equal(labels, raw):
                msg = f"{self.path}: {self.labels_key} holds non-integer values"
                raise DatasetError(msg)
            bad = (labels < 0) | (labels >= len(self.taxonomy))
            if bad.any():
                msg = (
                    f"{self.path}: label {int(labels[bad][0])} outside 0..{len(self.taxonomy) - 1} "
                    f"({self.taxonomy.name})"
                )
                raise DatasetError(msg)
            self._labels = labels
        return self._labels

    def column(self, key: str) -> np.ndarray:
        """Another per-image dataset of the file (e.g. ``ra``), in its stored dtype."""
        with self._open() as fh:
            if key not in fh:
                msg = f"{self.path}: no dataset {key!r}"
                raise DatasetError(msg)
            return np.asarray(fh[key][()])

    def _rows(self, indices: np.ndarray | None) -> np.ndarray:
        if indices is None:
            return np.arange(self.n_images, dtype=np.int64)
        rows = np.unique(np.asarray(indices, dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.n_images):
            msg = f"{self.path}: index out of range 0..{self.n_images - 1}"
            raise IndexError(msg)
        return rows

    def iter_images(
        self, indices: np.ndarray | None = None, *, block: int = BLOCK
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (rows, (n, 3, H, W) float32 planes in [0, 1]) block by block, rows sorted."""
        rows = self._rows(indices)
        with self._open() as fh:
            dataset = fh[self.images_key]
            for start in range(0, len(rows), block):
                chunk = rows[start : start + block]
                yield chunk, composite_planes(_read_rows(dataset, chunk), layout=self.layout)

    def cutout(self, index: int) -> Cutout:
        """Image ``index`` as a ``kind='rgb'`` cutout (what a PNG of it would give)."""
        rows, planes = next(self.iter_images(np.array([index])))
        return Cutout(planes[0], ("R", "G", "B"), "rgb", None, f"{self.path}[{int(rows[0])}]")

    def prepare(
        self,
        config: PreprocessConfig,
        *,
        indices: np.ndarray | None = None,
        workers: int = 1,
        block: int = BLOCK,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prepare the given rows (all by default) as model inputs.

        Returns
        -------
        images : ndarray
            uint8 (n, 3, S, S).
        labels : ndarray
            int64 (n,).
        rows : ndarray
            The file row of each image, sorted; rows whose image cannot be used
            (blank) are dropped with a warning naming them.
        """
        rows = self._rows(indices)
        labels = self.labels
        tasks = [
            (self.path, self.images_key, self.layout, rows[s : s + block], config)
            for s in range(0, len(rows), block)
        ]
        if workers > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(_prepare_block, tasks))
        else:
            results = [_prepare_block(t) for t in tasks]
        for _, _, failed in results:
            for message in failed:
                log.warning("skipped: %s", message)
        size = config.size
        images = (
            np.concatenate([r[0] for r in results])
            if results
            else np.zeros((0, 3, size, size), dtype=np.uint8)
        )
        kept = np.concatenate([r[1] for r in results]) if results else rows
        log.info("prepared %d images from %s", len(kept), Path(self.path).name)
        return images, labels[kept], kept
