"""Everything in a cutout that is not the target galaxy.

Foreground stars (a few saturated, with diffraction spikes and bleed trails),
faint background galaxies, and bright non-interacting neighbours. Number
densities and magnitude distributions are ours, set to look like high-latitude
DECaLS fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .components import DrawContext, add_sersic, colour_fluxes
from .config import SimulationConfig
from .render import sed_fluxes, sersic_stamps

__all__ = ["BrightStar", "FieldTruth", "add_field"]


@dataclass
class BrightStar:
    """A star bright enough to saturate; its core is clipped after the PSF is applied."""

    x: float
    y: float
    fluxes: np.ndarray


@dataclass
class FieldTruth:
    """What :func:`add_field` drew."""

    n_stars: int = 0
    n_background: int = 0
    n_neighbours: int = 0
    bright_stars: list[BrightStar] = field(default_factory=list)


def _power_law_mags(
    rng: np.random.Generator, n: int, low: float, high: float, slope: float
) -> np.ndarray:
    """Magnitudes with ``dN/dm ~ 10^(slope m)`` between ``low`` and ``high``."""
    a = 10 ** (slope * low)
    b = 10 ** (slope * high)
    return np.log10(a + (b - a) * rng.random(n)) / slope


def add_field(
    ctx: DrawContext, config: SimulationConfig, *, main_radius: float, main_mag: float
) -> FieldTruth:
    """Draw stars, background galaxies and neighbours around the target.

    Parameters
    ----------
    ctx : DrawContext
        Canvas, random stream and pixel scale.
    config : SimulationConfig
        Densities and probabilities.
    main_radius : float
        Rough radius (pixels) of the target's visible extent; background galaxies
        avoid its core and neighbours are placed outside it.
    main_mag : float
        r magnitude of the target; neighbours are fainter.
    """
    rng = ctx.rng
    canvas = ctx.canvas
    length = canvas.length
    area = (length * ctx.scale / 60.0) ** 2
    truth = FieldTruth()

    # foreground stars
    n_stars = int(rng.poisson(rng.uniform(*config.star_density) * area))
    mags = _power_law_mags(rng, n_stars, 15.0, 23.5, 0.12)
    g_r = rng.uniform(0.3, 1.5, n_stars)
    r_z = 0.1 + 0.9 * (g_r - 0.3) * rng.uniform(0.7, 1.4, n_stars)
    xs = rng.uniform(0, length - 1, n_stars)
    ys = rng.uniform(0, length - 1, n_stars)
    if n_stars:
        canvas.add_stars(xs, ys, sed_fluxes(mags, g_r, r_z))
    truth.n_stars = n_stars
    if rng.random() < config.bright_star_probability:
        mag = float(rng.uniform(10.5, 15.0))
        gr = float(rng.uniform(0.3, 1.2))
        fluxes = sed_fluxes(mag, gr, 0.1 + 0.8 * (gr - 0.3))
        # anywhere on the canvas but not on the target's core
        radius = float(rng.uniform(0.25, 0.7)) * canvas.size
        phi = float(rng.uniform(0, 2 * math.pi))
        x = canvas.centre + radius * math.cos(phi)
        y = canvas.centre + radius * math.sin(phi)
        x = min(max(x, 0.0), length - 1.0)
        y = min(max(y, 0.0), length - 1.0)
        canvas.add_stars(np.array([x]), np.array([y]), fluxes[:, None])
        if mag < 13.5:
            _add_spikes(ctx, x, y, fluxes)
        truth.bright_stars.append(BrightStar(x, y, fluxes))
        truth.n_stars += 1

    # background galaxies (faint, small)
    n_bg = int(rng.poisson(rng.uniform(*config.background_density) * area))
    if n_bg:
        mags = _power_law_mags(rng, n_bg, 19.5, 24.5, 0.3)
        re = (
            np.clip(
                1.1 * 10 ** (-0.12 * (mags - 20.0) + 0.15 * rng.standard_normal(n_bg)), 0.3, 2.5
            )
            / ctx.scale
        )
        q = rng.uniform(0.3, 1.0, n_bg)
        pa = rng.uniform(0, math.pi, n_bg)
        xs = rng.uniform(0, length - 1, n_bg)
        ys = rng.uniform(0, length - 1, n_bg)
        g_r = rng.uniform(0.4, 1.8, n_bg)
        r_z = rng.uniform(0.2, 1.3, n_bg)
        exponential = rng.random(n_bg) < 0.6
        far = np.hypot(xs - ctx.x0, ys - ctx.y0) > 0.6 * main_radius
        for n_index, chosen in ((1.0, exponential & far), (4.0, ~exponential & far)):
            idx = np.flatnonzero(chosen)
            if len(idx) == 0:
                continue
            size = int(np.clip(2 * math.ceil(5 * re[idx].max()) + 1, 9, 41))
            ix = np.rint(xs[idx]).astype(int)
            iy = np.rint(ys[idx]).astype(int)
            stamps = sersic_stamps(
                re=re[idx],
                n=n_index,
                q=q[idx],
                pa=pa[idx],
                frac_x=xs[idx] - ix,
                frac_y=ys[idx] - iy,
                size=size,
            )
            for j, k in enumerate(idx):
                _add_stamp(ctx, stamps[j], ix[j], iy[j], sed_fluxes(mags[k], g_r[k], r_z[k]))
        truth.n_background = int(far.sum())

    # bright neighbours, clear of the target
    if rng.random() < config.neighbour_probability:
        n_nb = 1 if rng.random() < 0.7 else 2
        for _ in range(n_nb):
            nb_mag = main_mag + float(rng.uniform(0.7, 3.0))
            nb_re = ctx.px(float(np.clip(2.5 * 10 ** (-0.2 * (nb_mag - 16.5)), 0.8, 6.0)))
            dist = main_radius + 3.0 * nb_re + float(rng.uniform(0.0, 0.35)) * canvas.size
            phi = float(rng.uniform(0, 2 * math.pi))
            elliptical = rng.random() < 0.5
            add_sersic(
                ctx,
                ctx.x0 + dist * math.cos(phi),
                ctx.y0 + dist * math.sin(phi),
                re=nb_re,
                n=4.0 if elliptical else 1.0,
                q=float(rng.uniform(0.3 if not elliptical else 0.6, 1.0)),
                angle=float(rng.uniform(0, math.pi)),
                fluxes=colour_fluxes(rng, "elliptical" if elliptical else "disk", nb_mag),
                extent=6.0,
            )
        truth.n_neighbours = n_nb
    return truth


def _add_stamp(ctx: DrawContext, stamp: np.ndarray, ix: int, iy: int, fluxes: np.ndarray) -> None:
    """Add a small unit-sum stamp centred on canvas pixel ``(ix, iy)``, clipped at the edges."""
    length = ctx.canvas.length
    h = stamp.shape[0] // 2
    x0, x1 = max(ix - h, 0), min(ix + h + 1, length)
    y0, y1 = max(iy - h, 0), min(iy + h + 1, length)
    if x0 >= x1 or y0 >= y1:
        return
    sub = stamp[y0 - (iy - h) : y1 - (iy - h), x0 - (ix - h) : x1 - (ix - h)]
    ctx.canvas.add_map((slice(y0, y1), slice(x0, x1)), sub, fluxes)


def _add_spikes(ctx: DrawContext, x: float, y: float, fluxes: np.ndarray) -> None:
    """Four diffraction spikes along the pixel axes carrying 1.5 % of the star's flux."""
    length = ctx.canvas.length
    spike_len = min(int(0.35 * math.sqrt(fluxes[1])), length)
    if spike_len < 3:
        return
    d = np.arange(1, spike_len + 1, dtype=np.float64)
    profile = (1.0 + d / 3.0) ** -1.5
    profile *= 0.015 / 4.0 / profile.sum()
    ix, iy = round(x), round(y)
    data = ctx.canvas.data
    for sign in (-1, 1):
        xs = ix + sign * d.astype(int)
        ok = (xs >= 0) & (xs < length)
        if 0 <= iy < length:
            data[:, iy, xs[ok]] += (fluxes[:, None] * profile[None, ok]).astype(np.float32)
        ys = iy + sign * d.astype(int)
        ok = (ys >= 0) & (ys < length)
        if 0 <= ix < length:
            data[:, ys[ok], ix] += (fluxes[:, None] * profile[None, ok]).astype(np.float32)
