"""Galaxy building blocks drawn onto a :class:`~galaxalign_astro.simulate.render.Canvas`.

A morphology recipe (:mod:`galaxalign_astro.simulate.morphology`) combines these:
Sersic bulges and ellipticals, inclined disks with bars, rings, logarithmic
spiral arms, clumps and arm dust, edge-on thin and thick disks with dust lanes,
and tidal features made of particles (tails, bridges, shells). Lengths are in
canvas pixels and angles in radians from the +x axis; fluxes are per-band
``(3,)`` arrays in nanomaggies. All parameter choices are ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .render import (
    Canvas,
    bar_profile,
    edge_on_disk,
    int_power,
    ring_profile,
    sed_fluxes,
    sersic_profile,
    smooth_field,
    spiral_phase,
)

__all__ = [
    "COLOURS",
    "DrawContext",
    "EdgeOnSpec",
    "SpiralSpec",
    "add_bridge",
    "add_clumps",
    "add_disk",
    "add_edge_on",
    "add_irregular",
    "add_sersic",
    "add_shells",
    "add_tail",
    "colour_fluxes",
]

_F32 = np.float32

#: mean (g-r, r-z) colours of each kind of light (ours, from typical DECaLS galaxies)
COLOURS: dict[str, tuple[float, float]] = {
    "elliptical": (0.85, 0.52),
    "bulge": (0.82, 0.50),
    "lenticular": (0.75, 0.46),
    "bar": (0.72, 0.40),
    "disk": (0.58, 0.33),
    "thick_disk": (0.70, 0.40),
    "arm": (0.40, 0.20),
    "clump": (0.12, 0.02),
    "irregular": (0.38, 0.18),
    "tail": (0.55, 0.30),
}

# Stamps wider than this many pixels (half-width) draw smooth light on 2x2 blocks (ours).
_COARSE_ABOVE = 40.0


def _coarse_step(half: float) -> int:
    return 2 if half > _COARSE_ABOVE else 1


# Radius, in units of re, out to which each Sersic index is drawn (ours: < 2 % lost).
_EXTENT = {0.5: 3.0, 1.0: 5.5, 1.5: 7.0, 2.0: 9.0, 3.0: 11.0, 4.0: 13.0, 6.0: 16.0}


@dataclass
class DrawContext:
    """What every drawing step needs: the random stream, the canvas and the pixel scale."""

    rng: np.random.Generator
    canvas: Canvas
    scale: float
    x0: float
    y0: float

    def px(self, arcsec: float) -> float:
        """Convert arcsec to pixels."""
        return arcsec / self.scale


def colour_fluxes(
    rng: np.random.Generator, kind: str, mag_r: float, *, scatter: float = 0.05
) -> np.ndarray:
    """g, r, z fluxes of ``mag_r`` light with the colours of ``kind`` plus scatter.

    The scatter is mostly a common reddening of both colours (as along the real
    colour sequence) plus a little independent noise, so that hues stay natural.
    """
    g_r, r_z = COLOURS[kind]
    redder = scatter * rng.standard_normal()
    g_r += redder + 0.4 * scatter * rng.standard_normal()
    r_z += 0.6 * redder + 0.4 * scatter * rng.standard_normal()
    return sed_fluxes(mag_r, g_r, r_z)


def _to_canvas(ctx: DrawContext, x0: float, y0: float, u, v, angle: float):
    c, s = math.cos(angle), math.sin(angle)
    return x0 + u * c - v * s, y0 + u * s + v * c


def add_sersic(
    ctx: DrawContext,
    x0: float,
    y0: float,
    *,
    re: float,
    n: float,
    q: float,
    angle: float,
    fluxes: np.ndarray,
    extent: float | None = None,
) -> None:
    """An elliptical Sersic component of half-light radius ``re`` (pixels, major axis).

    It is drawn out to ``extent`` half-light radii (default: where < 2 % of the
    light is left); large exponential or flatter profiles are drawn on 2x2 blocks.
    """
    half = min((_EXTENT[n] if extent is None else extent) * re, ctx.canvas.length)
    step = _coarse_step(half) if n <= 1.0 and re >= 6.0 else 1
    stamp = ctx.canvas.stamp(x0, y0, half, step=step)
    u, v = stamp.rotated(angle)
    v *= _F32(1.0 / q)
    u *= u
    v *= v
    u += v
    stamp.add(sersic_profile(u, re=re, n=n, q=q), fluxes)


@dataclass
class SpiralSpec:
    """An inclined disk with optional bar, ring, spiral arms, clumps and arm dust.

    Fluxes are per-band arrays (nanomaggies); a zero array switches a part off.
    ``pitch_deg`` is signed (the sign sets the winding sense).
    """

    h: float
    q: float
    angle: float
    disk: np.ndarray
    arms: np.ndarray
    clumps: np.ndarray
    bar: np.ndarray
    ring: np.ndarray
    n_arms: int = 2
    pitch_deg: float = 15.0
    arm_width: int = 3
    theta0: float = 0.0
    arm_start: float = 0.0
    flocculence: float = 0.0
    n_clumps: int = 0
    bar_length: float = 0.0
    bar_width: float = 0.0
    bar_angle: float = 0.0
    arm_dust: float = 0.0


def add_disk(ctx: DrawContext, x0: float, y0: float, spec: SpiralSpec) -> None:
    """Draw a disk galaxy's disk (not its bulge) from ``spec``."""
    rng = ctx.rng
    canvas = ctx.canvas
    half = min(6.5 * spec.h, canvas.length)
    stamp = canvas.stamp(x0, y0, half, step=_coarse_step(half))
    u, v = stamp.rotated(spec.angle)
    v *= _F32(1.0 / spec.q)  # face-on plane coordinates
    r2 = u * u + v * v
    radius = np.sqrt(r2)
    disk = sersic_profile(r2, re=1.678 * spec.h, n=1.0, q=spec.q)
    local = np.empty((3, *stamp.shape), dtype=_F32)
    for b in range(3):
        np.multiply(disk, _F32(spec.disk[b]), out=local[b])

    if spec.arms.any():
        noise = None
        if spec.flocculence > 0:
            cells = int(rng.integers(10, 18))
            noise = smooth_field(rng, stamp.shape, cells=cells) * _F32(0.9 * spec.flocculence)
        cos_psi, sin_psi = spiral_phase(
            u,
            v,
            radius,
            arms=spec.n_arms,
            pitch_deg=spec.pitch_deg,
            theta0=spec.theta0,
            r0=max(spec.arm_start, 1.0),
            phase_noise=noise,
        )
        pattern = (cos_psi + _F32(1.0)) * _F32(0.5)
        pattern = int_power(pattern, int(spec.arm_width))
        start = max(spec.arm_start, 0.5 * spec.h)
        envelope = radius * _F32(1.0 / start)
        envelope *= envelope
        envelope = _F32(1.0) - np.exp(-(envelope * envelope))
        arms = disk * pattern * envelope
        if spec.flocculence > 0:
            patch = smooth_field(rng, stamp.shape, cells=int(rng.integers(14, 26)))
            arms *= np.exp(patch * _F32(0.6 * spec.flocculence))
        stamp.unit_sum(arms)
        for b in range(3):
            local[b] += arms * _F32(spec.arms[b])
        if spec.arm_dust > 0:
            # dust on the inner (concave) edge of each arm, stronger in the blue
            shift = -0.45 * math.copysign(1.0, spec.pitch_deg)
            lane = cos_psi * _F32(math.cos(shift)) - sin_psi * _F32(math.sin(shift))
            lane += _F32(1.0)
            lane *= _F32(0.5)
            lane = int_power(lane, 2 * int(spec.arm_width))
            lane *= envelope * np.exp(-radius * _F32(1.0 / (3.0 * spec.h)))
            for b, k in enumerate((1.35, 1.0, 0.55)):
                local[b] *= _F32(1.0) - lane * _F32(min(0.9, spec.arm_dust * k))

    if spec.bar.any() and spec.bar_length > 0:
        c, s = _F32(math.cos(spec.bar_angle)), _F32(math.sin(spec.bar_angle))
        ub = u * c + v * s
        vb = v * c - u * s
        bar = bar_profile(ub, vb, length=spec.bar_length, width=spec.bar_width)
        stamp.unit_sum(bar)
        for b in range(3):
            local[b] += bar * _F32(spec.bar[b])

    if spec.ring.any():
        r0 = 1.1 * spec.bar_length if spec.bar_length > 0 else 1.2 * spec.h
        ring = ring_profile(radius, r0=r0, width=0.18 * r0)
        stamp.unit_sum(ring)
        for b in range(3):
            local[b] += ring * _F32(spec.ring[b])

    stamp.add_bands(local)

    if spec.clumps.any() and spec.n_clumps > 0:
        n = spec.n_clumps
        if spec.arms.any() and spec.flocculence < 0.5:
            rad = spec.arm_start + rng.gamma(2.0, 0.9 * spec.h, n)
            arm = rng.integers(0, spec.n_arms, n)
            theta = (
                spec.theta0
                + np.log(rad / max(spec.arm_start, 1.0)) / math.tan(math.radians(spec.pitch_deg))
                + 2 * math.pi * arm / spec.n_arms
                + rng.normal(0.0, 0.12, n)
            )
        else:
            rad = rng.gamma(2.0, 0.8 * spec.h, n)
            theta = rng.uniform(0, 2 * math.pi, n)
        add_clumps(
            ctx,
            x0,
            y0,
            rad * np.cos(theta),
            rad * np.sin(theta) * spec.q,
            angle=spec.angle,
            fluxes=spec.clumps,
        )


