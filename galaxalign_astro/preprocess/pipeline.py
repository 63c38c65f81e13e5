"""Turn a :class:`~galaxalign_astro.io.Cutout` into a model input, the same way every time.

The :class:`PreprocessConfig` is saved with every model and read back by
inference, so a model always sees images prepared exactly as in training. The
steps, in order:

1. band selection: planes are matched to the model's bands by header name;
   a cube without band names is taken to be in the model's band order; a
   single-band image is used as a grey image (every model band gets that plane,
   with one common stretch scale, so it stays grey); a band the model needs
   and the file lacks is an error for that file;
2. cleaning: NaN/inf pixels (blank, masked) are set to 0, i.e. to the sky of a
   background-subtracted image; a cutout without finite non-zero pixels is an
   error;
3. optional photutils source steps (background, segmentation, recentring,
   masking of neighbours; :mod:`galaxalign_astro.preprocess.sources`);
4. field of view: with a WCS and ``fov_arcsec`` set, a central square of that
   angular size is cut (or the image zero-padded to it), so apparent galaxy sizes
   match training whatever the pixel scale (ours: the paper does not discuss
   mixed pixel scales);
5. stretch to three display planes in [0, 1] (skipped for PNG/JPEG composites);
6. optional framing by the galaxy's own size (``frame``, ours; :mod:`.framing`): the
   central galaxy is found on the display image and a square of ``frame`` times its
   isophotal diameter around it is kept, so a Galaxy Zoo composite (framed by the
   galaxy's size) and a fixed-field survey cutout show the galaxy at the same scale;
7. resize to ``size`` x ``size`` (antialiased bilinear).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ..errors import CutoutError
from ..io.cutouts import (
    MAX_DECODED_ENV,
    Cutout,
    band_list,
    centred_overlap,
    fov_side,
    max_decoded_bytes,
)
from ..utils import check_fields
from .stretch import STRETCHES, apply_stretch

#: model input sides accepted (pixels); the largest open_clip models take 448
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 1024

__all__ = ["PreparedImage", "PreprocessConfig", "prepare", "resize_planes"]


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that turns a cutout into a model input; stored with each model.

    Parameters
    ----------
    bands : tuple of str
        Model bands, bluest first (planes are composited reddest -> red).
    stretch : str
        Name in :data:`~galaxalign_astro.preprocess.stretch.STRETCHES`.
    stretch_params : dict
        Keyword arguments of the stretch.
    size : int
        Side of the square model input in pixels.
    fov_arcsec : float or None
        Angular side of the field given to the model; None uses the whole cutout.
    sources : dict or None
        :class:`~galaxalign_astro.preprocess.sources.SourceConfig` as a dict, or
        None to skip the photutils steps.
    frame : float or None
        Keep a square of this many isophotal diameters of the central galaxy
        (:mod:`~galaxalign_astro.preprocess.framing`, ours); None keeps the field.
    """

    bands: tuple[str, ...] = ("g", "r", "z")
    stretch: str = "dr2_rgb"
    stretch_params: dict[str, Any] = field(default_factory=dict)
    size: int = 64
    fov_arcsec: float | None = 256 * 0.262
    sources: dict[str, Any] | None = None
    frame: float | None = None

    def __post_init__(self) -> None:
        check_fields(self, where="preprocess")
        if self.frame is not None and not 1.0 <= float(self.frame) <= 10.0:
            msg = f"frame must be between 1 and 10 galaxy diameters, got {self.frame}"
            raise ValueError(msg)
        if self.stretch not in STRETCHES:
            msg = f"unknown stretch {self.stretch!r}; known: {', '.join(sorted(STRETCHES))}"
            raise ValueError(msg)
        if not MIN_INPUT_SIZE <= self.size <= MAX_INPUT_SIZE:
            msg = f"input size must be {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} pixels, got {self.size}"
            raise ValueError(msg)
        if self.fov_arcsec is not None and not self.fov_arcsec > 0:
            msg = f"fov_arcsec must be positive (or none), got {self.fov_arcsec}"
            raise ValueError(msg)
        if not self.bands or not all(isinstance(b, str) and b for b in self.bands):
            msg = f"bands must be a non-empty list of band names, got {list(self.bands)}"
            raise ValueError(msg)
        object.__setattr__(self, "bands", tuple(self.bands))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bands"] = list(self.bands)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            msg = f"unknown preprocessing parameters: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass
class PreparedImage:
    """A model input and what was learnt on the way."""

    image: np.ndarray  # (3, size, size) float32 in [0, 1]
    measurements: dict[str, Any] = field(default_factory=dict)


