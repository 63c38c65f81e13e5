"""Clean-up of the cube: fill of masked pixels, neighbour masking, recentring, crop."""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import numpy as np
from scipy import ndimage

from .config import SourceConfig
from .sky import _mesh_to_image, _valid_sigma

log = logging.getLogger(__name__)


class _Filler:
    """Values for pixels without usable data: the sky level plus seeded noise, or zero.

    The noise generator is seeded with ``seed`` and a hash of the input cube, so the
    same cutout is always filled the same way; it is created on first use (hashing
    costs ~1 ms). Where a ``Background2D`` was subtracted, the noise follows its
    interpolated rms map (computed on first use); elsewhere the band's sigma.
    """

    def __init__(self, cube: np.ndarray, seed: int, level: np.ndarray, sigma: np.ndarray):
        self._cube = cube
        self._seed = seed
        self._rng: np.random.Generator | None = None
        self.level = level
        self.sigma = sigma
        self.backgrounds: dict[int, Any] = {}
        self._rms: dict[int, np.ndarray | None] = {}

    def _normal(self, n: int) -> np.ndarray:
        if self._rng is None:
            digest = hashlib.blake2b(np.ascontiguousarray(self._cube).tobytes(), digest_size=8)
            self._rng = np.random.default_rng([self._seed, int.from_bytes(digest.digest())])
        return self._rng.standard_normal(n).astype(np.float32)

    def _rms_map(self, b: int) -> np.ndarray | None:
        if b not in self.backgrounds:
            return None
        if b not in self._rms:
            bkg = self.backgrounds[b]
            rms = _mesh_to_image(bkg.background_rms_mesh, bkg.box_size, self._cube.shape[1:])
            np.maximum(rms, 0.0, out=rms)
            self._rms[b] = rms if np.isfinite(rms).all() else None
        return self._rms[b]

    def values(self, b: int, where: np.ndarray, mode: str, *, local: bool = True) -> np.ndarray:
        """Fill values for the pixels ``where`` of band ``b`` (``local``: use the rms map)."""
        n = int(np.count_nonzero(where))
        if mode == "zero":
            return np.zeros(n, dtype=np.float32)
        lev = self.level[b] if np.isfinite(self.level[b]) else 0.0
        std = self.sigma[b] if _valid_sigma(self.sigma[b : b + 1])[0] else 0.0
        rms = self._rms_map(b) if local else None
        scale = rms[where] if rms is not None else np.float32(std)
        return (np.float32(lev) + scale * self._normal(n)).astype(np.float32)


def _fill_pixels(work: np.ndarray, bad: np.ndarray, filler: _Filler, mode: str) -> None:
    """Fill non-finite input pixels in place."""
    for b in range(work.shape[0]):
        if bad[b].any():
            work[b][bad[b]] = filler.values(b, bad[b], mode)


def _mask_neighbours(
    work: np.ndarray,
    labels: np.ndarray,
    label: int,
    siblings: list[int],
    filler: _Filler,
    config: SourceConfig,
) -> int:
    """Replace the other sources' (dilated) pixels; return how many sources were masked."""
    keep = labels == label
    if not config.mask_siblings and siblings:
        keep |= np.isin(labels, siblings)
    others = (labels > 0) & ~keep
    n_masked = int(np.unique(labels[others]).size)
    if n_masked == 0:
        return 0
    if config.mask_dilate:
        others = ndimage.maximum_filter(others, size=2 * round(config.mask_dilate) + 1)
    others &= ~keep
    mode = "zero" if config.mask_neighbours == "zero" else "noise"
    for b in range(work.shape[0]):
        work[b][others] = filler.values(b, others, mode)
    return n_masked


