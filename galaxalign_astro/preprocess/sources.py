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

import dataclasses
import enum
import hashlib
import itertools
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

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

_BACKGROUND_MODES = ("none", "auto", "always")
_MASK_MODES = ("none", "noise", "zero")
_FILL_MODES = ("noise", "zero")
_CROP_MODES = ("none", "kron", "petrosian")

#: Cutouts smaller than this (pixels, either side) only get their non-finite pixels filled.
MIN_SIZE = 8

# photutils' default Kron parameters: the Kron ellipse semimajor axis is
# ``_KRON_SCALE * kron_radius * semimajor_sigma`` pixels.
_KRON_PARAMS = (2.5, 1.4, 0.0)
_KRON_SCALE = _KRON_PARAMS[0]
# Petrosian ratio defining the Petrosian radius (SDSS convention) and the aperture
# multiple holding the "total" light.
_PETROSIAN_ETA = 0.2
_PETROSIAN_APERTURE = 2.0
# Dilation (pixels) of the quick source mask handed to Background2D.
_BKG_MASK_DILATE = 5


class SourceFlag(enum.IntFlag):
    """Bit flags of :attr:`SourceMeasurements.flags` (combine with ``|``, test with ``&``)."""

    #: No source at or near the target position (or nothing detected at all).
    NO_SOURCE = 1
    #: The target's segment touches the cutout edge (it may be cut off).
    EDGE = 2
    #: The target was split from a larger segment by deblending.
    DEBLENDED = 4
    #: A background was subtracted from at least one band.
    BACKGROUND_SUBTRACTED = 8
    #: The cube was shifted to put the target's centroid at the centre.
    RECENTRED = 16
    #: At least one neighbouring source was masked.
    NEIGHBOURS_MASKED = 32
    #: The cube was cropped to the target's size.
    CROPPED = 64
    #: The crop box reached beyond the cutout; the outside was filled (see ``fill``).
    CROP_PADDED = 128
    #: The cube had non-finite pixels; they were filled (see ``fill``).
    NONFINITE = 256
    #: The pixel at the target position was background; the nearest source was taken.
    TARGET_OFFSET = 512
    #: The cutout is smaller than :data:`MIN_SIZE` pixels; no step ran.
    TOO_SMALL = 1024
    #: A crop was asked for but the target's radius could not be measured; not cropped.
    CROP_FAILED = 2048


