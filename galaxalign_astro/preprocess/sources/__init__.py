"""Source detection, target selection and clean-up of a flux cutout before the stretch.

:func:`process_sources` takes a ``(n_bands, H, W)`` flux cube, finds the sources in it
with :mod:`photutils.segmentation`, picks the target galaxy (the source at the requested
position, by default the cutout centre), measures it, and optionally

1. subtracts the sky background (:class:`photutils.background.Background2D`),
2. replaces the pixels of neighbouring sources with sky noise,
3. shifts the cube so that the target's centroid lands at the centre,
4. crops a square box scaled to the target's Kron or Petrosian radius.

Which steps run, and with which parameters, is a :class:`SourceConfig`; it is stored
with a model (``to_dict``/``from_dict``) so training and inference preprocess alike.
The measurements are a :class:`SourceMeasurements` whose fields are described by
:data:`MEASUREMENT_COLUMNS` for catalog writers; quality bits are :class:`SourceFlag`.

Everything in this module beyond the use of photutils is **ours** (the paper does not
describe any source preprocessing); ``docs/preprocessing_sources.md`` documents the
rules, defaults and timings.

Pixel conventions follow photutils: ``(x, y)`` with ``x`` the column index, pixel
centres at integers, so the centre of an ``H x W`` cutout is ``((W - 1) / 2, (H - 1) / 2)``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np

from .background import _subtract_background
from .cleanup import _crop, _crop_side, _fill_pixels, _Filler, _mask_neighbours, _shift
from .config import (
    _KRON_SCALE,
    _PETROSIAN_APERTURE,
    MEASUREMENT_COLUMNS,
    MIN_SIZE,
    MeasurementColumn,
    SourceConfig,
    SourceFlag,
    SourceMeasurements,
)
from .detection import (
    _deblend,
    _detect,
    _detection_image,
    _detection_indices,
    _segment_centroid,
    _select_target,
    _smooth,
    _touches_edge,
)
from .measure import _measure, _petrosian_radius
from .sky import _border_stats

__all__ = [
    "MEASUREMENT_COLUMNS",
    "MIN_SIZE",
    "MeasurementColumn",
    "SourceConfig",
    "SourceFlag",
    "SourceMeasurements",
    "process_sources",
]


log = logging.getLogger(__name__)


def process_sources(
    cube: np.ndarray,
    config: SourceConfig | None = None,
    *,
    position: tuple[float, float] | None = None,
    bands: Sequence[str] | None = None,
) -> tuple[np.ndarray, SourceMeasurements]:
    """Detect, measure and clean up the target galaxy of a flux cutout.

    Parameters
    ----------
    cube : array-like
        ``(n_bands, H, W)`` flux cube; NaN and inf pixels are allowed (masked, then
        filled in the returned cube). The input is never modified.
    config : `SourceConfig`, optional
        Steps and parameters; the defaults when `None`.
    position : tuple of float, optional
        ``(x, y)`` pixel position of the target; the cutout centre by default.
    bands : sequence of str, optional
        Band names of the planes; needed only when ``config.detection_bands`` names
        bands.

    Returns
    -------
    cube : `numpy.ndarray`
        float32 cube after the configured steps: ``(n_bands, H, W)``, or
        ``(n_bands, S, S)`` when cropped. When no target is found, only the background
        subtraction and the non-finite fill are applied.
    measurements : `SourceMeasurements`
        Target measurements and flags.

    Raises
    ------
    ValueError
        If ``cube`` is not a non-empty 3-D array, ``position`` is not finite, or
        ``bands`` / ``config.detection_bands`` do not match the cube. Odd but valid
        cubes (empty fields, all-NaN bands, tiny cutouts) never raise; they are flagged.
    """
    out, meas, _ = _process(cube, config or SourceConfig(), position=position, bands=bands)
    return out, meas


class _Clock:
    """Per-step wall-clock timings in milliseconds."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + 1e3 * (now - self._last)
        self._last = now