def _shift(
    work: np.ndarray, shift_x: float, shift_y: float, filler: _Filler, mode: str
) -> np.ndarray:
    """Shift every band by (shift_x, shift_y) pixels.

    Whole pixels by slicing, the vacated edge filled; the sub-pixel rest (at most half
    a pixel) by a Fourier phase shift, which keeps the noise power spectrum unchanged
    (spline interpolation would smooth the noise). Ours.
    """
    n_bands, height, width = work.shape
    ix, iy = round(shift_x), round(shift_y)
    fx, fy = shift_x - ix, shift_y - iy
    out = np.empty_like(work)
    vacated = np.ones((height, width), dtype=bool)
    ys, yd = _overlap(iy, height)
    xs, xd = _overlap(ix, width)
    vacated[yd, xd] = False
    for b in range(n_bands):
        out[b][yd, xd] = work[b][ys, xs]
        if vacated.any():
            out[b][vacated] = filler.values(b, vacated, mode, local=False)
    if abs(fx) > 1e-3 or abs(fy) > 1e-3:
        out = _fourier_shift(out, fx, fy)
    return out


def _fourier_shift(cube: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Sub-pixel shift of every plane by a linear phase ramp (periodic edges)."""
    from scipy import fft

    height, width = cube.shape[1:]
    phase_y = np.exp(-2j * np.pi * fft.fftfreq(height) * fy)
    phase_x = np.exp(-2j * np.pi * fft.rfftfreq(width) * fx)
    # A Nyquist frequency is its own conjugate partner in a real signal: the symmetric
    # (real) phase cos(pi f) keeps the result exactly real.
    if height % 2 == 0:
        phase_y[height // 2] = math.cos(math.pi * fy)
    if width % 2 == 0:
        phase_x[-1] = math.cos(math.pi * fx)
    phase = (phase_y[:, None] * phase_x[None, :]).astype(np.complex64)
    spectrum = fft.rfft2(cube, axes=(1, 2))
    return fft.irfft2(spectrum * phase, s=(height, width), axes=(1, 2)).astype(np.float32)


def _overlap(shift: int, n: int) -> tuple[slice, slice]:
    """Source and destination slices of a 1-D integer shift of length ``n``."""
    if shift >= 0:
        return slice(0, max(0, n - shift)), slice(min(shift, n), n)
    return slice(min(-shift, n), n), slice(0, max(0, n + shift))


def _crop_side(radius: float, config: SourceConfig, shape: tuple[int, int]) -> int | None:
    """Crop side in pixels, or `None` when the radius is unusable."""
    if not (math.isfinite(radius) and radius > 0):
        return None
    side = max(int(config.crop_min_size), math.ceil(2.0 * config.crop_factor * radius))
    if side > 2 * max(shape):
        log.debug("crop side %d px exceeds twice the cutout: not cropped", side)
        return None
    return side


def _crop(
    work: np.ndarray, cx: float, cy: float, side: int, filler: _Filler, mode: str
) -> tuple[np.ndarray, int, int, bool]:
    """Square crop of ``side`` pixels centred on (cx, cy), padded where outside.

    Returns the crop, its first column and row in ``work``, and whether it was padded.
    """
    n_bands, height, width = work.shape
    x0 = math.floor(cx - (side - 1) / 2.0 + 0.5)
    y0 = math.floor(cy - (side - 1) / 2.0 + 0.5)
    out = np.empty((n_bands, side, side), dtype=np.float32)
    sx = slice(max(x0, 0), min(x0 + side, width))
    sy = slice(max(y0, 0), min(y0 + side, height))
    dx = slice(sx.start - x0, sx.stop - x0)
    dy = slice(sy.start - y0, sy.stop - y0)
    outside = np.ones((side, side), dtype=bool)
    inside = sx.stop > sx.start and sy.stop > sy.start
    if inside:
        outside[dy, dx] = False
    padded = bool(outside.any())
    for b in range(n_bands):
        if inside:
            out[b][dy, dx] = work[b][sy, sx]
        if padded:
            out[b][outside] = filler.values(b, outside, mode, local=False)
    return out, x0, y0, padded
