"""Turn a user's own drawing into the project's symbol style (for zero-shot classes)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["load_drawing"]

#: fraction of the image side taken as the border when judging the background
_BORDER = 0.05
#: smallest difference between background and strokes (0-1) not taken as blank
_MIN_CONTRAST = 0.05
#: after normalisation, pixels above this are drawing (for the crop)
_CONTENT_LEVEL = 0.1
#: the drawing's longer side fills this fraction of the output, like our icons
_FILL = 0.86


def _read(source: str | os.PathLike[str] | np.ndarray) -> tuple[np.ndarray, str]:
    """Return a float grey image in [0, 1] and a name for messages."""
    if isinstance(source, np.ndarray):
        name = "<array>"
        arr = np.asarray(source)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            msg = (
                f"drawing {name} must have shape (H, W), (H, W, 1), (H, W, 3) or "
                f"(H, W, 4); got {arr.shape}"
            )
            raise ValueError(msg)
        if arr.size == 0:
            msg = f"drawing {name} is empty (shape {arr.shape})"
            raise ValueError(msg)
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            msg = f"drawing {name} must hold real numbers, got dtype {arr.dtype}"
            raise ValueError(msg)
        a = arr.astype(np.float64)
        if not np.all(np.isfinite(a)):
            msg = f"drawing {name} contains NaN or infinite values"
            raise ValueError(msg)
        # integer images and float images beyond 1 are on the 0-255 scale
        if np.issubdtype(arr.dtype, np.integer) or a.max() > 1.0:
            a = a / 255.0
        a = np.clip(a, 0.0, 1.0)
        alpha = None
        if a.ndim == 3 and a.shape[2] == 4:
            alpha = a[:, :, 3]
            a = a[:, :, :3]
        if a.ndim == 3:
            a = a @ np.array([0.299, 0.587, 0.114])
        return _flatten_alpha(a, alpha), name

    path = Path(source)
    name = str(path)
    if not path.is_file():
        msg = f"drawing file {name} does not exist"
        raise FileNotFoundError(msg)
    try:
        with warnings.catch_warnings():
            # a huge drawing is the user's own file, not an attack: read it anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                has_alpha = im.mode in ("RGBA", "LA", "PA") or (
                    im.mode == "P" and "transparency" in im.info
                )
                rgba = im.convert("RGBA") if has_alpha else None
                grey = im.convert("L")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        msg = f"cannot read drawing {name}: {exc}"
        raise ValueError(msg) from exc
    a = np.asarray(grey, dtype=np.float64) / 255.0
    alpha = None if rgba is None else np.asarray(rgba, dtype=np.float64)[:, :, 3] / 255.0
    return _flatten_alpha(a, alpha), name


def _flatten_alpha(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite a transparent drawing onto the background that contrasts with its strokes."""
    if alpha is None or alpha.min() >= 1.0:
        return grey
    opaque = alpha > 0.5
    strokes_dark = grey[opaque].mean() < 0.5 if opaque.any() else True
    background = 1.0 if strokes_dark else 0.0
    return grey * alpha + background * (1.0 - alpha)


def load_drawing(source: str | os.PathLike[str] | np.ndarray, *, size: int) -> np.ndarray:
    """Convert a drawing (file or array) into a symbol in the project's style.

    The style (ours) is a light drawing on a black background, centred, filling
    about 86% of the image like the built-in icons. Steps: greyscale
    (transparent pixels are composited onto a background contrasting with the
    strokes); the background level is the median of the outer 5% border, and
    the image is inverted when that is lighter than mid-grey (dark-on-light
    drawings); intensities are stretched from the background level to the
    99.5th percentile; the image is cropped to the drawn content, padded to a
    square around it with a margin, and resized.

    Parameters
    ----------
    source : path or `numpy.ndarray`
        PNG/JPEG/... file, or an array (H, W), (H, W, 1), (H, W, 3) or
        (H, W, 4); integer arrays are on the 0-255 scale, float arrays on 0-1
        (0-255 if any value exceeds 1).
    size : int
        Side of the output symbol in pixels.

    Returns
    -------
    `numpy.ndarray`
        uint8 (size, size, 3).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be read as an image, or the drawing is blank (no
        stroke differs from the background).
    """
    if size < 8:
        msg = f"size must be at least 8 pixels, got {size}"
        raise ValueError(msg)
    grey, name = _read(source)
    h, w = grey.shape
    border = max(1, round(_BORDER * min(h, w)))
    frame = np.concatenate(
        [
            grey[:border].ravel(),
            grey[-border:].ravel(),
            grey[:, :border].ravel(),
            grey[:, -border:].ravel(),
        ]
    )
    level = float(np.median(frame))
    if level > 0.5:
        grey = 1.0 - grey
        level = 1.0 - level
    top = float(np.percentile(grey, 99.5))
    if top - level < _MIN_CONTRAST:
        # a few strokes can lie above the 99.5th percentile: look at the maximum too
        top = float(grey.max())
    if top - level < _MIN_CONTRAST:
        msg = f"drawing {name} is blank: no stroke differs from the background (level {level:.2f})"
        raise ValueError(msg)
    img = np.clip((grey - level) / (top - level), 0.0, 1.0)
    rows = np.flatnonzero((img > _CONTENT_LEVEL).any(axis=1))
    cols = np.flatnonzero((img > _CONTENT_LEVEL).any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    img = img[r0:r1, c0:c1]
    extent = max(img.shape)
    # pad with black, then resample a square box centred on the content (float
    # coordinates, so even a one-pixel drawing lands in the middle)
    pad = extent
    padded = np.pad(img.astype(np.float32), pad)
    cy, cx = pad + img.shape[0] / 2.0, pad + img.shape[1] / 2.0
    half = extent / (2.0 * _FILL)
    box = (cx - half, cy - half, cx + half, cy + half)
    resample = Image.Resampling.LANCZOS if 2 * half > size else Image.Resampling.BICUBIC
    out = Image.fromarray(padded).resize((size, size), resample, box=box)
    grey8 = np.round(np.clip(np.asarray(out), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(grey8[:, :, None], 3, axis=2)
