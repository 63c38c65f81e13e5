"""Datasets that read and prepare cutouts inside DataLoader workers.

A failed cutout never stops a batch: its item carries ``ok=False`` and the error
message, and the model simply skips it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import CutoutError
from ..io.cutouts import Cutout, read_cutout
from ..preprocess.pipeline import PreprocessConfig, prepare

__all__ = [
    "ArrayCutouts",
    "Batches",
    "CutoutFiles",
    "PreparedDataset",
    "measurement_layout",
    "measurement_vector",
    "preload_readers",
    "worker_init",
]

log = logging.getLogger(__name__)


def measurement_layout(n_bands: int) -> list[tuple[str, int, int]]:
    """``(name, start, length)`` of each source measurement in an item's flat vector.

    The order is that of
    :data:`~galaxalign_astro.preprocess.sources.MEASUREMENT_COLUMNS`; per-band
    fields (``length=0`` there) take ``n_bands`` values.
    """
    from ..preprocess.sources import MEASUREMENT_COLUMNS

    layout, start = [], 0
    for column in MEASUREMENT_COLUMNS:
        length = n_bands if column.length == 0 else column.length
        layout.append((column.name, start, length))
        start += length
    return layout


def measurement_vector(values: dict[str, Any] | None, n_bands: int) -> np.ndarray:
    """Source measurements as one float64 vector (NaN where missing or ``values`` is None)."""
    layout = measurement_layout(n_bands)
    out = np.full(layout[-1][1] + layout[-1][2], np.nan)
    for name, start, length in layout:
        value = np.asarray((values or {}).get(name, np.nan), dtype=np.float64).reshape(-1)
        if value.size == length:
            out[start : start + length] = value
    return out


class PreparedDataset(Dataset):
    """Items are dicts: index, image (3, S, S) float32, ok, error, ra, dec.

    With ``measurements=True`` items also hold ``measurements``, the flat float64
    vector of :func:`measurement_vector` (all NaN when the model has no source
    steps or the item failed).
    """

    def __init__(self, config: PreprocessConfig, *, measurements: bool = False) -> None:
        self.config = config
        self.measurements = measurements

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> Cutout:  # pragma: no cover - abstract
        raise NotImplementedError

    def name(self, index: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, index: int) -> tuple[np.ndarray | None, str, float, float, Any]:
        """``(image, error, ra, dec, measurements)`` of one item; image None when it failed."""
        try:
            cutout = self.load(index)
            prepared = prepare(cutout, self.config)
            ra, dec = cutout.centre_radec()
            return prepared.image, "", ra, dec, prepared.measurements
        except CutoutError as exc:
            error = str(exc)
        except Exception as exc:  # an unforeseen failure is still one failed row
            error = f"{self.name(index)}: {type(exc).__name__}: {exc}".splitlines()[0]
        return None, error, math.nan, math.nan, None

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _single(self.batch([index]))

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch, written straight into its arrays.

        Keys as the items', each holding the batch: ``index``, ``image`` (n, 3, S, S),
        ``ok``, ``ra`` and ``dec`` tensors, ``error`` a list of str, and
        ``measurements`` (n, m) with ``measurements=True``. Building the batch in
        place spares the per-item tensors and the collation copy;
        :class:`Batches` hands it to a DataLoader.
        """
        n, size, n_bands = len(indices), self.config.size, len(self.config.bands)
        images = torch.zeros((n, 3, size, size))
        ok = torch.zeros(n, dtype=torch.bool)
        ra = torch.full((n,), math.nan, dtype=torch.float64)
        dec = torch.full((n,), math.nan, dtype=torch.float64)
        errors = [""] * n
        measurements = []
        for j, index in enumerate(indices):
            image, errors[j], ra[j], dec[j], found = self._prepare(index)
            if image is not None:
                images[j] = torch.from_numpy(image)
                ok[j] = True
            if self.measurements:
                measurements.append(measurement_vector(found, n_bands))
        batch = {
            "index": torch.as_tensor(list(indices), dtype=torch.int64),
            "image": images,
            "ok": ok,
            "error": errors,
            "ra": ra,
            "dec": dec,
        }
        if self.measurements:
            batch["measurements"] = torch.from_numpy(np.stack(measurements))
        return batch


