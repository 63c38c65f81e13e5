"""Display stretches that turn band fluxes into 3-channel images in [0, 1].

Every stretch is a function ``(cube, bands, **params) -> (3, H, W) float32`` that
takes a (n_bands, H, W) flux cube and the band names of its planes, and returns
red, green and blue planes. They are registered by name in :data:`STRETCHES` so a
model's preprocessing record can name the one it was trained with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["STRETCHES", "apply_stretch", "asinh_stretch", "dr2_rgb", "lupton_rgb"]

# Legacy Survey ``dr2_rgb`` per-band scales; bands absent here fall back to r's.
_DR2_SCALES = {"g": 6.0, "r": 3.4, "i": 2.5, "z": 2.2}


def _rgb_order(bands: Sequence[str]) -> list[int]:
    """Plane indices for R, G, B: reddest band is red (bands are given blue to red)."""
    n = len(bands)
    if n == 2:
        return [1, 1, 0]
    return [n - 1, n // 2, 0]


def dr2_rgb(
    cube: np.ndarray,
    bands: Sequence[str],
    *,
    scales: dict[str, float] | None = None,
    m: float = 0.03,
    Q: float = 20.0,
) -> np.ndarray:
    """Legacy Survey ``dr2_rgb`` stretch (see DATA.md).

    ``I`` is the mean over bands of ``max(0, img*scale + m)``, ``f = asinh(Q I)/sqrt(Q)``
    and each plane is ``(img*scale + m) * f / I`` clipped to [0, 1]. The reddest band
    becomes red and the bluest blue (z -> R, r -> G, g -> B for g,r,z).
    """
    cube = np.asarray(cube, dtype=np.float32)
    table = dict(_DR2_SCALES if scales is None else scales)
    scale = np.array([table.get(b, table.get("r", 3.4)) for b in bands], dtype=np.float32).reshape(
        -1, 1, 1
    )
    # one pass per operation, in place, float32 throughout: the same operations in the same
    # order as the textbook form (tests/preprocess/test_stretch.py keeps that form)
    scaled = np.multiply(cube, scale)
    scaled += np.float32(m)
    intensity = np.maximum(scaled[0], 0.0)
    for plane in scaled[1:]:
        intensity += np.maximum(plane, 0.0)
    intensity /= scaled.shape[0]
    # float() keeps numpy scalars from promoting the float32 planes to float64
    q, root_q = float(Q), float(np.sqrt(Q))
    factor = np.multiply(intensity, q)
    np.arcsinh(factor, out=factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor /= np.multiply(intensity, root_q)
    factor[~(intensity > 0)] = 0.0
    planes = np.empty((3, *cube.shape[1:]), dtype=np.float32)
    for out, index in zip(planes, _rgb_order(bands), strict=True):
        np.multiply(scaled[index], factor, out=out)
    return np.clip(planes, 0.0, 1.0, out=planes)


def lupton_rgb(
    cube: np.ndarray,
    bands: Sequence[str],
    *,
    minimum: float = 0.0,
    stretch: float = 0.5,
    Q: float = 8.0,
) -> np.ndarray:
    """Lupton et al. (2004) asinh composite via :func:`astropy.visualization.make_lupton_rgb`."""
    from astropy.visualization import make_lupton_rgb

    cube = np.asarray(cube, dtype=np.float32)
    r, g, b = (cube[i] for i in _rgb_order(bands))
    rgb = make_lupton_rgb(r, g, b, minimum=minimum, stretch=stretch, Q=Q)
    return (np.moveaxis(rgb, -1, 0).astype(np.float32) / 255.0).astype(np.float32)


def asinh_stretch(
    cube: np.ndarray,
    bands: Sequence[str],
    *,
    percentile: float = 99.5,
    softening: float = 0.1,
) -> np.ndarray:
    """Per-band asinh stretch normalised to each band's own percentile (no calibration)."""
    cube = np.asarray(cube, dtype=np.float32)
    out = np.empty_like(cube)
    for i, plane in enumerate(cube):
        top = np.nanpercentile(plane, percentile)
        top = top if np.isfinite(top) and top > 0 else 1.0
        x = np.clip(plane / top, 0.0, None)
        out[i] = np.arcsinh(x / softening) / np.arcsinh(1.0 / softening)
    return np.clip(out, 0.0, 1.0)[_rgb_order(bands)].astype(np.float32)


Stretch = Callable[..., np.ndarray]

STRETCHES: dict[str, Stretch] = {
    "dr2_rgb": dr2_rgb,
    "lupton": lupton_rgb,
    "asinh": asinh_stretch,
}


def apply_stretch(
    cube: np.ndarray, bands: Sequence[str], name: str, params: dict | None = None
) -> np.ndarray:
    """Apply the stretch registered as ``name`` with keyword ``params``."""
    try:
        func = STRETCHES[name]
    except KeyError:
        msg = f"unknown stretch {name!r}; known: {', '.join(sorted(STRETCHES))}"
        raise ValueError(msg) from None
    return func(cube, bands, **(params or {}))
