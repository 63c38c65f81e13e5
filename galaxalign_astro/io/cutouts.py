"""Read one cutout file into a :class:`Cutout` (planes, band names, WCS).

FITS layouts understood (see the user guide):

* a 2-D image in the primary HDU or the first image extension (one band);
* a (bands, H, W) cube, band names from ``BANDS`` (e.g. ``'grz'``) or ``BAND0``,
  ``BAND1``... as the Legacy Survey ``fits-cutout`` service writes them;
* one band per image extension, each named by a ``BAND`` or ``FILTER`` keyword;
* gzip files (``.fits.gz``), tile-compressed images, integer images with
  ``BSCALE``/``BZERO`` and ``BLANK`` (astropy applies the scaling and gives NaN
  for blanks).

A single plain image HDU (the Legacy Survey ``fits-cutout`` layout, and most cutouts
users write) is read by :mod:`.fastfits` in one header parse and one read, with its
TAN WCS built from the keywords; every other layout goes through astropy.

PNG/JPEG/TIFF files are already-stretched colour composites: they come back with
``kind='rgb'`` and skip the stretch, but not the resizing. Their pixels are scaled to
[0, 1] by the file's bit depth (8, 16 or 32 bits), so 16-bit images keep their range.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CutoutError
from .fastfits import PlainFits, plain_tan_wcs, read_plain_fits

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_DECODED_ENV",
    "Cutout",
    "centred_overlap",
    "expand_inputs",
    "fov_side",
    "max_decoded_bytes",
    "normalise_band",
    "read_cutout",
    "wcs_pixel_scale_arcsec",
]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_KNOWN_BANDS = ("u", "g", "r", "i", "z", "y", "w1", "w2", "w3", "w4", "nuv", "fuv")
#: environment variable of the decode limit (MiB of float32 pixels; see `read_cutout`)
MAX_DECODED_ENV = "GALAXALIGN_ASTRO_MAX_DECODED_MB"
#: smallest width and height of a usable cutout (the smallest model input size, too):
#: a 1x1 or 2x2 image resized to the model's input classifies as an arbitrary class
MIN_SIDE = 8


@dataclass
class Cutout:
    """A cutout as read from disk, before any preprocessing.

    Attributes
    ----------
    data : ndarray
        (n_planes, H, W) float32. Fluxes for ``kind='flux'``; values in [0, 1]
        in R, G, B order for ``kind='rgb'``.
    bands : tuple of str or None
        Normalised band name of each plane (``None`` where the file does not say).
    kind : {'flux', 'rgb'}
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the image plane, when the file has one.
    path : str
    """

    data: np.ndarray
    bands: tuple[str | None, ...]
    kind: Literal["flux", "rgb"]
    wcs: Any
    path: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[-2]), int(self.data.shape[-1])

    def centre_radec(self) -> tuple[float, float]:
        """RA, Dec (deg) of the image centre from the WCS, NaN without one."""
        if self.wcs is None:
            return float("nan"), float("nan")
        ny, nx = self.shape
        try:
            world = self.wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)
        except Exception:  # a WCS that cannot transform is treated as absent
            return float("nan"), float("nan")
        return float(world[0]), float(world[1])

    def pixel_scale_arcsec(self) -> float | None:
        """Mean pixel scale in arcsec from the WCS, or None without one."""
        return wcs_pixel_scale_arcsec(self.wcs)


def wcs_pixel_scale_arcsec(wcs) -> float | None:
    """Mean pixel scale in arcsec of a celestial WCS; None without one or when unusable."""
    if wcs is None:
        return None
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        scales = proj_plane_pixel_scales(wcs)
    except Exception:
        return None
    value = float(np.mean(np.abs(scales)) * 3600.0)
    return value if np.isfinite(value) and value > 0 else None


def fov_side(fov_arcsec: float, scale_arcsec: float) -> int:
    """Pixels a side of a ``fov_arcsec`` field at ``scale_arcsec`` per pixel (at least 1)."""
    return max(1, round(fov_arcsec / scale_arcsec))


def centred_overlap(n: int, side: int) -> tuple[int, int, int]:
    """``(source start, target start, length)`` of the centre-aligned overlap of an axis of
    ``n`` pixels and a square of ``side``: crops a longer axis, pads a shorter one."""
    return max(0, (n - side) // 2), max(0, (side - n) // 2), min(n, side)


def normalise_band(value: object) -> str | None:
    """Band name from a header value: ``DECam g`` or ``g DECam SDSS c0001`` -> ``g``."""
    if value is None:
        return None
    text = str(value).strip().lower().replace("'", "")
    if not text:
        return None
    if text in _KNOWN_BANDS:
        return text
    for token in re.split(r"[\s_\-.,/]+", text):
        if token in _KNOWN_BANDS:
            return token
    return text


def read_cutout(
    path: str | os.PathLike[str],
    *,
    hdu: int | str | None = None,
    fast: bool = True,
    fov_arcsec: float | None = None,
    max_bytes: int | None = None,
) -> Cutout:
    """Read a FITS, PNG or JPEG cutout.

    Parameters
    ----------
    path : path-like
    hdu : int or str, optional
        FITS HDU to read (index or EXTNAME); by default the layout is detected.
    fast : bool
        Read a single plain image HDU with :mod:`.fastfits` (same result, several
        times faster); False sends every FITS file through astropy's general reader.
    fov_arcsec : float, optional
        The field of view the caller keeps (``PreprocessConfig.fov_arcsec``). An
        image over ``max_bytes`` is then read by the central section of that size
        only (the part the preprocessing keeps; tile-compressed images decompress
        just the tiles it needs), and its WCS describes that section.
    max_bytes : int, optional
        Largest image read whole, in bytes of float32 planes; default
        :func:`max_decoded_bytes` (``GALAXALIGN_ASTRO_MAX_DECODED_MB``, 128 MiB).
        Larger ones without a field of view to cut are refused (one-line error), so
        a small compressed file cannot claim gigabytes of memory.

    Raises
    ------
    CutoutError
        With a one-line message naming the file, when it cannot be used: unreadable,
        smaller than ``MIN_SIDE`` x ``MIN_SIDE`` pixels, or constant (no signal).
    """
    name = str(path)
    lower = name.lower()
    if not os.path.exists(name):
        if os.path.islink(name):
            msg = f"{name}: broken symbolic link (to {os.readlink(name)}, which does not exist)"
        else:
            msg = f"{name}: no such file"
        raise CutoutError(msg)
    if os.path.getsize(name) == 0:
        msg = f"{name}: empty file"
        raise CutoutError(msg)
    if lower.endswith(IMAGE_SUFFIXES):
        cutout = _read_image(name)
    else:
        limit = max_decoded_bytes() if max_bytes is None else int(max_bytes)
        cutout = _read_fits(name, hdu=hdu, fast=fast, fov_arcsec=fov_arcsec, max_bytes=limit)
    _check_not_degenerate(cutout)
    return cutout


def _check_not_degenerate(cutout: Cutout) -> None:
    """Refuse cutouts that a model would classify as an arbitrary class.

    Images with no finite pixel at all are left to the preprocessing, which names
    that case ("no usable signal").
    """
    ny, nx = cutout.shape
    if min(ny, nx) < MIN_SIDE:
        msg = f"{cutout.path}: image is {nx}x{ny} pixels; at least {MIN_SIDE}x{MIN_SIDE} needed"
        raise CutoutError(msg)
    levels = set()
    for plane in cutout.data:
        finite = plane[np.isfinite(plane)]
        if finite.size == 0:
            continue
        if finite.min() != finite.max():
            return
        levels.add(float(finite[0]))
    if len(levels) == 1:
        msg = f"{cutout.path}: constant image: no signal (every pixel is {levels.pop():g})"
        raise CutoutError(msg)
    if levels:
        msg = f"{cutout.path}: constant image: no signal (every plane has one value)"
        raise CutoutError(msg)


def _read_image(path: str) -> Cutout:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            planes = _image_planes(img)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        msg = f"{path}: not a readable image ({exc})"
        raise CutoutError(msg) from None
    return Cutout(planes, ("R", "G", "B"), "rgb", None, path)


def _image_planes(img) -> np.ndarray:
    """Return an image as (3, H, W) float32 in [0, 1], scaled by its real bit depth.

    ``Image.convert("RGB")`` clips the high-depth single-band modes (16-bit grey PNG or
    TIFF: ``I;16``; 32-bit integer: ``I``; float: ``F``) at 255 instead of scaling
    them, so those are scaled here. 16-bit RGB PNGs already come out of Pillow as
    8-bit ``RGB`` (the high byte of each sample), which is scaled correctly.
    """
    mode = img.mode
    if mode.startswith("I;16"):
        grey = np.asarray(img, dtype=np.float64) / 65535.0
    elif mode == "I":
        grey = np.asarray(img, dtype=np.float64) / (2.0 ** _bits_per_sample(img) - 1.0)
    elif mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        finite = grey[np.isfinite(grey)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        # a float image has no bit depth: [0, 1] is the convention; other ranges are
        # mapped onto it rather than clipped
        if (low < 0.0 or high > 1.0) and high > low:
            grey = (grey - low) / (high - low)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        return np.moveaxis(rgb, -1, 0).copy()
    grey = np.clip(grey, 0.0, 1.0).astype(np.float32)
    return np.repeat(grey[None], 3, axis=0)


def _bits_per_sample(img) -> int:
    """Bits per sample of a mode ``I`` image: the TIFF tag, 16 for PNG, else 32."""
    tags = getattr(img, "tag_v2", None)
    if tags is not None:
        bits = tags.get(258)  # BitsPerSample
        if isinstance(bits, tuple):
            bits = bits[0] if bits else None
        if isinstance(bits, int) and 1 <= bits <= 32:
            return bits
    return 16 if img.format == "PNG" else 32


def max_decoded_bytes() -> int:
    """The decode limit: ``$GALAXALIGN_ASTRO_MAX_DECODED_MB`` MiB, by default 128."""
    text = os.environ.get(MAX_DECODED_ENV, "")
    try:
        value = float(text) if text else 128.0
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        msg = f"{MAX_DECODED_ENV}={text!r}: expected a positive number of MiB"
        raise ValueError(msg)
    return int(value * 2**20)


def _read_fits(
    path: str, *, hdu: int | str | None, fast: bool, fov_arcsec: float | None, max_bytes: int
) -> Cutout:
    if fast and hdu is None and not path.lower().endswith((".gz", ".fz")):
        plain = read_plain_fits(path, max_bytes=max_bytes)
        if plain is not None:
            return _plain_cutout(plain, path)
    return _read_fits_astropy(path, hdu=hdu, fov_arcsec=fov_arcsec, max_bytes=max_bytes)


def _plain_cutout(plain: PlainFits, path: str) -> Cutout:
    """The cutout of a single plain image HDU, as :func:`_read_fits_astropy` makes it."""
    data = plain.data
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 2:
        bands: tuple[str | None, ...] = (_band_keyword(plain.cards),)
        data = data[None]
    else:
        bands = _cube_bands(plain.cards, data.shape[0])
    wcs = plain_tan_wcs(plain) if "CTYPE1" in plain.cards else None
    if wcs is None and "CTYPE1" in plain.cards:
        from astropy.io import fits

        wcs = _celestial_wcs(fits.Header.fromstring(plain.header_bytes))
    return Cutout(np.array(data, dtype=np.float32), bands, "flux", wcs, path)


def _read_fits_astropy(
    path: str, *, hdu: int | str | None, fov_arcsec: float | None = None, max_bytes: int
) -> Cutout:
    """Any FITS layout astropy reads (see the module docstring).

    Layouts are told apart by the headers alone; pixels are read once the planes
    are chosen, whole when they fit in ``max_bytes`` (as float32), else only the
    central ``fov_arcsec`` section, when a WCS gives one, else refused.
    """
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    try:
        with warnings.catch_warnings():
            # truncated or non-standard files raise below; astropy's own warnings
            # about fixable header cards are not the user's business here
            warnings.simplefilter("ignore", AstropyUserWarning)
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                hdus, bands, header = _select_planes(hdul, path, hdu)
                wcs = _celestial_wcs(header)
                data, wcs = _read_pixels(hdus, wcs, path, fov_arcsec, max_bytes)
    except CutoutError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"{path}: not a readable FITS file ({reason})"
        raise CutoutError(msg) from None
    return Cutout(data, bands, "flux", wcs, path)


def _plane_shape(h) -> tuple[int, ...]:
    """The HDU's data shape from its header, leading length-1 axes of >3-D data dropped."""
    shape = tuple(int(n) for n in h.shape)
    while len(shape) > 3 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _read_pixels(hdus, wcs, path: str, fov_arcsec: float | None, max_bytes: int):
    """(n_planes, H, W) float32 of the chosen HDUs, and the WCS of what was read."""
    shape = _plane_shape(hdus[0])
    n_planes = len(hdus) if len(hdus) > 1 else (1 if len(shape) == 2 else shape[0])
    ny, nx = shape[-2:]
    declared = n_planes * ny * nx * 4
    if declared <= max_bytes:
        if len(hdus) > 1:
            return np.array([h.data for h in hdus], dtype=np.float32), wcs
        data = np.asarray(hdus[0].data).reshape(shape)
        return np.array(data if data.ndim == 3 else data[None], dtype=np.float32), wcs
    window = _fov_window(wcs, fov_arcsec, ny, nx)
    size = f"{nx}x{ny}" + (f"x{n_planes}" if n_planes > 1 else "")
    limit = f"{max_bytes / 2**20:.0f} MiB"
    if window is None:
        msg = (
            f"{path}: image is {size} ({declared / 2**20:.0f} MiB as float32), over the "
            f"decode limit of {limit} ({MAX_DECODED_ENV}), and without a WCS field of view "
            "to cut; cut it first or raise the limit"
        )
        raise CutoutError(msg)
    if path.lower().endswith(".gz"):
        msg = (
            f"{path}: gzip-compressed image of {size} ({declared / 2**20:.0f} MiB as float32), "
            f"over the decode limit of {limit} ({MAX_DECODED_ENV}); gzip cannot be read by "
            "section: decompress it (or tile-compress it with fpack) or raise the limit"
        )
        raise CutoutError(msg)
    y0, y1, x0, x1 = window
    if n_planes * (y1 - y0) * (x1 - x0) * 4 > max_bytes:
        msg = (
            f'{path}: the {fov_arcsec:g}" field of view is {x1 - x0}x{y1 - y0} pixels of '
            f"this image, over the decode limit of {limit} ({MAX_DECODED_ENV})"
        )
        raise CutoutError(msg)
    lead = (0,) * (len(hdus[0].shape) - len(shape))
    if len(hdus) > 1:
        planes = [np.asarray(h.section[y0:y1, x0:x1]) for h in hdus]
    elif len(shape) == 2:
        planes = [np.asarray(hdus[0].section[(*lead, slice(y0, y1), slice(x0, x1))])]
    else:
        planes = list(
            np.asarray(hdus[0].section[(*lead, slice(None), slice(y0, y1), slice(x0, x1))])
        )
    return np.array(planes, dtype=np.float32), _shifted_wcs(wcs, x0, y0, x1 - x0, y1 - y0)


