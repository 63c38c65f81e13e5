"""Sky statistics of a flux cube: sigma-clipped border levels and noise, mesh maps."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np


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
