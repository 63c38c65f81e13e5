"""Frame a display image by the central galaxy's own size (ours; ``PreprocessConfig.frame``).

Galaxy Zoo composites are cut to each galaxy's size, survey ``fits-cutout`` files
have a fixed field: the same galaxy can fill the frame in one and a tenth of it in
the other. Framing makes both look alike to the model, at training and at
inference alike:

1. the luminance (mean of the three display planes) is block-averaged to at most
   :data:`WORK_SIDE` pixels a side (speed; the result is a crop of the full image);
2. sky level and noise are the median and the scaled median absolute deviation;
   pixels above sky + :data:`NSIGMA` noise (and at least :data:`MIN_CONTRAST`) are
   the detection mask;
3. the central galaxy is the connected region of the mask that holds the image
   centre, else the region nearest to it;
4. its isophotal semi-major axis ``a`` is ``2 sqrt(largest eigenvalue)`` of the
   region's pixel covariance (exact for a uniform ellipse);
5. a square of side ``frame x 2a`` centred on the region's flux-weighted centre is
   cut, never smaller than :data:`MIN_SIDE` pixels nor larger than the image's
   longer side; parts outside the image are zero (dark sky).

An image with no detection is returned whole. These are display-space heuristics
chosen by this project, not the paper's: they are recorded in the model's
preprocessing (``frame``) so that inference repeats them.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MIN_CONTRAST",
    "MIN_SIDE",
    "NSIGMA",
    "WORK_SIDE",
    "frame_galaxy",
    "galaxy_region",
    "median",
]

#: longest side of the detection image (pixels)
WORK_SIDE = 128
#: detection threshold above the sky, in units of the noise
NSIGMA = 3.0
#: detection threshold above the sky, at least (display units in [0, 1])
MIN_CONTRAST = 0.02
#: smallest side of the cut (pixels of the input image)
MIN_SIDE = 24


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` with one selection instead of two (same value).

    For an even count, numpy partitions at both middle positions; the lower one is
    also the largest value left of the upper one, which a ``max`` finds faster.
    """
    part = np.array(values, copy=True).reshape(-1)
    k = part.size // 2
    part.partition(k)
    upper = part[k]
    if part.size % 2:
        return float(upper)
    pair = np.array([part[:k].max(), upper], dtype=part.dtype)
    return float(pair.mean())


def galaxy_region(luminance: np.ndarray) -> tuple[float, float, float] | None:
    """``(y, x, a)``: centre and isophotal semi-major axis of the central galaxy (pixels).

    None when nothing is detected. ``luminance`` is a 2-D display image.
    """
    from scipy import ndimage

    ny, nx = luminance.shape
    sky = median(luminance)
    noise = 1.4826 * median(np.abs(luminance - sky))
    mask = luminance > sky + max(NSIGMA * noise, MIN_CONTRAST)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    chosen = labels[round(cy), round(cx)]
    if chosen == 0:
        distance = ndimage.distance_transform_edt(labels == 0, return_indices=True)[1]
        iy, ix = distance[:, round(cy), round(cx)]
        chosen = labels[iy, ix]
    ys, xs = np.nonzero(labels == chosen)
    if len(ys) < 3:
        return None
    weights = np.maximum(luminance[ys, xs] - sky, 0.0) + 1e-6
    y0 = float(np.dot(ys, weights) / weights.sum())
    x0 = float(np.dot(xs, weights) / weights.sum())
    # largest eigenvalue of the pixels' (unweighted, unbiased) 2x2 covariance, in closed form
    dy, dx = ys - ys.mean(), xs - xs.mean()
    n1 = len(ys) - 1
    syy, sxx, sxy = np.dot(dy, dy) / n1, np.dot(dx, dx) / n1, np.dot(dy, dx) / n1
    largest = 0.5 * (syy + sxx) + np.sqrt(0.25 * (syy - sxx) ** 2 + sxy**2)
    a = 2.0 * float(np.sqrt(max(largest, 0.25)))
    return y0, x0, a


def frame_galaxy(rgb: np.ndarray, *, frame: float) -> tuple[np.ndarray, list[int]]:
    """Cut ``rgb`` (3, H, W) to ``frame`` isophotal diameters of its central galaxy.

    Returns the cut (3, S, S) float32 and its box ``[y0, x0, side]`` in input
    pixels (the whole image, ``[0, 0, max(H, W)]`` padded square, when nothing
    is detected).
    """
    _, ny, nx = rgb.shape
    factor = max(1, int(np.ceil(max(ny, nx) / WORK_SIDE)))
    if factor > 1:
        # block mean of the planes' mean as a sum of strided views (a reshape-mean over the
        # blocks is several times slower, and this runs on every cutout)
        h, w = ny // factor, nx // factor
        small = np.zeros((h, w), dtype=np.float32)
        for plane in rgb:
            for i in range(factor):
                for j in range(factor):
                    small += plane[i : h * factor : factor, j : w * factor : factor]
        small /= rgb.shape[0] * factor * factor
    else:
        small = rgb.mean(axis=0, dtype=np.float32)
    found = galaxy_region(small)
    longest = max(ny, nx)
    if found is None:
        y, x, side = (ny - 1) / 2.0, (nx - 1) / 2.0, longest
    else:
        ys, xs, a = found
        y, x = (ys + 0.5) * factor - 0.5, (xs + 0.5) * factor - 0.5
        side = int(np.clip(round(frame * 2.0 * a * factor), min(MIN_SIDE, longest), longest))
    y0 = round(y - (side - 1) / 2.0)
    x0 = round(x - (side - 1) / 2.0)
    out = np.zeros((rgb.shape[0], side, side), dtype=np.float32)
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(ny, y0 + side), min(nx, x0 + side)
    if sy1 > sy0 and sx1 > sx0:
        out[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[:, sy0:sy1, sx0:sx1]
    return out, [y0, x0, side]