def _shifted_wcs(wcs, x0: int, y0: int, nx: int, ny: int):
    """The WCS of the ``nx`` x ``ny`` section whose first pixel is ``(x0, y0)``.

    ``WCS.slice`` is not used: on a 2-axis WCS taken from a 3-axis cube header it
    clamps the y offset to the length of the cube's third axis.
    """
    from astropy.wcs import Sip

    part = wcs.deepcopy()
    shift = np.array([x0, y0], dtype=float)
    part.wcs.crpix = wcs.wcs.crpix - shift
    if wcs.sip is not None:
        part.sip = Sip(wcs.sip.a, wcs.sip.b, wcs.sip.ap, wcs.sip.bp, wcs.sip.crpix - shift)
    part.pixel_shape = (nx, ny)
    return part


def _fov_window(wcs, fov_arcsec: float | None, ny: int, nx: int):
    """``(y0, y1, x0, x1)``: the central part of an image a field of view keeps; or None."""
    scale = wcs_pixel_scale_arcsec(wcs)
    if scale is None or fov_arcsec is None:
        return None
    side = fov_side(fov_arcsec, scale)
    # the part preprocess/pipeline.py::_field_of_view keeps
    (y0, _, h), (x0, _, w) = centred_overlap(ny, side), centred_overlap(nx, side)
    return y0, y0 + h, x0, x0 + w