def _single(batch: dict[str, Any]) -> dict[str, Any]:
    """Item 0 of a one-item batch, in the shape of a dataset item."""
    item = {key: value[0] for key, value in batch.items()}
    item["index"], item["ok"] = int(item["index"]), bool(item["ok"])
    item["ra"], item["dec"] = float(item["ra"]), float(item["dec"])
    return item


class Batches(Dataset):
    """A :class:`PreparedDataset` whose DataLoader fetches whole batches with ``batch``.

    The loader needs ``collate_fn=Batches.collate`` (the batch comes made). The
    dataset itself keeps its per-item ``__getitem__`` for loaders of users' own.
    """

    def __init__(self, dataset: PreparedDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.dataset.batch(indices)

    @staticmethod
    def collate(batch: Any) -> Any:
        """The loader's ``collate_fn``: the batch from ``__getitems__`` as it is."""
        return batch


class CutoutFiles(PreparedDataset):
    """Cutout files on disk."""

    def __init__(
        self, paths: Sequence[str], config: PreprocessConfig, *, measurements: bool = False
    ) -> None:
        super().__init__(config, measurements=measurements)
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[index]

    def load(self, index: int) -> Cutout:
        return read_cutout(self.paths[index], fov_arcsec=self.config.fov_arcsec)


class ArrayCutouts(PreparedDataset):
    """In-memory cutouts: (N, bands, H, W) fluxes or a sequence of such arrays."""

    def __init__(
        self,
        arrays: Sequence[np.ndarray] | np.ndarray,
        config: PreprocessConfig,
        *,
        bands: Sequence[str] | None = None,
        kind: str = "flux",
        names: Callable[[int], str] | None = None,
        measurements: bool = False,
    ) -> None:
        super().__init__(config, measurements=measurements)
        self.arrays = arrays
        self.bands = tuple(bands) if bands is not None else None
        self.kind = kind
        self._names = names or (lambda i: f"row {i}")

    def __len__(self) -> int:
        return len(self.arrays)

    def name(self, index: int) -> str:
        return self._names(index)

    def load(self, index: int) -> Cutout:
        data = np.asarray(self.arrays[index], dtype=np.float32)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            msg = f"{self.name(index)}: image array has shape {data.shape}; expected (bands, H, W)"
            raise CutoutError(msg)
        bands = self.bands if self.bands is not None else (None,) * data.shape[0]
        if len(bands) != data.shape[0]:
            msg = f"{self.name(index)}: {data.shape[0]} planes but {len(bands)} band names"
            raise CutoutError(msg)
        return Cutout(data, bands, self.kind, None, self.name(index))  # type: ignore[arg-type]


def preload_readers(config: PreprocessConfig) -> None:
    """Import, in this process, the modules the readers and ``config``'s steps import lazily.

    Called before DataLoader workers fork, so each worker inherits them instead of
    importing them again while the model waits for its first batch (about a second
    per worker on a 2-core machine; benchmarks/classify_throughput.py).
    """
    import importlib

    modules = ["PIL.Image", "astropy.io.fits", "astropy.wcs", "astropy.wcs.utils"]
    if config.frame is not None:
        modules += ["scipy.ndimage", "galaxalign_astro.preprocess.framing"]
    if config.sources is not None:
        modules += ["galaxalign_astro.preprocess.sources"]
    for name in modules:
        importlib.import_module(name)


def worker_init(_: int) -> None:
    """One torch thread per loader worker: the workers are the parallelism."""
    torch.set_num_threads(1)
