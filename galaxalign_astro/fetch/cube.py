"""The one cutout file layout every survey client writes, and its reader.

The layout is that of the DESI Legacy Surveys ``fits-cutout`` service: the
primary HDU holds a ``(bands, N, N)`` float32 cube with a celestial TAN WCS
on the first two axes, and the keywords ``BANDS`` (e.g. ``'grz'``) and
``BAND0``, ``BAND1``, ... naming the planes. Files fetched from SDSS or
hips2fits are written the same way, so the rest of the package reads every
cutout with `read_cutout_cube`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from .._version import __version__
from ..errors import CutoutError

__all__ = ["CutoutCube", "make_cube_hdu", "read_cutout_cube"]

# keys that describe the array or the WCS: never copied from a service header
_STRUCTURAL = {
    "SIMPLE",
    "BITPIX",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "NAXIS3",
    "EXTEND",
    "BSCALE",
    "BZERO",
    "BLANK",
    "WCSAXES",
    "CHECKSUM",
    "DATASUM",
}


@dataclass
class CutoutCube:
    """A multi-band cutout read from a file.

    Attributes
    ----------
    data : ndarray
        ``(bands, N, N)`` float32 pixel values.
    wcs : `~astropy.wcs.WCS`
        Celestial (2-axis) WCS of the pixel grid.
    bands : str
        One letter per plane, e.g. ``'grz'``.
    header : `~astropy.io.fits.Header`
        The full primary header.
    """

    data: np.ndarray
    wcs: WCS
    bands: str
    header: fits.Header = field(repr=False)

    @property
    def pixscale(self) -> float:
        """Pixel scale in arcsec per pixel (mean of the two axes)."""
        return float(np.mean(proj_plane_pixel_scales(self.wcs))) * 3600.0


def make_cube_hdu(
    data: np.ndarray,
    wcs: WCS,
    *,
    bands: str,
    survey: str,
    layer: str,
    ra: float,
    dec: float,
    pixscale: float,
    bunit: str | None = None,
    extra: dict[str, Any] | None = None,
) -> fits.PrimaryHDU:
    """Build the primary HDU of a cutout file in the common layout.

    Parameters
    ----------
    data : array-like
        ``(bands, N, N)`` pixel values (converted to float32).
    wcs : `~astropy.wcs.WCS`
        Celestial WCS of the ``N x N`` grid.
    bands : str
        One letter per plane.
    survey, layer : str
        Provenance: service name and layer or data release.
    ra, dec : float
        Requested position in degrees (``OBJRA``, ``OBJDEC``).
    pixscale : float
        Pixel scale in arcsec (``PIXSCALE``).
    bunit : str, optional
        Unit of the pixel values (``BUNIT``), e.g. ``'nanomaggy'``.
    extra : dict, optional
        More header keywords (``KEY: value`` or ``KEY: (value, comment)``).

    Returns
    -------
    hdu : `~astropy.io.fits.PrimaryHDU`
    """
    cube = np.asarray(data, dtype=np.float32)
    if cube.ndim != 3 or cube.shape[0] != len(bands):
        msg = f"cutout data must have shape (bands={len(bands)}, N, N), got {cube.shape}"
        raise ValueError(msg)
    header = fits.Header()
    wcs_header = wcs.celestial.to_header()
    # like the Legacy Surveys service: the WCS describes the first two axes only
    wcs_header.remove("WCSAXES", ignore_missing=True)
    header.extend(wcs_header.cards)
    header["BANDS"] = (bands, "bands of the planes, in order")
    for i, band in enumerate(bands):
        header[f"BAND{i}"] = (band, f"band of plane {i}")
    header["SURVEY"] = (survey, "survey service the cutout came from")
    header["LAYER"] = (layer, "survey layer / data release")
    header["OBJRA"] = (float(ra), "[deg] requested right ascension (ICRS)")
    header["OBJDEC"] = (float(dec), "[deg] requested declination (ICRS)")
    header["PIXSCALE"] = (float(pixscale), "[arcsec/pixel] pixel scale")
    if bunit:
        header["BUNIT"] = (bunit, "unit of the pixel values")
    for key, value in (extra or {}).items():
        if key.upper() not in _STRUCTURAL:
            header[key] = value
    header["CREATOR"] = (f"galaxalign-astro {__version__}", "software that wrote this file")
    header["DATE"] = (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "UTC date of writing")
    return fits.PrimaryHDU(data=cube, header=header)


def read_cutout_cube(source: str | Path | fits.HDUList) -> CutoutCube:
    """Read a cutout file written by a survey client or by the Legacy Surveys service.

    Parameters
    ----------
    source : str, `~pathlib.Path` or `~astropy.io.fits.HDUList`
        File name or opened file.

    Returns
    -------
    cube : `CutoutCube`

    Raises
    ------
    CutoutError
        If the file has no image cube, no celestial WCS or no band names.
    """
    if isinstance(source, fits.HDUList):
        name = source.filename() or "<HDUList>"
    else:
        name = str(source)
    try:
        if isinstance(source, fits.HDUList):
            header, data = source[0].header, source[0].data
        else:
            with fits.open(source, memmap=False) as hdul:
                header, data = hdul[0].header, hdul[0].data
    except (OSError, ValueError, TypeError) as exc:
        msg = f"cannot read cutout file {name}: {exc}"
        raise CutoutError(msg) from exc
    if data is None:
        msg = f"cutout file {name} has no image in its primary HDU"
        raise CutoutError(msg)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        msg = f"cutout file {name} holds an array of shape {data.shape}, not (bands, N, N)"
        raise CutoutError(msg)
    bands = header.get("BANDS")
    if bands is None:
        bands = "".join(str(header.get(f"BAND{i}", "")) for i in range(data.shape[0]))
    bands = str(bands).strip()
    if len(bands) != data.shape[0]:
        msg = f"cutout file {name} names bands {bands!r} (BANDS/BAND0..) for {data.shape[0]} planes"
        raise CutoutError(msg)
    try:
        wcs = WCS(header, naxis=2)
    except (ValueError, KeyError) as exc:
        msg = f"cutout file {name} has an unreadable WCS: {exc}"
        raise CutoutError(msg) from exc
    if not wcs.has_celestial:
        msg = f"cutout file {name} has no celestial WCS"
        raise CutoutError(msg)
    return CutoutCube(data=data, wcs=wcs.celestial, bands=bands, header=header)
