"""Checks of what a survey service sent back, before anything is written to disk."""

from __future__ import annotations

import bz2
import gzip
import html
import json
import re

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from .exceptions import (
    ErrorPageError,
    InvalidResponseError,
    OutsideFootprintError,
    TruncatedResponseError,
)

__all__ = ["check_cube", "describe_body", "parse_fits_bytes"]

_FITS_BLOCK = 2880
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def describe_body(content: bytes, *, limit: int = 200) -> str:
    """Return a short readable description of a non-FITS response body (for error messages)."""
    head = content[:4096]
    if head.lstrip().startswith(b"{"):
        # hips2fits explains errors as JSON: {"title": ..., "description": ...}
        try:
            payload = json.loads(content)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "title" in payload:
            parts = [str(payload["title"]), str(payload.get("description", ""))]
            return ": ".join(p for p in parts if p)[:limit]
    title = _TITLE.search(head)
    if title:
        text = title.group(1)
    else:
        text = re.sub(rb"<[^>]+>", b" ", head)
    text_str = html.unescape(text.decode("utf-8", errors="replace"))
    text_str = " ".join(text_str.split())
    if len(text_str) > limit:
        text_str = text_str[: limit - 3] + "..."
    return text_str or f"{len(content)} bytes"


def _decompress(content: bytes, *, source: str) -> bytes:
    if content[:3] == b"BZh":
        try:
            return bz2.decompress(content)
        except (OSError, EOFError, ValueError) as exc:
            msg = f"{source}: incomplete bzip2-compressed FITS ({len(content)} bytes): {exc}"
            raise TruncatedResponseError(msg) from exc
    if content[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(content)
        except (OSError, EOFError) as exc:
            msg = f"{source}: incomplete gzip-compressed FITS ({len(content)} bytes): {exc}"
            raise TruncatedResponseError(msg) from exc
    return content


def parse_fits_bytes(content: bytes, *, source: str) -> fits.HDUList:
    """Parse a response body as a FITS file, loading every HDU into memory.

    Parameters
    ----------
    content : bytes
        Response body; bzip2 or gzip compression is undone first.
    source : str
        What the body came from (URL), for error messages.

    Returns
    -------
    hdul : `~astropy.io.fits.HDUList`

    Raises
    ------
    TruncatedResponseError
        If the body starts like FITS but is incomplete.
    ErrorPageError
        If the body is not FITS (for instance an HTML error page sent with
        status 200).
    """
    content = _decompress(content, source=source)
    if not content.startswith(b"SIMPLE  ="):
        msg = f"{source}: the service returned no FITS file but: {describe_body(content)!r}"
        raise ErrorPageError(msg)
    if len(content) % _FITS_BLOCK:
        msg = (
            f"{source}: incomplete FITS file ({len(content)} bytes, not a multiple of "
            f"{_FITS_BLOCK})"
        )
        raise TruncatedResponseError(msg)
    # No warnings.catch_warnings()/simplefilter("error") here: the filters are global to
    # the process, and fetches run in threads (Dask workers, loader pools), so turning
    # warnings into errors here would turn every other thread's warnings into errors too.
    # A damaged body is caught by astropy's exceptions and by the size check below.
    try:
        hdul = fits.HDUList.fromstring(content)
        for hdu in hdul:
            _ = hdu.data
            _check_data_present(hdu, len(content))
    except (OSError, ValueError, TypeError, IndexError) as exc:
        msg = f"{source}: unreadable or incomplete FITS file ({len(content)} bytes): {exc}"
        raise TruncatedResponseError(msg) from exc
    return hdul


def _check_data_present(hdu, available: int) -> None:
    """Raise ValueError when the header declares more data than the body holds."""
    offset = getattr(hdu, "_data_offset", None)
    if offset is not None and offset + hdu.size > available:
        msg = f"HDU {hdu.name or 0} declares {hdu.size} data bytes; only {available - offset} sent"
        raise ValueError(msg)


def check_cube(
    data: np.ndarray,
    wcs: WCS | None,
    *,
    size: int,
    bands: str,
    where: str,
) -> None:
    """Check a cutout cube before it is written.

    Parameters
    ----------
    data : ndarray
        Cube of shape ``(bands, size, size)``.
    wcs : `~astropy.wcs.WCS` or None
        Its celestial WCS.
    size : int
        Expected width and height in pixels.
    bands : str
        Expected bands, one letter per plane.
    where : str
        Survey, layer and position, for error messages.

    Raises
    ------
    InvalidResponseError
        Wrong shape, non-finite pixels, or no celestial TAN WCS.
    OutsideFootprintError
        Every pixel is zero: the service has no data there.
    """
    expected = (len(bands), size, size)
    if data.shape != expected:
        msg = f"{where}: cutout has shape {data.shape}, expected (bands, N, N) = {expected}"
        raise InvalidResponseError(msg)
    if wcs is None or not wcs.has_celestial:
        msg = f"{where}: cutout has no celestial WCS"
        raise InvalidResponseError(msg)
    ctypes = [str(c) for c in wcs.celestial.wcs.ctype]
    if not all(c.endswith("-TAN") for c in ctypes):
        msg = f"{where}: cutout WCS has projection {ctypes}, expected TAN"
        raise InvalidResponseError(msg)
    if not np.all(np.isfinite(data)):
        msg = f"{where}: cutout has non-finite pixel values"
        raise InvalidResponseError(msg)
    if not np.any(data):
        msg = f"{where}: every pixel is zero: the position is outside the survey footprint"
        raise OutsideFootprintError(msg)