def _image_hdus(hdul) -> list:
    out = []
    for h in hdul:
        if h.is_image and h.header.get("NAXIS", 0) >= 2:
            out.append(h)
    return out


def _band_keyword(header) -> str | None:
    for key in ("BAND", "FILTER", "FILTNAM", "FILTER1"):
        if key in header:
            return normalise_band(header[key])
    return None


def _select_planes(hdul, path: str, hdu: int | str | None):
    """The HDUs to read (one, or one per band), their band names and the WCS header."""
    if hdu is not None:
        try:
            chosen = [hdul[hdu]]
        except (KeyError, IndexError):
            msg = f"{path}: has no HDU {hdu!r}"
            raise CutoutError(msg) from None
    else:
        chosen = _image_hdus(hdul)
        if not chosen:
            msg = f"{path}: no image HDU with data (tables only, or empty)"
            raise CutoutError(msg)
        named = [h for h in chosen if len(h.shape) == 2 and 0 not in h.shape]
        if len(named) > 1 and all(_band_keyword(h.header) for h in named):
            shapes = {tuple(h.shape) for h in named}
            if len(shapes) != 1:
                msg = f"{path}: band extensions differ in shape {sorted(shapes)}"
                raise CutoutError(msg)
            bands = tuple(_band_keyword(h.header) for h in named)
            return named, bands, named[0].header
        chosen = chosen[:1]
    h = chosen[0]
    if not h.is_image or len(h.shape) == 0 or 0 in h.shape:
        msg = f"{path}: HDU {h.name or 0} has no data"
        raise CutoutError(msg)
    shape = _plane_shape(h)
    if len(shape) == 2:
        return [h], (_band_keyword(h.header),), h.header
    if len(shape) != 3:
        msg = f"{path}: image has shape {shape}; expected (H, W) or (bands, H, W)"
        raise CutoutError(msg)
    return [h], _cube_bands(h.header, shape[0]), h.header