def add_clumps(
    ctx: DrawContext,
    x0: float,
    y0: float,
    u: np.ndarray,
    v: np.ndarray,
    *,
    angle: float,
    fluxes: np.ndarray,
) -> None:
    """Unresolved star-forming knots at galaxy-frame positions ``(u, v)``, power-law fluxes."""
    rng = ctx.rng
    weights = rng.pareto(1.6, len(u)) + 1.0
    weights /= weights.sum()
    x, y = _to_canvas(ctx, x0, y0, u, v, angle)
    # each knot is a little resolved: spread it over 8 particles (0.4-1.2 px RMS)
    sub = 8
    spread = np.repeat(rng.uniform(0.4, 1.2, len(u)), sub)
    x = np.repeat(x, sub) + rng.standard_normal(len(u) * sub) * spread
    y = np.repeat(y, sub) + rng.standard_normal(len(u) * sub) * spread
    ctx.canvas.add_points(x, y, np.repeat(weights / sub, sub), fluxes)


@dataclass
class EdgeOnSpec:
    """An edge-on (inclination >= 80 deg) disk: thin and thick disks, bulge, dust lane, warp."""

    h: float
    z0: float
    cos_i: float
    angle: float
    thin: np.ndarray
    thick: np.ndarray
    bulge: np.ndarray
    thick_scale: float = 3.0
    bulge_re: float = 1.0
    bulge_n: float = 2.0
    bulge_q: float = 0.7
    dust_tau: float = 0.0
    dust_offset: float = 0.0
    warp: float = 0.0


