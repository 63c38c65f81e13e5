"""Settings, quality flags and measurement schema of the source steps (ours)."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

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
