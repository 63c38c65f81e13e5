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
    "CutoutFiles",
    "PreparedDataset",
    "measurement_layout",
    "measurement_vector",
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

    def __getitem__(self, index: int) -> dict[str, Any]:
        size = self.config.size
        try:
            cutout = self.load(index)
            prepared = prepare(cutout, self.config)
            ra, dec = cutout.centre_radec()
            item = {
                "index": index,
                "image": torch.from_numpy(prepared.image),
                "ok": True,
                "error": "",
                "ra": ra,
                "dec": dec,
            }
            if self.measurements:
                item["measurements"] = torch.from_numpy(
                    measurement_vector(prepared.measurements, len(self.config.bands))
                )
            return item
        except CutoutError as exc:
            error = str(exc)
        except Exception as exc:  # an unforeseen failure is still one failed row
            error = f"{self.name(index)}: {type(exc).__name__}: {exc}".splitlines()[0]
        item = {
            "index": index,
            "image": torch.zeros(3, size, size),
            "ok": False,
            "error": error,
            "ra": math.nan,
            "dec": math.nan,
        }
        if self.measurements:
            item["measurements"] = torch.from_numpy(
                measurement_vector(None, len(self.config.bands))
            )
        return item


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
        return read_cutout(self.paths[index])


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


def worker_init(_: int) -> None:
    """One torch thread per loader worker: the workers are the parallelism."""
    torch.set_num_threads(1)
