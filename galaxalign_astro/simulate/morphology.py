"""One drawing recipe per Galaxy10 DECaLS class, following Galaxy Zoo meanings.

Each recipe draws the target galaxy (or interacting system) centred on
``(ctx.x0, ctx.y0)`` and returns its truth parameters (its magnitudes and size
are measured afterwards from what was drawn). The recipes are
registered by class key (the keys of :data:`galaxalign_astro.taxonomy.GALAXY10_DECALS`)
in :data:`RECIPES`. Class definitions, all ours, written from the Galaxy Zoo
DECaLS decision tree (``docs/simulator.md`` has the full table):

- smooth classes: no disk features; *round* axis ratio q >= 0.8, *in-between*
  0.5 <= q <= 0.75, *cigar* 0.2 <= q <= 0.42;
- edge-on: disk inclination >= 83 deg, with or without a bulge bulging out of
  the disk plane;
- spirals: inclination <= 66 deg; *barred* has a bar; *tight* arms have
  pitch 7-15 deg and *loose* ones 22-40 deg;
- *merging*: two or three overlapping galaxies with tidal tails (and bridges or
  shells); *disturbed*: one galaxy, clumpy, lopsided and irregular, no companion.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..taxonomy import GALAXY10_DECALS
from .components import (
    DrawContext,
    EdgeOnSpec,
    SpiralSpec,
    add_bridge,
    add_clumps,
    add_disk,
    add_edge_on,
    add_irregular,
    add_sersic,
    add_shells,
    add_tail,
    colour_fluxes,
)
from .render import nearest_sersic_index

__all__ = ["AXIS_RATIO_RANGES", "PITCH_RANGES", "RECIPES", "Recipe", "register"]

Recipe = Callable[[DrawContext], dict]

#: class key -> recipe
RECIPES: dict[str, Recipe] = {}

#: axis-ratio ranges that define the three smooth classes (ours)
AXIS_RATIO_RANGES = {
    "round_smooth": (0.8, 1.0),
    "in_between_smooth": (0.5, 0.75),
    "cigar_smooth": (0.2, 0.42),
}

#: |pitch angle| ranges (deg) of tight and loose spiral arms (ours)
PITCH_RANGES = {"tight": (7.0, 15.0), "loose": (22.0, 40.0)}

_ZERO = np.zeros(3)


def register(key: str) -> Callable[[Recipe], Recipe]:
    """Register a recipe under a Galaxy10 class key."""
    if key not in GALAXY10_DECALS.keys:
        msg = f"{key!r} is not a Galaxy10 DECaLS class key"
        raise ValueError(msg)

    def decorator(func: Recipe) -> Recipe:
        RECIPES[key] = func
        return func

    return decorator


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _size_and_mag(
    rng: np.random.Generator,
    *,
    median: float,
    dex: float,
    limits: tuple[float, float],
    mag_ref: float,
    mag_sigma: float = 0.4,
) -> tuple[float, float]:
    """A size (arcsec) from a log-normal and a magnitude from ``m = m_ref - 4 log10(size/median)``.

    The slope of 4 mag per dex of size is a compromise between constant surface
    brightness (5) and the brighter-is-more-diffuse trend of real galaxies (ours).
    """
    size = float(np.clip(median * 10 ** (dex * rng.standard_normal()), *limits))
    mag = mag_ref - 4.0 * math.log10(size / median) + mag_sigma * rng.standard_normal()
    return size, float(np.clip(mag, 12.5, 18.8))


def _smooth(ctx: DrawContext, key: str) -> dict:
    rng = ctx.rng
    q = float(rng.uniform(*AXIS_RATIO_RANGES[key]))
    angle = float(rng.uniform(0, math.pi))
    if key == "cigar_smooth":
        re_arcsec, mag = _size_and_mag(rng, median=3.2, dex=0.15, limits=(2.2, 9.0), mag_ref=16.4)
        n = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
    else:
        re_arcsec, mag = _size_and_mag(rng, median=3.0, dex=0.22, limits=(1.3, 14.0), mag_ref=16.0)
        n = float(rng.choice([2.0, 3.0, 4.0, 4.0, 6.0]))
    re = ctx.px(re_arcsec)
    total = colour_fluxes(rng, "elliptical", mag)
    lenticular = key != "cigar_smooth" and rng.random() < 0.3
    bulge_fraction = 1.0
    if lenticular:
        # a featureless S0: bulge plus a smooth exponential disk of the same shape
        bulge_fraction = float(rng.uniform(0.35, 0.7))
        h = re / float(rng.uniform(0.8, 1.3))
        add_sersic(
            ctx,
            ctx.x0,
            ctx.y0,
            re=re * 0.5,
            n=nearest_sersic_index(n * 0.8),
            q=min(1.0, q * 1.1),
            angle=angle,
            fluxes=total * bulge_fraction,
        )
        disk = colour_fluxes(rng, "lenticular", mag - 2.5 * math.log10(1 - bulge_fraction))
        add_sersic(ctx, ctx.x0, ctx.y0, re=1.678 * h, n=1.0, q=q, angle=angle, fluxes=disk)
    else:
        add_sersic(ctx, ctx.x0, ctx.y0, re=re, n=n, q=q, angle=angle, fluxes=total)
    return dict(axis_ratio=q, angle=angle, sersic_n=n, bulge_fraction=bulge_fraction)


@register("round_smooth")
def round_smooth(ctx: DrawContext) -> dict:
    """Smooth and completely round: an elliptical or featureless S0 with q >= 0.8."""
    return _smooth(ctx, "round_smooth")


@register("in_between_smooth")
def in_between_smooth(ctx: DrawContext) -> dict:
    """Smooth, in between round and cigar-shaped: 0.5 <= q <= 0.75."""
    return _smooth(ctx, "in_between_smooth")


@register("cigar_smooth")
def cigar_smooth(ctx: DrawContext) -> dict:
    """Smooth and cigar-shaped: one elongated Sersic profile, q <= 0.42, no disk or dust."""
    return _smooth(ctx, "cigar_smooth")


def _spiral(ctx: DrawContext, *, barred: bool, tightness: str) -> dict:
    rng = ctx.rng
    h_arcsec, mag = _size_and_mag(
        rng, median=4.5, dex=0.14, limits=(3.0, 12.0), mag_ref=15.5, mag_sigma=0.35
    )
    h = ctx.px(h_arcsec)
    cos_i = float(rng.uniform(0.55 if barred else 0.45, 1.0))
    q = math.sqrt(cos_i**2 + (0.12 * (1 - cos_i**2)))
    angle = float(rng.uniform(0, math.pi))
    if tightness == "tight":
        bulge_fraction = float(rng.uniform(0.12, 0.35))
        arm_fraction = float(rng.uniform(0.35, 0.55))
        n_arms = int(rng.choice([2, 2, 2, 3, 4]))
    else:
        bulge_fraction = float(rng.uniform(0.02, 0.18))
        arm_fraction = float(rng.uniform(0.35, 0.6))
        n_arms = int(rng.choice([1, 2, 2, 2, 3, 4]))
    if barred:
        bulge_fraction = float(rng.uniform(0.05, 0.2))
        n_arms = int(rng.choice([2, 2, 2, 2, 3]))
    pitch = float(rng.uniform(*PITCH_RANGES[tightness])) * float(rng.choice([-1.0, 1.0]))
    flocculence = 0.0 if rng.random() < 0.6 else float(rng.uniform(0.3, 0.8))
    if flocculence > 0:
        # a one-armed pattern broken into fragments no longer reads as a spiral
        n_arms = max(n_arms, 2)
    if barred:
        flocculence *= 0.4
    bar_fraction = float(rng.uniform(0.12, 0.25)) if barred else 0.0
    clump_fraction = float(rng.uniform(0.02, 0.06)) * (1.5 if tightness == "loose" else 1.0)
    disk_fraction = 1.0 - bulge_fraction - bar_fraction - clump_fraction
    disk_total = colour_fluxes(rng, "disk", mag)
    arm_total = colour_fluxes(rng, "arm", mag)
    bulge_flux = colour_fluxes(rng, "bulge", mag) * bulge_fraction
    bar_flux = colour_fluxes(rng, "bar", mag) * bar_fraction
    clump_flux = colour_fluxes(rng, "clump", mag) * clump_fraction
    ring_fraction = 0.0
    if rng.random() < (0.35 if barred else 0.12):
        ring_fraction = float(rng.uniform(0.03, 0.08))
    bar_length = h * float(rng.uniform(1.2, 2.2)) if barred else 0.0
    bar_angle = float(rng.uniform(0, math.pi))
    bulge_re = h * float(rng.uniform(0.18, 0.35)) * (1.3 if tightness == "tight" else 1.0)
    bulge_n = float(rng.choice([1.5, 2.0, 3.0, 4.0] if tightness == "tight" else [1.0, 1.5, 2.0]))
    spec = SpiralSpec(
        h=h,
        q=q,
        angle=angle,
        disk=disk_total * disk_fraction * (1 - arm_fraction - ring_fraction),
        arms=arm_total * disk_fraction * arm_fraction,
        ring=arm_total * disk_fraction * ring_fraction,
        clumps=clump_flux,
        bar=bar_flux,
        n_arms=n_arms,
        pitch_deg=pitch,
        arm_width=int(rng.choice([3, 4, 6] if tightness == "tight" or n_arms == 1 else [2, 3, 4])),
        theta0=bar_angle if barred else float(rng.uniform(0, 2 * math.pi)),
        arm_start=bar_length if barred else bulge_re * float(rng.uniform(1.2, 2.5)),
        flocculence=flocculence,
        n_clumps=int(rng.integers(8, 40)),
        bar_length=bar_length,
        bar_width=bar_length * float(rng.uniform(0.16, 0.28)),
        bar_angle=bar_angle,
        arm_dust=float(rng.uniform(0.1, 0.5)) if rng.random() < 0.6 else 0.0,
    )
    add_disk(ctx, ctx.x0, ctx.y0, spec)
    add_sersic(
        ctx,
        ctx.x0,
        ctx.y0,
        re=bulge_re,
        n=bulge_n,
        q=min(1.0, max(q, 0.75)),
        angle=angle,
        fluxes=bulge_flux,
    )
    return dict(
        axis_ratio=q,
        angle=angle,
        sersic_n=bulge_n,
        bulge_fraction=bulge_fraction,
        inclination_deg=math.degrees(math.acos(cos_i)),
        n_arms=n_arms,
        pitch_deg=abs(pitch),
        bar_fraction=bar_fraction,
        clump_fraction=clump_fraction,
        flocculence=flocculence,
    )


@register("barred_spiral")
def barred_spiral(ctx: DrawContext) -> dict:
    """A spiral with a bar through its centre; arms start at the bar ends."""
    return _spiral(ctx, barred=True, tightness=str(ctx.rng.choice(["tight", "loose"])))


@register("unbarred_tight_spiral")
def unbarred_tight_spiral(ctx: DrawContext) -> dict:
    """No bar; tightly wound arms (pitch 7-15 deg) and a sizeable bulge."""
    return _spiral(ctx, barred=False, tightness="tight")


@register("unbarred_loose_spiral")
def unbarred_loose_spiral(ctx: DrawContext) -> dict:
    """No bar; loosely wound arms (pitch 22-40 deg), small bulge, more clumps."""
    return _spiral(ctx, barred=False, tightness="loose")


def _edge_on(ctx: DrawContext, *, bulge: bool) -> dict:
    rng = ctx.rng
    h_arcsec, mag = _size_and_mag(
        rng, median=3.3, dex=0.14, limits=(2.2, 8.0), mag_ref=16.0, mag_sigma=0.35
    )
    h = ctx.px(h_arcsec)
    incl = float(rng.uniform(83.0 if bulge else 85.0, 90.0))
    cos_i = math.cos(math.radians(incl))
    angle = float(rng.uniform(0, math.pi))
    z0 = h * float(rng.uniform(0.08, 0.15))
    thick_fraction = float(rng.uniform(0.15, 0.35))
    if bulge:
        bulge_fraction = float(rng.uniform(0.3, 0.6))
        bulge_re = h * float(rng.uniform(0.35, 0.7))
        bulge_n = float(rng.choice([2.0, 3.0, 4.0]))
        bulge_q = float(rng.uniform(0.6, 0.9))
        tau = float(rng.uniform(1.0, 3.5)) if rng.random() < 0.75 else 0.0
    else:
        bulge_fraction = 0.0
        bulge_re, bulge_n, bulge_q = 1.0, 2.0, 0.7
        tau = float(rng.uniform(0.3, 1.5)) if rng.random() < 0.5 else 0.0
    disk_fraction = 1.0 - bulge_fraction
    thin = colour_fluxes(rng, "disk", mag) * disk_fraction * (1 - thick_fraction)
    thick = colour_fluxes(rng, "thick_disk", mag) * disk_fraction * thick_fraction
    bulge_flux = colour_fluxes(rng, "bulge", mag) * bulge_fraction
    spec = EdgeOnSpec(
        h=h,
        z0=z0,
        cos_i=cos_i,
        angle=angle,
        thin=thin,
        thick=thick,
        bulge=bulge_flux,
        thick_scale=float(rng.uniform(2.5, 3.5)),
        bulge_re=bulge_re,
        bulge_n=bulge_n,
        bulge_q=bulge_q,
        dust_tau=tau,
        dust_offset=float(rng.choice([-1.0, 1.0])) * z0 * (0.2 + 8.0 * cos_i),
        warp=float(rng.uniform(-0.08, 0.08)) if rng.random() < 0.25 else 0.0,
    )
    add_edge_on(ctx, ctx.x0, ctx.y0, spec)
    # ratio of vertical to radial scale length of the projected disk
    q = math.hypot(z0, 0.8 * h * cos_i) / h
    return dict(
        axis_ratio=q,
        angle=angle,
        sersic_n=bulge_n if bulge else math.nan,
        bulge_fraction=bulge_fraction,
        inclination_deg=incl,
        dust_tau=tau,
    )


@register("edge_on_no_bulge")
def edge_on_no_bulge(ctx: DrawContext) -> dict:
    """An edge-on disk seen as a thin streak with no central bulge."""
    return _edge_on(ctx, bulge=False)


@register("edge_on_bulge")
def edge_on_bulge(ctx: DrawContext) -> dict:
    """An edge-on disk with a bulge rising above and below the disk plane, often a dust lane."""
    return _edge_on(ctx, bulge=True)


def _member(ctx: DrawContext, x: float, y: float, mag: float, re: float) -> tuple[np.ndarray, str]:
    """One galaxy of a merging system: elliptical, disk with bulge, or irregular disk."""
    rng = ctx.rng
    kind = str(rng.choice(["elliptical", "disk", "irregular"], p=[0.35, 0.45, 0.2]))
    angle = float(rng.uniform(0, math.pi))
    if kind == "elliptical":
        fluxes = colour_fluxes(rng, "elliptical", mag)
        add_sersic(
            ctx,
            x,
            y,
            re=re,
            n=float(rng.choice([2.0, 3.0, 4.0])),
            q=float(rng.uniform(0.5, 1.0)),
            angle=angle,
            fluxes=fluxes,
        )
    elif kind == "disk":
        bt = float(rng.uniform(0.15, 0.5))
        bulge = colour_fluxes(rng, "bulge", mag) * bt
        disk = colour_fluxes(rng, "disk", mag) * (1 - bt)
        q = float(rng.uniform(0.35, 1.0))
        add_sersic(ctx, x, y, re=re, n=1.0, q=q, angle=angle, fluxes=disk)
        add_sersic(ctx, x, y, re=0.25 * re, n=2.0, q=max(q, 0.7), angle=angle, fluxes=bulge)
        fluxes = bulge + disk
    else:
        fluxes = colour_fluxes(rng, "irregular", mag)
        nucleus = fluxes * 0.15
        add_irregular(
            ctx,
            x,
            y,
            h=re / 1.678,
            q=float(rng.uniform(0.4, 1.0)),
            angle=angle,
            fluxes=fluxes * 0.85,
            patchiness=float(rng.uniform(0.4, 0.8)),
            cells=int(rng.integers(5, 10)),
        )
        add_sersic(ctx, x, y, re=0.2 * re, n=2.0, q=0.8, angle=angle, fluxes=nucleus)
    return fluxes, kind


@register("merging")
def merging(ctx: DrawContext) -> dict:
    """Two or three overlapping galaxies with tidal tails, often a bridge or shells."""
    rng = ctx.rng
    n_gal = 2 if rng.random() < 0.75 else 3
    re1_arcsec, mag1 = _size_and_mag(
        rng, median=3.0, dex=0.15, limits=(1.8, 8.0), mag_ref=16.2, mag_sigma=0.35
    )
    re1 = ctx.px(re1_arcsec)
    members = [(ctx.x0, ctx.y0, mag1, re1)]
    axis = float(rng.uniform(0, 2 * math.pi))
    for k in range(1, n_gal):
        dmag = float(rng.uniform(0.0, 1.5))
        re_k = re1 * 10 ** (-dmag / 5.0) * float(rng.uniform(0.8, 1.2))
        sep = (re1 + re_k) * float(rng.uniform(0.7, 1.8))
        direction = axis + (k - 1) * float(rng.uniform(1.5, 2.5))
        members.append(
            (
                ctx.x0 + sep * math.cos(direction),
                ctx.y0 + sep * math.sin(direction),
                mag1 + dmag,
                re_k,
            )
        )
    total = np.zeros(3)
    kinds = []
    for x, y, mag, re in members:
        fluxes, kind = _member(ctx, x, y, mag, re)
        total += fluxes
        kinds.append(kind)
    tidal = np.zeros(3)
    # tidal tails: one from each of the first two galaxies, on opposite sides
    n_tails = int(rng.choice([1, 2, 2]))
    spin = float(rng.choice([-1.0, 1.0]))
    for k in range(n_tails):
        x, y, mag, re = members[k]
        other = members[1 - k]
        away = math.atan2(y - other[1], x - other[0]) + spin * float(rng.uniform(0.3, 1.2))
        fraction = float(rng.uniform(0.06, 0.15))
        fluxes = colour_fluxes(rng, "tail", mag - 2.5 * math.log10(fraction))
        add_tail(
            ctx,
            x,
            y,
            length=re * float(rng.uniform(4.0, 8.0)),
            direction=away,
            curvature=spin * float(rng.uniform(0.8, 2.0)),
            width=re * 0.25,
            fluxes=fluxes,
            start=0.7 * re,
        )
        tidal += fluxes
    if rng.random() < 0.4:
        (xa, ya, mag_a, re_a), (xb, yb, _, _) = members[0], members[1]
        fluxes = colour_fluxes(rng, "tail", mag_a - 2.5 * math.log10(0.03))
        add_bridge(
            ctx,
            xa,
            ya,
            xb,
            yb,
            sag=re_a * float(rng.uniform(-1.0, 1.0)),
            width=0.35 * re_a,
            fluxes=fluxes,
        )
        tidal += fluxes
    has_shells = rng.random() < 0.3
    if has_shells:
        x, y, mag, re = members[0]
        fluxes = colour_fluxes(rng, "elliptical", mag - 2.5 * math.log10(0.05))
        add_shells(
            ctx,
            x,
            y,
            r_first=re * float(rng.uniform(1.3, 2.0)),
            n_shells=int(rng.integers(2, 5)),
            axis=axis,
            fluxes=fluxes,
        )
        tidal += fluxes
    # diffuse common envelope of stripped stars
    envelope = colour_fluxes(rng, "tail", mag1 - 2.5 * math.log10(0.06))
    xs = float(np.mean([m[0] for m in members]))
    ys = float(np.mean([m[1] for m in members]))
    add_sersic(
        ctx,
        xs,
        ys,
        re=2.0 * re1,
        n=1.0,
        q=float(rng.uniform(0.5, 0.9)),
        angle=axis,
        fluxes=envelope,
    )
    tidal += envelope
    total += tidal
    return dict(
        axis_ratio=math.nan,
        angle=axis,
        n_galaxies=n_gal,
        tidal_fraction=float(tidal[1] / total[1]),
    )


@register("disturbed")
def disturbed(ctx: DrawContext) -> dict:
    """One galaxy with a major disturbance and no companion.

    Half are clumpy, patchy irregulars; half are distorted bulge-plus-disk
    galaxies whose outer light is lopsided, with a broad, short fan (never a
    long thin tail, which marks a merger here).
    """
    rng = ctx.rng
    h_arcsec, mag = _size_and_mag(
        rng, median=3.8, dex=0.15, limits=(2.0, 9.0), mag_ref=16.4, mag_sigma=0.4
    )
    h = ctx.px(h_arcsec)
    q = float(rng.uniform(0.45, 1.0))
    angle = float(rng.uniform(0, math.pi))
    irregular = rng.random() < 0.5
    lopsided = float(rng.uniform(0.25, 0.5))
    side = float(rng.uniform(0, 2 * math.pi))
    offset = h * float(rng.uniform(0.6, 1.4))
    if irregular:
        total = colour_fluxes(rng, "irregular", mag)
        clump_fraction = float(rng.uniform(0.08, 0.2))
        main = 1.0 - lopsided - clump_fraction
        add_irregular(
            ctx,
            ctx.x0,
            ctx.y0,
            h=h,
            q=q,
            angle=angle,
            fluxes=total * main,
            patchiness=float(rng.uniform(0.5, 1.0)),
            cells=int(rng.integers(5, 12)),
        )
        core = np.zeros(3)
        sersic_n = math.nan
        fan = np.zeros(3)
    else:
        clump_fraction = float(rng.uniform(0.0, 0.05))
        bulge_fraction = float(rng.uniform(0.2, 0.45))
        main = 1.0 - lopsided - clump_fraction
        sersic_n = float(rng.choice([2.0, 3.0, 4.0]))
        core = colour_fluxes(rng, "bulge", mag) * bulge_fraction
        add_sersic(
            ctx, ctx.x0, ctx.y0, re=0.5 * h, n=sersic_n, q=max(q, 0.6), angle=angle, fluxes=core
        )
        total = colour_fluxes(rng, "disk", mag)
        main -= bulge_fraction
        add_irregular(
            ctx,
            ctx.x0,
            ctx.y0,
            h=h,
            q=q,
            angle=angle,
            fluxes=total * main,
            patchiness=float(rng.uniform(0.3, 0.6)),
            cells=int(rng.integers(4, 8)),
        )
        fan = colour_fluxes(rng, "tail", mag - 2.5 * math.log10(0.12))
        add_tail(
            ctx,
            ctx.x0,
            ctx.y0,
            length=h * float(rng.uniform(2.0, 3.5)),
            direction=side,
            curvature=float(rng.uniform(-0.6, 0.6)),
            width=h * 0.7,
            fluxes=fan,
            start=0.8 * h,
        )
    # lopsidedness: a second, offset and more extended component on one side
    add_irregular(
        ctx,
        ctx.x0 + offset * math.cos(side),
        ctx.y0 + offset * math.sin(side),
        h=h * float(rng.uniform(1.1, 1.8)),
        q=float(rng.uniform(0.4, 1.0)),
        angle=float(rng.uniform(0, math.pi)),
        fluxes=total * lopsided,
        patchiness=float(rng.uniform(0.6, 1.1)),
        cells=int(rng.integers(4, 9)),
    )
    clumps = np.zeros(3)
    if clump_fraction > 0:
        n_clumps = int(rng.integers(6, 30)) if irregular else int(rng.integers(2, 8))
        rad = rng.gamma(1.6, 1.0 * h, n_clumps)
        theta = rng.uniform(0, 2 * math.pi, n_clumps)
        clumps = colour_fluxes(rng, "clump", mag - 2.5 * math.log10(clump_fraction))
        add_clumps(
            ctx,
            ctx.x0 + 0.4 * offset * math.cos(side),
            ctx.y0 + 0.4 * offset * math.sin(side),
            rad * np.cos(theta),
            rad * np.sin(theta) * q,
            angle=angle,
            fluxes=clumps,
        )
    return dict(
        axis_ratio=q,
        angle=angle,
        sersic_n=sersic_n,
        clump_fraction=clump_fraction,
        lopsidedness=lopsided,
        tidal_fraction=float(fan[1] / max(total[1], 1e-30)),
    )