def _process(
    cube: np.ndarray,
    config: SourceConfig,
    *,
    position: tuple[float, float] | None,
    bands: Sequence[str] | None,
) -> tuple[np.ndarray, SourceMeasurements, dict[str, float]]:
    """:func:`process_sources` plus per-step timings (ms), for benchmarks."""
    clock = _Clock()
    data = np.asarray(cube)
    if data.ndim != 3 or min(data.shape) < 1:
        msg = f"cube must be a non-empty (n_bands, H, W) array, got shape {data.shape}"
        raise ValueError(msg)
    n_bands, height, width = data.shape
    if bands is not None and len(bands) != n_bands:
        msg = f"bands={list(bands)} has {len(bands)} names for a cube of {n_bands} bands"
        raise ValueError(msg)
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    if position is None:
        position = centre
    if len(position) != 2:
        msg = f"position={position!r} must be one (x, y) pixel position"
        raise ValueError(msg)
    px, py = (float(v) for v in position)
    if not (math.isfinite(px) and math.isfinite(py)):
        msg = f"position={position!r} must be finite pixel coordinates (x, y)"
        raise ValueError(msg)
    det_idx = _detection_indices(config.detection_bands, bands, n_bands)

    work = data.astype(np.float32, copy=True)
    bad = ~np.isfinite(work)
    any_bad = bool(bad.any())
    flags = SourceFlag.NONFINITE if any_bad else SourceFlag(0)
    if any_bad:
        work[bad] = 0.0
    level, sigma = _border_stats(work, bad, sigma_clip=config.background_sigma)
    filler = _Filler(data, config.seed, level, sigma)
    clock.lap("stats")

    base = {
        "noise_sigma": tuple(float(s) for s in sigma),
        "background_level": (math.nan,) * n_bands,
        "crop_box": (-0.5, width - 0.5, -0.5, height - 0.5),
    }
    if min(height, width) < MIN_SIZE:
        flags |= SourceFlag.TOO_SMALL
        _fill_pixels(work, bad, filler, config.fill)
        return work, SourceMeasurements(**base, flags=int(flags)), clock.times

    # -- background ------------------------------------------------------------------
    if config.background != "none":
        bkg_levels, subtracted = _subtract_background(work, bad, filler, det_idx, config)
        if subtracted:
            flags |= SourceFlag.BACKGROUND_SUBTRACTED
        base["noise_sigma"] = tuple(float(s) for s in sigma)
        base["background_level"] = tuple(float(v) for v in bkg_levels)
    clock.lap("background")

    if not config.detect:
        _fill_pixels(work, bad, filler, config.fill)
        clock.lap("fill")
        return work, SourceMeasurements(**base, flags=int(flags)), clock.times

    # -- detection -------------------------------------------------------------------
    det, det_bad = _detection_image(work, bad, level, sigma, det_idx)
    smooth = _smooth(det, config.smoothing_fwhm)
    clock.lap("detection_image")
    segm = _detect(smooth, det_bad, config.nsigma, config.npixels)
    clock.lap("detect")

    target = None
    if segm is not None:
        target = _select_target(segm.data, smooth, (px, py), config, (height, width))
    if target is None:
        flags |= SourceFlag.NO_SOURCE
        _fill_pixels(work, bad, filler, config.fill)
        clock.lap("fill")
        n_src = 0 if segm is None else int(segm.n_labels)
        return work, SourceMeasurements(**base, n_sources=n_src, flags=int(flags)), clock.times
    label, offset_pick = target
    if offset_pick:
        flags |= SourceFlag.TARGET_OFFSET

    siblings: list[int] = []
    if config.deblend:
        segm, label, siblings = _deblend(smooth, segm, label, (px, py), config)
        if siblings:
            flags |= SourceFlag.DEBLENDED
    clock.lap("deblend")
    labels = segm.data

    shape = _measure(det, labels, det_bad, label, segm)
    cx, cy = shape.pop("x"), shape.pop("y")
    if not (math.isfinite(cx) and math.isfinite(cy)):
        cx, cy = _segment_centroid(smooth, labels, label)
    shape["petrosian_radius"] = _petrosian_radius(det, labels, det_bad, label, cx, cy)
    if _touches_edge(labels, label):
        flags |= SourceFlag.EDGE
    clock.lap("measure")

    # -- clean-up --------------------------------------------------------------------
    _fill_pixels(work, bad, filler, config.fill)
    n_masked = 0
    if config.mask_neighbours != "none":
        n_masked = _mask_neighbours(work, labels, label, siblings, filler, config)
        if n_masked:
            flags |= SourceFlag.NEIGHBOURS_MASKED
    clock.lap("mask")

    shift_x = shift_y = 0.0
    if config.recenter:
        shift_x, shift_y = centre[0] - cx, centre[1] - cy
        if not config.recenter_subpixel:
            shift_x, shift_y = float(round(shift_x)), float(round(shift_y))
        if max(abs(shift_x), abs(shift_y)) > 1e-3:
            work = _shift(work, shift_x, shift_y, filler, config.fill)
            flags |= SourceFlag.RECENTRED
        else:
            shift_x = shift_y = 0.0
    clock.lap("recenter")

    crop_box = (-0.5 - shift_x, width - 0.5 - shift_x, -0.5 - shift_y, height - 0.5 - shift_y)
    if config.crop != "none":
        if config.crop == "kron":
            radius = _KRON_SCALE * shape["kron_radius"] * shape["semimajor_sigma"]
        else:
            radius = _PETROSIAN_APERTURE * shape["petrosian_radius"]
        side = _crop_side(radius, config, (height, width))
        if side is None:
            flags |= SourceFlag.CROP_FAILED
        else:
            work, x0, y0, padded = _crop(
                work, cx + shift_x, cy + shift_y, side, filler, config.fill
            )
            flags |= SourceFlag.CROPPED
            if padded:
                flags |= SourceFlag.CROP_PADDED
            crop_box = (
                x0 - 0.5 - shift_x,
                x0 + side - 0.5 - shift_x,
                y0 - 0.5 - shift_y,
                y0 + side - 0.5 - shift_y,
            )
    clock.lap("crop")

    base["crop_box"] = tuple(float(v) for v in crop_box)
    meas = SourceMeasurements(
        x_offset=float(cx - centre[0]),
        y_offset=float(cy - centre[1]),
        n_sources=int(segm.n_labels),
        n_neighbours_masked=n_masked,
        shift_x=float(shift_x),
        shift_y=float(shift_y),
        flags=int(flags),
        **shape,
        **base,
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "process_sources timings (ms): %s", {k: round(v, 2) for k, v in clock.times.items()}
        )
    return work, meas, clock.times