def prepare(cutout: Cutout, config: PreprocessConfig) -> PreparedImage:
    """Apply the configured steps to ``cutout``; raises :class:`CutoutError` naming the file."""
    measurements: dict[str, Any] = {}
    if cutout.kind == "rgb":
        planes = _clean(cutout.data, cutout.path)
        planes = _field_of_view(planes, cutout, config)
        rgb = np.clip(planes, 0, 1)
        if config.frame is not None:
            rgb = _frame(rgb, config.frame, measurements)
        return PreparedImage(resize_planes(rgb, config.size), measurements)

    cube, bands = _select_bands(cutout, config.bands)
    cube = _clean(cube, cutout.path)
    if config.sources is not None:
        from .sources import SourceConfig, process_sources

        cube, found = process_sources(cube, SourceConfig.from_dict(config.sources), bands=bands)
        measurements.update(found.to_dict())
    cube = _field_of_view(cube, cutout, config)
    rgb = apply_stretch(cube, bands, config.stretch, config.stretch_params)
    if config.frame is not None:
        rgb = _frame(rgb, config.frame, measurements)
    return PreparedImage(resize_planes(rgb, config.size), measurements)


def _frame(rgb: np.ndarray, frame: float, measurements: dict[str, Any]) -> np.ndarray:
    from .framing import frame_galaxy

    framed, box = frame_galaxy(rgb, frame=frame)
    measurements["frame_box"] = box
    return framed


def _select_bands(cutout: Cutout, wanted: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    data, have = cutout.data, cutout.bands
    if data.shape[0] == 1:
        # grey image: one plane for every band with a common scale keeps it grey
        ref = have[0] if have[0] in wanted else wanted[len(wanted) // 2]
        return np.repeat(data, len(wanted), axis=0), (ref,) * len(wanted)
    if all(b is None for b in have):
        if len(have) != len(wanted):
            msg = (
                f"{cutout.path}: {len(have)} planes without band names; "
                f"the model needs {len(wanted)} ({', '.join(wanted)})"
            )
            raise CutoutError(msg)
        return data, wanted
    index = {b: i for i, b in enumerate(have) if b is not None}
    missing = [b for b in wanted if b not in index]
    if missing:
        msg = (
            f"{cutout.path}: missing band {', '.join(missing)} "
            f"(file has {band_list(have)}; model needs {', '.join(wanted)})"
        )
        raise CutoutError(msg)
    return data[[index[b] for b in wanted]], wanted


def _clean(cube: np.ndarray, path: str) -> np.ndarray:
    finite = np.isfinite(cube)
    if not finite.all():
        if not finite.any():
            msg = f"{path}: no usable signal (all pixels NaN or infinite)"
            raise CutoutError(msg)
        cube = np.where(finite, cube, 0.0)
    cube = cube.astype(np.float32, copy=False)
    if not np.any(cube):
        msg = f"{path}: no usable signal (all pixels zero)"
        raise CutoutError(msg)
    return cube


def _field_of_view(planes: np.ndarray, cutout: Cutout, config: PreprocessConfig) -> np.ndarray:
    if config.fov_arcsec is None:
        return planes
    scale = cutout.pixel_scale_arcsec()
    if scale is None:
        return planes
    side = fov_side(config.fov_arcsec, scale)
    ny, nx = planes.shape[-2:]
    if side == ny == nx:
        return planes
    if planes.shape[0] * side * side * 4 > max_decoded_bytes() and side > max(ny, nx):
        msg = (
            f'{cutout.path}: the {config.fov_arcsec:g}" field of view is {side}x{side} pixels '
            f'at the WCS pixel scale of {scale:.3g}"/px, a canvas over the decode limit '
            f"({MAX_DECODED_ENV}) for a {nx}x{ny} image; is the WCS right?"
        )
        raise CutoutError(msg)
    out = np.zeros((planes.shape[0], side, side), dtype=np.float32)
    # centre-aligned copy of the overlap: crops large cutouts, zero-pads small ones
    (sy0, dy0, h), (sx0, dx0, w) = centred_overlap(ny, side), centred_overlap(nx, side)
    out[:, dy0 : dy0 + h, dx0 : dx0 + w] = planes[:, sy0 : sy0 + h, sx0 : sx0 + w]
    return out


def resize_planes(planes: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, H, W) float planes to (n, size, size), antialiased when shrinking."""
    from PIL import Image

    if planes.shape[-2:] == (size, size):
        return np.ascontiguousarray(planes, dtype=np.float32)
    out = np.empty((planes.shape[0], size, size), dtype=np.float32)
    for i, plane in enumerate(planes):
        img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        out[i] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out