def _cube_bands(header, n: int) -> tuple[str | None, ...]:
    per_plane = [normalise_band(header.get(f"BAND{i}")) for i in range(n)]
    if all(per_plane):
        return tuple(per_plane)
    bands = header.get("BANDS")
    if isinstance(bands, str):
        text = bands.strip().replace(",", " ").split()
        names = text if len(text) == n else list(bands.strip()) if len(bands.strip()) == n else []
        if len(names) == n:
            return tuple(normalise_band(b) for b in names)
    return (None,) * n


def _celestial_wcs(header):
    from astropy.wcs import WCS, FITSFixedWarning

    if "CTYPE1" not in header:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    except Exception:  # a broken WCS is reported as no WCS, not as a failed cutout
        return None
    return wcs if wcs.has_celestial else None


def expand_inputs(items: Iterable[str | os.PathLike[str]], *, recursive: bool = False) -> list[str]:
    """Expand directories (their FITS/PNG/JPEG/TIFF files, sorted) and glob patterns to paths.

    Parameters
    ----------
    items : iterable of path-like
        Files, directories and glob patterns; ``**`` in a pattern matches any
        number of sub-folders (``"survey/**/*.fits"``).
    recursive : bool
        Also take the cutouts in the sub-folders of the given directories (hidden
        sub-folders, names starting with ``.``, aside; each folder is read once, so
        symbolic-link loops end).

    Returns
    -------
    paths : list of str
        A plain path that does not exist is kept, and so is a symbolic link to a
        missing file in a directory, so they are reported as failed inputs rather
        than silently dropped. Folders matched by a glob pattern are left out.

    Raises
    ------
    ValueError
        A given directory holds no cutout files but sub-folders, and ``recursive``
        is False.
    """
    out: list[str] = []
    for item in items:
        text = str(item)
        if os.path.isdir(text):
            found = _folder_cutouts(text, recursive=recursive)
            if not found and not recursive:
                subfolders = sorted(
                    e.name for e in os.scandir(text) if e.is_dir() and not e.name.startswith(".")
                )
                if subfolders:
                    shown = ", ".join(subfolders[:3]) + (", ..." if len(subfolders) > 3 else "")
                    msg = (
                        f"{text}: no cutout files at the top level, only sub-folders ({shown}); "
                        "pass --recursive (recursive=True) to read the cutouts in them"
                    )
                    raise ValueError(msg)
            out.extend(found)
        elif glob.has_magic(text) and not os.path.exists(text):
            out.extend(p for p in sorted(glob.glob(text, recursive=True)) if not os.path.isdir(p))
        else:
            out.append(text)
    return out


def _folder_cutouts(folder: str, *, recursive: bool) -> list[str]:
    """The cutout files in ``folder`` (and below it when ``recursive``), sorted."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        info = os.stat(current)
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir():
                    if recursive and not entry.name.startswith("."):
                        pending.append(entry.path)
                elif is_cutout_path(entry.name) and (entry.is_file() or entry.is_symlink()):
                    # a symlink that is neither file nor folder points nowhere: kept to be reported
                    found.append(str(Path(entry.path)))
    return sorted(found)


def is_cutout_path(path: str) -> bool:
    return path.lower().endswith(FITS_SUFFIXES + IMAGE_SUFFIXES)


def band_list(bands: Sequence[str | None]) -> str:
    return ", ".join(b or "?" for b in bands)