@dataclass(frozen=True)
class SourceConfig:
    """Parameters of :func:`process_sources` (every step is optional; all choices ours).

    The defaults measure the target and change the cube only where it has no usable
    data (non-finite pixels) or still carries a sky pedestal: masking, recentring and
    cropping alter what a morphology model sees (a merging companion is a
    "neighbour") and are opt-in.

    Parameters
    ----------
    background : {'auto', 'none', 'always'}
        Sky subtraction with :class:`~photutils.background.Background2D`. ``'auto'``
        subtracts a band only when its sigma-clipped border median differs from zero by
        more than ``background_auto_threshold`` times the band's noise, i.e. when the
        band still carries a sky pedestal (already background-subtracted survey data,
        such as Legacy Survey cutouts, are left alone).
    background_box_size : int
        Mesh box size in pixels (clamped to the cutout size).
    background_filter_size : int
        Median filter size, in boxes, applied to the mesh. Ours: 1 (no filter), since
        on the 4 x 4 mesh of a 256-pixel cutout a 3 x 3 median flattens sky gradients;
        sources are masked before the mesh is built instead.
    background_sigma : float
        Sigma of the clipping used for the background and noise statistics.
    background_auto_threshold : float
        The ``'auto'`` rule's threshold, in units of the band's noise sigma.
    detect : bool
        Detect sources and measure the target. Needed by ``recenter``,
        ``mask_neighbours`` and ``crop``.
    detection_bands : tuple of str or int, optional
        Bands (names, which need ``bands=`` in :func:`process_sources`, or indices)
        summed into the detection image with inverse-variance weights. `None`: all.
    nsigma : float
        Detection threshold in units of the noise of the unsmoothed detection image,
        applied to the smoothed one (the SExtractor / photutils convention).
    npixels : int
        Minimum number of connected pixels of a source.
    smoothing_fwhm : float
        FWHM in pixels of the Gaussian smoothing the detection image before
        thresholding; 0 disables it.
    deblend : bool
        Deblend the target's segment with :func:`~photutils.segmentation.deblend_sources`
        (only that segment, for speed).
    deblend_nlevels : int
        Number of multi-thresholding levels.
    deblend_contrast : float
        Minimum flux fraction of a deblended component. Ours: 0.005 (SExtractor's
        default) rather than photutils' 0.001, which shreds spiral arms into clumps.
    max_target_distance : float
        When the pixel at the target position is background, the nearest source
        (by centroid) is taken if it lies within this fraction of the cutout's smaller
        side; otherwise the cutout is flagged ``NO_SOURCE``.
    recenter : bool
        Shift the cube so the target's centroid lands at the cutout centre.
    recenter_subpixel : bool
        Also apply the sub-pixel part of the shift (Fourier phase shift); otherwise the shift
        is rounded to whole pixels and the noise is left untouched.
    mask_neighbours : {'none', 'noise', 'zero'}
        Replace the pixels of the other sources (dilated by ``mask_dilate``) with sky
        noise (seeded, same for the same cutout) or with zero.
    mask_siblings : bool
        Also mask the components deblended from the target's own segment. Set it to
        False to keep merging companions.
    mask_dilate : int
        Dilation of the neighbours' segments, in pixels.
    fill : {'noise', 'zero'}
        How pixels without data are filled: non-finite input pixels, the edge vacated
        by recentring, and crop padding. ``'noise'`` draws sky noise at the local sky
        level.
    crop : {'none', 'kron', 'petrosian'}
        Crop a square of side ``2 * crop_factor * R`` centred on the target, where R is
        the semimajor axis of the Kron ellipse (2.5 Kron radii) or twice the Petrosian
        radius (eta = 0.2, circular); the pipeline then resizes it to the model size.
    crop_factor : float
        Half the crop side in units of R.
    crop_min_size : int
        Smallest crop side in pixels.
    seed : int
        Seed of the noise fill; combined with a hash of the cutout, so a given
        cutout is always filled the same way and different cutouts differently.
    """

    background: str = "auto"
    background_box_size: int = 64
    background_filter_size: int = 1
    background_sigma: float = 3.0
    background_auto_threshold: float = 2.0
    detect: bool = True
    detection_bands: tuple[str | int, ...] | None = None
    nsigma: float = 2.0
    npixels: int = 10
    smoothing_fwhm: float = 3.0
    deblend: bool = True
    deblend_nlevels: int = 32
    deblend_contrast: float = 0.005
    max_target_distance: float = 0.15
    recenter: bool = False
    recenter_subpixel: bool = True
    mask_neighbours: str = "none"
    mask_siblings: bool = True
    mask_dilate: int = 2
    fill: str = "noise"
    crop: str = "none"
    crop_factor: float = 1.5
    crop_min_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (
            ("background", _BACKGROUND_MODES),
            ("mask_neighbours", _MASK_MODES),
            ("fill", _FILL_MODES),
            ("crop", _CROP_MODES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                msg = f"SourceConfig.{name}={value!r} is not one of {allowed}"
                raise ValueError(msg)
        if self.detection_bands is not None:
            object.__setattr__(self, "detection_bands", tuple(self.detection_bands))
            if not self.detection_bands:
                msg = "SourceConfig.detection_bands must name at least one band (or be None)"
                raise ValueError(msg)
        positive = {
            "background_box_size": self.background_box_size,
            "background_filter_size": self.background_filter_size,
            "background_sigma": self.background_sigma,
            "background_auto_threshold": self.background_auto_threshold,
            "nsigma": self.nsigma,
            "npixels": self.npixels,
            "deblend_nlevels": self.deblend_nlevels,
            "deblend_contrast": self.deblend_contrast,
            "max_target_distance": self.max_target_distance,
            "crop_factor": self.crop_factor,
            "crop_min_size": self.crop_min_size,
        }
        for name, value in positive.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                msg = f"SourceConfig.{name}={value!r} must be a positive number"
                raise ValueError(msg)
        for name in ("smoothing_fwhm", "mask_dilate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                msg = f"SourceConfig.{name}={value!r} must be a number >= 0"
                raise ValueError(msg)
        for name in (
            "background_box_size",
            "background_filter_size",
            "npixels",
            "deblend_nlevels",
            "mask_dilate",
            "crop_min_size",
            "seed",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                msg = f"SourceConfig.{name}={value!r} must be a non-negative integer"
                raise ValueError(msg)
        if self.deblend_contrast >= 1:
            msg = f"SourceConfig.deblend_contrast={self.deblend_contrast!r} must be below 1"
            raise ValueError(msg)
        if not self.detect:
            needing = [
                name
                for name, on in (
                    ("recenter", self.recenter),
                    ("mask_neighbours", self.mask_neighbours != "none"),
                    ("crop", self.crop != "none"),
                )
                if on
            ]
            if needing:
                msg = f"SourceConfig: {', '.join(needing)} need detect=True"
                raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (tuples become lists)."""
        out = dataclasses.asdict(self)
        if out["detection_bands"] is not None:
            out["detection_bands"] = list(out["detection_bands"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceConfig:
        """Rebuild a config from :meth:`to_dict` output; missing keys take the defaults.

        Raises
        ------
        ValueError
            If ``data`` has keys that are not fields (a typo or a newer format).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            msg = f"SourceConfig.from_dict: unknown keys {unknown}; known keys are {sorted(names)}"
            raise ValueError(msg)
        kwargs = dict(data)
        if kwargs.get("detection_bands") is not None:
            kwargs["detection_bands"] = tuple(kwargs["detection_bands"])
        return cls(**kwargs)


@dataclass(frozen=True)
class MeasurementColumn:
    """Description of one :class:`SourceMeasurements` field, for catalog writers.

    ``length`` is the number of values of a vector column; 0 means one value per band.
    An empty ``unit`` means dimensionless; ``"flux"`` means the cube's own flux unit
    (nanomaggies for Legacy Survey cutouts).
    """

    name: str
    dtype: str
    unit: str
    description: str
    length: int = 1


#: One entry per :class:`SourceMeasurements` field, in field order.
MEASUREMENT_COLUMNS: list[MeasurementColumn] = [
    MeasurementColumn("x_offset", "float32", "pix",
                      "Target centroid x minus the cutout centre (input frame)"),
    MeasurementColumn("y_offset", "float32", "pix",
                      "Target centroid y minus the cutout centre (input frame)"),
    MeasurementColumn("area", "float32", "pix2", "Area of the target's segment"),
    MeasurementColumn("snr", "float32", "",
                      "Isophotal signal-to-noise of the target in the detection image"),
    MeasurementColumn("kron_radius", "float32", "",
                      "Unscaled first-moment Kron radius (photutils), in units of the "
                      "moment ellipse axes"),
    MeasurementColumn("semimajor_sigma", "float32", "pix",
                      "1-sigma semimajor axis of the target's moment ellipse"),
    MeasurementColumn("semiminor_sigma", "float32", "pix",
                      "1-sigma semiminor axis of the target's moment ellipse"),
    MeasurementColumn("ellipticity", "float32", "", "1 - semiminor/semimajor"),
    MeasurementColumn("orientation", "float32", "deg",
                      "Major axis angle counter-clockwise from +x, in [-90, 90)"),
    MeasurementColumn("petrosian_radius", "float32", "pix",
                      "Circular Petrosian radius (eta = 0.2) of the target"),
    MeasurementColumn("n_sources", "int16", "", "Number of sources detected (after deblending)"),
    MeasurementColumn("n_neighbours_masked", "int16", "", "Number of sources masked"),
    MeasurementColumn("shift_x", "float32", "pix", "x shift applied by recentring"),
    MeasurementColumn("shift_y", "float32", "pix", "y shift applied by recentring"),
    MeasurementColumn("crop_box", "float32", "pix",
                      "x_min, x_max, y_min, y_max: pixel edges of the returned cube in the "
                      "input cutout's pixel coordinates", length=4),
    MeasurementColumn("background_level", "float32", "flux",
                      "Median of the background subtracted from each band (0: none; "
                      "NaN: step off)", length=0),
    MeasurementColumn("noise_sigma", "float32", "flux",
                      "Sky noise sigma of each band", length=0),
    MeasurementColumn("flags", "int32", "", "SourceFlag bits (see the documentation)"),
]  # fmt: skip


@dataclass(frozen=True)
class SourceMeasurements:
    """What :func:`process_sources` measured; NaN where not measured.

    Fields are described in :data:`MEASUREMENT_COLUMNS`; ``flags`` holds
    :class:`SourceFlag` bits.
    """

    x_offset: float = math.nan
    y_offset: float = math.nan
    area: float = math.nan
    snr: float = math.nan
    kron_radius: float = math.nan
    semimajor_sigma: float = math.nan
    semiminor_sigma: float = math.nan
    ellipticity: float = math.nan
    orientation: float = math.nan
    petrosian_radius: float = math.nan
    n_sources: int = 0
    n_neighbours_masked: int = 0
    shift_x: float = 0.0
    shift_y: float = 0.0
    crop_box: tuple[float, float, float, float] = (math.nan,) * 4
    background_level: tuple[float, ...] = ()
    noise_sigma: tuple[float, ...] = ()
    flags: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Field name to value (vector fields as lists), in :data:`MEASUREMENT_COLUMNS` order."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @property
    def source_flags(self) -> SourceFlag:
        """``flags`` as a :class:`SourceFlag`."""
        return SourceFlag(self.flags)


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


# -- helpers -------------------------------------------------------------------------


def _detection_indices(
    requested: tuple[str | int, ...] | None, bands: Sequence[str] | None, n_bands: int
) -> list[int]:
    """Plane indices of the detection bands."""
    if requested is None:
        return list(range(n_bands))
    out = []
    for item in requested:
        if isinstance(item, str):
            if bands is None or item not in bands:
                msg = (
                    f"detection band {item!r} is not among the cube's bands "
                    f"{None if bands is None else list(bands)}"
                )
                raise ValueError(msg)
            out.append(list(bands).index(item))
        else:
            index = int(item)
            if not -n_bands <= index < n_bands:
                msg = f"detection band index {item!r} is out of range for {n_bands} bands"
                raise ValueError(msg)
            out.append(index % n_bands)
    return sorted(set(out))


def _clipped_stats(values: np.ndarray, sigma_clip: float) -> tuple[float, float]:
    """Median and sigma (from the interquartile range) of finite ``values``, recomputed
    once after clipping at ``sigma_clip`` sigma; NaN when there are no finite values."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return math.nan, math.nan
    med = std = 0.0
    for _ in range(2):
        n = v.size
        kth = [(n - 1) // 4, (n - 1) // 2, 3 * (n - 1) // 4]
        q25, med, q75 = (float(q) for q in np.partition(v, kth)[kth])
        std = (q75 - q25) / 1.349
        if std == 0.0:
            # Half the values identical (quantised or zero-filled data).
            std = float(np.std(v))
            break
        keep = np.abs(v - med) <= sigma_clip * std
        if keep.all():
            break
        v = v[keep]
    return med, std


def _border(shape: tuple[int, ...]) -> np.ndarray:
    """Mask of the cutout border, 1/16 of the smaller side wide (at least 1 pixel)."""
    height, width = shape
    w = max(1, min(height, width) // 16)
    ring = np.ones((height, width), dtype=bool)
    if height > 2 * w and width > 2 * w:
        ring[w:-w, w:-w] = False
    return ring


def _border_stats(
    cube: np.ndarray, bad: np.ndarray, *, sigma_clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clipped sky level and noise sigma of each band, from a border 1/16 of the side wide."""
    n_bands = cube.shape[0]
    ring = _border(cube.shape[1:])
    level = np.full(n_bands, np.nan)
    sigma = np.full(n_bands, np.nan)
    for b in range(n_bands):
        vals = cube[b][ring & ~bad[b]]
        level[b], sigma[b] = _clipped_stats(vals, sigma_clip)
    return level, sigma


def _valid_sigma(sigma: np.ndarray) -> np.ndarray:
    return np.isfinite(sigma) & (sigma > 0)


def _subtract_background(
    work: np.ndarray,
    bad: np.ndarray,
    filler: _Filler,
    det_idx: list[int],
    config: SourceConfig,
) -> tuple[np.ndarray, bool]:
    """Subtract ``Background2D`` in place from the bands that need it.

    Updates ``filler`` (for subtracted bands: sky level 0, the noise sigma re-measured
    on the border, and the ``Background2D`` objects for local noise). Returns the median
    of the background subtracted from each band (0 for bands left alone) and whether
    any band was subtracted.
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D

    n_bands, height, width = work.shape
    level, sigma = filler.level, filler.sigma
    ok = _valid_sigma(sigma)
    if config.background == "always":
        todo = np.isfinite(level)
    else:
        todo = ok & (np.abs(level) > config.background_auto_threshold * np.where(ok, sigma, 1))
    levels = np.zeros(n_bands)
    if not todo.any():
        return levels, False

    # Quick source mask so galaxies do not bias the mesh (Background2D interpolates over
    # boxes mostly covered by it). The sky is first approximated by a plane fitted to
    # the border, so a gradient is not mistaken for a source.
    flat = np.zeros_like(work)
    for i in det_idx:
        flat[i] = work[i] - _border_plane(work[i], bad[i], sigma_clip=config.background_sigma)
    det, _ = _detection_image(flat, bad, np.zeros(n_bands), sigma, det_idx)
    src = _smooth(det, config.smoothing_fwhm) > config.nsigma
    src = ndimage.maximum_filter(src, size=2 * _BKG_MASK_DILATE + 1)
    box = int(min(config.background_box_size, height, width))
    clip = SigmaClip(sigma=config.background_sigma, maxiters=5)
    for b in np.flatnonzero(todo):
        mask = bad[b] | src
        if mask.mean() > 0.9:
            mask = bad[b]
        try:
            bkg = Background2D(
                work[b],
                box,
                mask=mask,
                filter_size=config.background_filter_size,
                sigma_clip=clip,
            )
            sky = _mesh_to_image(bkg.background_mesh, bkg.box_size, (height, width))
            rms = float(bkg.background_rms_median)
        except ValueError as exc:
            # Too few unmasked pixels for a mesh: fall back to the clipped border level.
            log.debug("Background2D failed on band %d (%s); subtracting a constant", b, exc)
            sky = np.full((height, width), level[b], dtype=np.float32)
            rms = sigma[b]
        else:
            filler.backgrounds[int(b)] = bkg
        work[b] -= sky
        work[b][bad[b]] = 0.0
        levels[b] = float(np.median(sky))
        level[b] = 0.0
        # The border noise after subtraction; the mesh rms also holds the sky's
        # variation within a box.
        _, border_sigma = _clipped_stats(work[b][_border(work.shape[1:]) & ~bad[b]],
                                         config.background_sigma)  # fmt: skip
        if math.isfinite(border_sigma) and border_sigma > 0:
            sigma[b] = border_sigma
        elif math.isfinite(rms) and rms > 0:
            sigma[b] = rms
    return levels, True


def _mesh_to_image(mesh: Any, box_size: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Full-size image from a ``Background2D`` mesh by bilinear interpolation.

    Mesh values sit at the box centres (photutils' geometry) and are interpolated
    linearly, and extrapolated linearly over the outer half boxes. Ours: photutils'
    own cubic zoom holds the outer half boxes flat, which leaves a sky gradient
    un-subtracted along the edges, and costs 3x more.
    """
    image = np.asarray(getattr(mesh, "value", mesh), dtype=np.float64)
    box = np.broadcast_to(np.asarray(box_size, dtype=float), (2,))
    for axis in (0, 1):
        n_mesh = image.shape[axis]
        if n_mesh == 1:
            image = np.repeat(image, shape[axis], axis=axis)
            continue
        u = (np.arange(shape[axis]) + 0.5) / box[axis] - 0.5
        lo = np.clip(np.floor(u).astype(int), 0, n_mesh - 2)
        t = u - lo
        first = np.take(image, lo, axis=axis)
        second = np.take(image, lo + 1, axis=axis)
        t = t[:, None] if axis == 0 else t[None, :]
        image = first + t * (second - first)
    return image.astype(np.float32)


def _border_plane(image: np.ndarray, bad: np.ndarray, *, sigma_clip: float) -> np.ndarray:
    """Plane ``a + b x + c y`` fitted to medians of 8 chunks along each border side.

    Chunk medians make the fit robust to sources on the border and cheap; the chunks
    farthest from the first fit (beyond ``sigma_clip`` robust sigmas) are dropped once.
    """
    height, width = image.shape
    w = max(1, min(height, width) // 16)
    data = np.where(bad, np.nan, image)
    points = []
    for side in ("bottom", "top", "left", "right"):
        length = width if side in ("bottom", "top") else height
        edges = np.linspace(0, length, 9).astype(int)
        for lo, hi in itertools.pairwise(edges.tolist()):
            if hi <= lo:
                continue
            mid = (lo + hi - 1) / 2.0
            if side == "bottom":
                chunk, x, y = data[:w, lo:hi], mid, (w - 1) / 2.0
            elif side == "top":
                chunk, x, y = data[-w:, lo:hi], mid, height - (w + 1) / 2.0
            elif side == "left":
                chunk, x, y = data[lo:hi, :w], (w - 1) / 2.0, mid
            else:
                chunk, x, y = data[lo:hi, -w:], width - (w + 1) / 2.0, mid
            finite = chunk[np.isfinite(chunk)]
            if finite.size:
                points.append((x, y, float(np.median(finite))))
    if len(points) < 3:
        return np.zeros_like(image)
    pts = np.asarray(points)
    design = np.column_stack([np.ones(len(pts)), pts[:, 0], pts[:, 1]])
    coef = np.linalg.lstsq(design, pts[:, 2], rcond=None)[0]
    resid = pts[:, 2] - design @ coef
    scale = 1.4826 * float(np.median(np.abs(resid)))
    keep = np.abs(resid) <= sigma_clip * scale if scale > 0 else np.ones(len(pts), bool)
    if 3 <= keep.sum() < len(pts):
        coef = np.linalg.lstsq(design[keep], pts[keep, 2], rcond=None)[0]
    col = np.arange(width, dtype=np.float32)[None, :]
    row = np.arange(height, dtype=np.float32)[:, None]
    return (coef[0] + coef[1] * col + coef[2] * row).astype(np.float32)


def _detection_image(
    work: np.ndarray,
    bad: np.ndarray,
    level: np.ndarray,
    sigma: np.ndarray,
    det_idx: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weighted sum of the detection bands, in units of its noise sigma.

    ``D = sum_b (I_b - sky_b) / sigma_b**2 / sqrt(sum_b 1 / sigma_b**2)``, so that D has
    unit noise for independent bands. Bands without a usable sigma are left out; a pixel
    non-finite in any used band is masked (and 0 in D).
    """
    height, width = work.shape[1:]
    use = [b for b in det_idx if _valid_sigma(sigma[b : b + 1])[0] and np.isfinite(level[b])]
    det = np.zeros((height, width), dtype=np.float32)
    det_bad = np.zeros((height, width), dtype=bool)
    if not use:
        det_bad[:] = True
        return det, det_bad
    weights = np.array([1.0 / sigma[b] ** 2 for b in use])
    norm = 1.0 / math.sqrt(weights.sum())
    for b, wgt in zip(use, weights, strict=True):
        det += np.float32(wgt * norm) * (work[b] - np.float32(level[b]))
        det_bad |= bad[b]
    det[det_bad] = 0.0
    return det, det_bad


def _gaussian_kernel_1d(fwhm: float) -> np.ndarray:
    """Pixel-integrated 1-D Gaussian; its outer product is astropy's
    ``Gaussian2DKernel(fwhm / 2.3548, mode='integrate')`` truncated at +-2 FWHM."""
    from scipy.special import erf

    std = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    half = max(1, math.ceil(2.0 * fwhm))
    edges = np.arange(-half - 0.5, half + 1.0, 1.0)
    cdf = 0.5 * (1.0 + erf(edges / (math.sqrt(2.0) * std)))
    kernel = np.diff(cdf)
    return (kernel / kernel.sum()).astype(np.float32)


def _smooth(image: np.ndarray, fwhm: float) -> np.ndarray:
    """Gaussian smoothing as two separable 1-D passes (~10x faster than a 2-D convolve)."""
    if fwhm <= 0:
        return image
    kernel = _gaussian_kernel_1d(fwhm)
    out = ndimage.convolve1d(image, kernel, axis=0, mode="reflect")
    return ndimage.convolve1d(out, kernel, axis=1, mode="reflect")


def _detect(smooth: np.ndarray, det_bad: np.ndarray, nsigma: float, npixels: int):
    """``detect_sources`` on the smoothed detection image; `None` when nothing is found."""
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    if det_bad.all():
        return None
    with warnings.catch_warnings():
        # An empty field is an expected outcome here, reported through the flags.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        return detect_sources(smooth, nsigma, npixels, mask=det_bad if det_bad.any() else None)


def _label_centroids(smooth: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux-weighted centroids (x, y) of labels 1..max (NaN for absent labels)."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    weight = np.clip(smooth, 0.0, None).ravel().astype(np.float64)
    yy, xx = np.indices(labels.shape)
    total = np.bincount(flat, weights=weight, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(flat, weights=weight * xx.ravel(), minlength=n) / total
        cy = np.bincount(flat, weights=weight * yy.ravel(), minlength=n) / total
    return cx, cy


def _segment_centroid(smooth: np.ndarray, labels: np.ndarray, label: int) -> tuple[float, float]:
    cx, cy = _label_centroids(smooth, labels)
    return float(cx[label]), float(cy[label])


def _touches_edge(labels: np.ndarray, label: int) -> bool:
    edges = (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1])
    return any(bool((edge == label).any()) for edge in edges)


def _pixel_label(labels: np.ndarray, x: float, y: float) -> int:
    ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
    if 0 <= iy < labels.shape[0] and 0 <= ix < labels.shape[1]:
        return int(labels[iy, ix])
    return 0


def _nearest_label(
    smooth: np.ndarray,
    labels: np.ndarray,
    candidates: Sequence[int] | np.ndarray,
    x: float,
    y: float,
) -> tuple[int, float]:
    cx, cy = _label_centroids(smooth, labels)
    cand = np.asarray(candidates)
    dist = np.hypot(cx[cand] - x, cy[cand] - y)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    i = int(np.argmin(dist))
    return int(cand[i]), float(dist[i])


def _select_target(
    labels: np.ndarray,
    smooth: np.ndarray,
    position: tuple[float, float],
    config: SourceConfig,
    shape: tuple[int, int],
) -> tuple[int, bool] | None:
    """Segment at the position, else the nearest by centroid within the allowed distance.

    Returns the label and whether the nearest-segment rule was used, or `None`.
    """
    label = _pixel_label(labels, *position)
    if label:
        return label, False
    present = np.unique(labels)
    present = present[present > 0]
    if present.size == 0:
        return None
    label, dist = _nearest_label(smooth, labels, present, *position)
    if dist > config.max_target_distance * min(shape):
        log.debug("nearest source is %.1f px from the target position: none taken", dist)
        return None
    return label, True


def _deblend(smooth, segm, label: int, position: tuple[float, float], config: SourceConfig):
    """Deblend only the target's segment; return the new map, target label and siblings."""
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.segmentation import deblend_sources

    if segm.get_area(label) < 2 * config.npixels:
        return segm, label, []
    with warnings.catch_warnings():
        # photutils warns when it falls back to linear thresholds for a faint segment;
        # that is an implementation detail of deblending, not a user problem.
        warnings.simplefilter("ignore", AstropyUserWarning)
        new = deblend_sources(
            smooth,
            segm,
            config.npixels,
            labels=[label],
            n_levels=config.deblend_nlevels,
            contrast=config.deblend_contrast,
            mode="exponential",
            relabel=False,
            progress_bar=False,
        )
    children = [int(c) for c in new.parent_to_deblended_labels.get(label, [])]
    if len(children) < 2:
        return new, (children[0] if children else label), []
    target = _pixel_label(new.data, *position)
    if target not in children:
        target, _ = _nearest_label(smooth, new.data, children, *position)
    return new, target, [c for c in children if c != target]


def _measure(det: np.ndarray, labels: np.ndarray, det_bad: np.ndarray, label: int, segm):
    """photutils ``SourceCatalog`` shape measurements of the target on the unsmoothed image."""
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.segmentation import SourceCatalog

    with warnings.catch_warnings():
        # Degenerate shapes (e.g. a one-pixel-wide segment) give NaN and a warning;
        # NaN is what the measurements report for "not measurable".
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        cat = SourceCatalog(
            det, segm, mask=det_bad if det_bad.any() else None, kron_params=_KRON_PARAMS
        )
        src = cat.select_label(label)
        values = {
            "x": src.x_centroid,
            "y": src.y_centroid,
            "area": src.area,
            "flux": src.segment_flux,
            "kron_radius": src.kron_radius,
            "semimajor_sigma": src.semimajor_axis,
            "semiminor_sigma": src.semiminor_axis,
            "ellipticity": src.ellipticity,
            "orientation": src.orientation,
        }
    out = {k: float(getattr(v, "value", v)) for k, v in values.items()}
    flux = out.pop("flux")
    out["snr"] = flux / math.sqrt(out["area"]) if out["area"] > 0 else math.nan
    if math.isfinite(out["orientation"]):
        out["orientation"] = (out["orientation"] + 90.0) % 180.0 - 90.0
    return out


def _petrosian_radius(
    det: np.ndarray, labels: np.ndarray, det_bad: np.ndarray, label: int, cx: float, cy: float
) -> float:
    """Circular Petrosian radius (eta = 0.2) around (cx, cy), other sources excluded.

    eta(r) is the mean surface brightness in the annulus 0.8 r - 1.25 r over the mean
    within r (the SDSS definition); the radius is the first crossing of 0.2,
    interpolated linearly. NaN when eta never crosses inside the cutout.
    """
    if not (math.isfinite(cx) and math.isfinite(cy)):
        return math.nan
    use = ~det_bad & ((labels == 0) | (labels == label))
    yy, xx = np.nonzero(use)
    r = np.hypot(xx - cx, yy - cy)
    step = 0.5
    n_bins = int(r.max() / step) + 2 if r.size else 0
    if n_bins < 8:
        return math.nan
    idx = np.minimum((r / step).astype(np.int64), n_bins - 1)
    flux = np.concatenate([[0.0], np.cumsum(np.bincount(idx, weights=det[use], minlength=n_bins))])
    area = np.concatenate([[0.0], np.cumsum(np.bincount(idx, minlength=n_bins))]).astype(float)
    edges = np.arange(n_bins + 1) * step

    radii = np.arange(1.0, edges[-1] / 1.25, step)
    if radii.size < 2:
        return math.nan
    f_in, a_in = np.interp(radii, edges, flux), np.interp(radii, edges, area)
    f_lo, a_lo = np.interp(0.8 * radii, edges, flux), np.interp(0.8 * radii, edges, area)
    f_hi, a_hi = np.interp(1.25 * radii, edges, flux), np.interp(1.25 * radii, edges, area)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_in = f_in / a_in
        eta = ((f_hi - f_lo) / (a_hi - a_lo)) / mean_in
    valid = np.isfinite(eta) & (mean_in > 0)
    below = np.flatnonzero(valid & (eta < _PETROSIAN_ETA))
    if below.size == 0 or below[0] == 0 or not valid[below[0] - 1]:
        return math.nan
    i = below[0]
    e0, e1 = eta[i - 1], eta[i]
    frac = (e0 - _PETROSIAN_ETA) / (e0 - e1) if e0 != e1 else 0.0
    return float(radii[i - 1] + frac * (radii[i] - radii[i - 1]))


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