def add_edge_on(ctx: DrawContext, x0: float, y0: float, spec: EdgeOnSpec) -> None:
    """Draw an edge-on disk galaxy (all its parts) from ``spec``.

    A slightly tilted disk is approximated by thickening the sech^2 layer with
    the projected disk width ``0.8 h cos i`` (ours).
    """
    canvas = ctx.canvas
    has_bulge = bool(spec.bulge.any())
    half = min(
        max(6.0 * spec.h, _EXTENT[spec.bulge_n] * spec.bulge_re if has_bulge else 0.0),
        canvas.length,
    )
    stamp = canvas.stamp(x0, y0, half)
    x, z = stamp.rotated(spec.angle)
    if spec.warp:
        # integral-sign warp beyond 2 h
        bend = np.maximum(np.abs(x) - _F32(2.0 * spec.h), _F32(0.0))
        z = z - np.sign(x) * bend * bend * _F32(spec.warp / spec.h)
    tilt = 0.8 * spec.h * spec.cos_i
    z_thin = math.hypot(spec.z0, tilt)
    z_thick = math.hypot(spec.thick_scale * spec.z0, tilt)
    thin = edge_on_disk(x, z, h=spec.h, z0=z_thin)
    thick = edge_on_disk(x, z, h=1.2 * spec.h, z0=z_thick)
    local = np.empty((3, *stamp.shape), dtype=_F32)
    for b in range(3):
        np.multiply(thin, _F32(spec.thin[b]), out=local[b])
        local[b] += thick * _F32(spec.thick[b])
    bulge = None
    if has_bulge:
        r2 = x * x + (z * _F32(1.0 / spec.bulge_q)) ** 2
        bulge = sersic_profile(r2, re=spec.bulge_re, n=spec.bulge_n, q=spec.bulge_q)
    if spec.dust_tau > 0:
        hz = max(0.7 * z_thin, 0.8)
        dz = (z - _F32(spec.dust_offset)) * _F32(1.0 / hz)
        lane = np.exp(dz * dz * _F32(-0.5) - np.abs(x) * _F32(1.0 / (2.2 * spec.h)))
        for b, k in enumerate((1.37, 1.0, 0.55)):
            local[b] *= np.exp(lane * _F32(-spec.dust_tau * k))
            if bulge is not None:
                # about half the bulge light comes from behind the lane
                local[b] += (
                    bulge * _F32(spec.bulge[b]) * np.exp(lane * _F32(-0.6 * spec.dust_tau * k))
                )
    elif bulge is not None:
        for b in range(3):
            local[b] += bulge * _F32(spec.bulge[b])
    stamp.add_bands(local)


