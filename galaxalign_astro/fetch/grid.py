"""Pixel grids: the north-up TAN grid of a cutout, and resampling onto it."""

from __future__ import annotations

import math

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area

__all__ = ["cut_around", "resample", "same_grid", "tan_wcs"]


def tan_wcs(ra: float, dec: float, *, size: int, pixscale: float) -> WCS:
    """Return a north-up, east-left TAN WCS of a ``size x size`` grid centred on (ra, dec).

    Parameters
    ----------
    ra, dec : float
        Centre in degrees (ICRS).
    size : int
        Width and height in pixels; the centre falls on pixel
        ``(size - 1) / 2`` (0-based), as in the Legacy Surveys cutouts.
    pixscale : float
        Arcsec per pixel.
    """
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(size + 1) / 2.0, (size + 1) / 2.0]
    wcs.wcs.cdelt = [-pixscale / 3600.0, pixscale / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.pixel_shape = (size, size)
    return wcs


def same_grid(a: WCS, b: WCS, *, shape: tuple[int, int], tolerance: float = 0.01) -> bool:
    """Return whether two WCS put the pixels of ``shape`` on the same sky, within ``tolerance``."""
    ny, nx = shape
    xs = np.array([0.0, nx - 1.0, 0.0, nx - 1.0, (nx - 1) / 2.0])
    ys = np.array([0.0, 0.0, ny - 1.0, ny - 1.0, (ny - 1) / 2.0])
    world = a.celestial.pixel_to_world_values(xs, ys)
    bx, by = b.celestial.world_to_pixel_values(*world)
    return bool(np.all(np.hypot(bx - xs, by - ys) < tolerance))


def cut_around(data: np.ndarray, wcs: WCS, coord: SkyCoord, *, size: int) -> Cutout2D | None:
    """Cut ``size x size`` pixels around ``coord`` (NaN off the image); None if no overlap."""
    try:
        return Cutout2D(
            data, coord, (size, size), wcs=wcs.celestial, mode="partial", fill_value=np.nan
        )
    except NoOverlapError:
        return None


def resample(data: np.ndarray, wcs: WCS, target: WCS, *, shape: tuple[int, int]) -> np.ndarray:
    """Reproject an image onto ``target`` with `reproject.reproject_interp`, conserving flux.

    Pixel values are flux per pixel (e.g. nanomaggies), so they are scaled
    by the ratio of output to input pixel area (ours); NaN marks pixels the
    input does not cover.
    """
    from reproject import reproject_interp

    out = reproject_interp(
        (data, wcs.celestial), target.celestial, shape_out=shape, return_footprint=False
    )
    ratio = proj_plane_pixel_area(target.celestial) / proj_plane_pixel_area(wcs.celestial)
    if math.isfinite(ratio) and ratio > 0:
        out = out * ratio
    return np.asarray(out, dtype=np.float32)