def add_irregular(
    ctx: DrawContext,
    x0: float,
    y0: float,
    *,
    h: float,
    q: float,
    angle: float,
    fluxes: np.ndarray,
    patchiness: float,
    cells: int,
) -> None:
    """A patchy exponential disk: the profile times a log-normal random field."""
    half = min(6.0 * h, ctx.canvas.length)
    stamp = ctx.canvas.stamp(x0, y0, half, step=_coarse_step(half))
    u, v = stamp.rotated(angle)
    v *= _F32(1.0 / q)
    r2 = u * u + v * v
    disk = sersic_profile(r2, re=1.678 * h, n=1.0, q=q)
    field = smooth_field(ctx.rng, stamp.shape, cells=cells)
    disk *= np.exp(field * _F32(patchiness))
    stamp.add(stamp.unit_sum(disk), fluxes)


def add_tail(
    ctx: DrawContext,
    x0: float,
    y0: float,
    *,
    length: float,
    direction: float,
    curvature: float,
    width: float,
    fluxes: np.ndarray,
    start: float = 0.0,
    n_particles: int = 4000,
) -> None:
    """A curved tidal tail leaving ``(x0, y0)``: particles along an arc, fading and widening."""
    rng = ctx.rng
    t = rng.random(n_particles) ** 0.8
    along = start + t * length
    phi = direction + curvature * t
    # the arc bends progressively: integrate the heading along the tail
    x = x0 + along * np.cos(direction + 0.5 * curvature * t)
    y = y0 + along * np.sin(direction + 0.5 * curvature * t)
    spread = width * (0.4 + 1.2 * t)
    lateral = rng.normal(0.0, 1.0, n_particles) * spread
    x = x - lateral * np.sin(phi)
    y = y + lateral * np.cos(phi)
    weights = np.exp(-1.5 * t)
    weights /= weights.sum()
    ctx.canvas.add_points(x, y, weights, fluxes)


def add_bridge(
    ctx: DrawContext,
    xa: float,
    ya: float,
    xb: float,
    yb: float,
    *,
    sag: float,
    width: float,
    fluxes: np.ndarray,
    n_particles: int = 3000,
) -> None:
    """A faint bridge between two galaxies: particles along a bent quadratic Bezier curve."""
    rng = ctx.rng
    t = rng.random(n_particles)
    mx, my = 0.5 * (xa + xb), 0.5 * (ya + yb)
    dx, dy = xb - xa, yb - ya
    norm = math.hypot(dx, dy) or 1.0
    cx, cy = mx - dy / norm * sag, my + dx / norm * sag
    x = (1 - t) ** 2 * xa + 2 * (1 - t) * t * cx + t**2 * xb
    y = (1 - t) ** 2 * ya + 2 * (1 - t) * t * cy + t**2 * yb
    x = x + rng.normal(0.0, width, n_particles)
    y = y + rng.normal(0.0, width, n_particles)
    weights = np.full(n_particles, 1.0 / n_particles)
    ctx.canvas.add_points(x, y, weights, fluxes)


def add_shells(
    ctx: DrawContext,
    x0: float,
    y0: float,
    *,
    r_first: float,
    n_shells: int,
    axis: float,
    fluxes: np.ndarray,
    n_particles: int = 2500,
) -> None:
    """Interleaved shells: sharp-edged arcs on alternate sides of ``axis``, growing outwards."""
    rng = ctx.rng
    per_shell = max(200, n_particles // max(n_shells, 1))
    xs, ys = [], []
    for k in range(n_shells):
        radius = r_first * 1.55**k
        side = axis + (math.pi if k % 2 else 0.0)
        span = rng.uniform(1.6, 2.6)
        phi = side + rng.uniform(-0.5, 0.5, per_shell) * span
        r = radius * (1.0 - rng.exponential(0.07, per_shell))
        xs.append(x0 + r * np.cos(phi))
        ys.append(y0 + r * np.sin(phi))
    x, y = np.concatenate(xs), np.concatenate(ys)
    weights = np.full(len(x), 1.0 / len(x))
    ctx.canvas.add_points(x, y, weights, fluxes)
