"""The built-in symbol families, one per Galaxy10 DECaLS class key.

Every icon here is our own design, in the spirit of the Galaxy Zoo decision-tree
icons (the paper does not publish its symbols). Canonical icons, in icon
coordinates where the image spans [-1, 1]:

- ``round_smooth``: a round blob, bright centre fading towards a crisp rim.
- ``in_between_smooth``: the same blob elongated to axis ratio 0.6.
- ``cigar_smooth``: a thin elongated blob, axis ratio 0.24.
- ``edge_on_no_bulge``: a thin bright line (a disk seen edge-on), axis ratio about 0.06.
- ``edge_on_bulge``: the same line with a round central bulge.
- ``barred_spiral``: a bar with a small bulge; arms leave the bar ends.
- ``unbarred_tight_spiral``: bulge and two arms wound about 2.5 turns (pitch 8 deg).
- ``unbarred_loose_spiral``: small bulge and two open arms (pitch 26 deg).
- ``merging``: two overlapping blobs with faint tidal tails.
- ``disturbed``: one irregular, lumpy, faint body with bright clumps placed asymmetrically.

Spirals and the other disk-like families sit on a faint glow; variants vary the
arm count (``SymbolConfig.arm_counts``), pitch, bulge size, inclination
(``squash``), stroke widths and small shape perturbations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .canvas import SymbolCanvas
from .config import SymbolConfig
from .registry import register_symbol_family

__all__: list[str] = []


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _jit(rng: np.random.Generator, config: SymbolConfig, value: float) -> float:
    """``value`` perturbed by a relative amount of at most ``config.jitter``."""
    return value * (1.0 + _u(rng, -config.jitter, config.jitter))


# -- smooth galaxies -------------------------------------------------------


def _smooth_sampler(q_range: tuple[float, float], a: float):  # type: ignore[no-untyped-def]
    def sample(rng: np.random.Generator, config: SymbolConfig) -> dict[str, Any]:
        return {
            "a": _jit(rng, config, a),
            "q": _u(rng, *q_range),
            "edge": _u(rng, 0.3, 0.5),
            "power": _u(rng, 1.0, 2.5),
        }

    return sample


def _draw_smooth(canvas: SymbolCanvas, p: Mapping[str, Any]) -> None:
    a = p["a"]
    canvas.ellipse(0.0, 0.0, a, a * p["q"], edge=p["edge"], power=p["power"])


register_symbol_family(
    "round_smooth",
    canonical={"a": 0.62, "q": 1.0, "edge": 0.4, "power": 1.5},
    sample=_smooth_sampler((0.94, 1.0), 0.62),
)(_draw_smooth)

register_symbol_family(
    "in_between_smooth",
    canonical={"a": 0.74, "q": 0.6, "edge": 0.4, "power": 1.5},
    sample=_smooth_sampler((0.5, 0.72), 0.74),
)(_draw_smooth)

register_symbol_family(
    "cigar_smooth",
    canonical={"a": 0.86, "q": 0.24, "edge": 0.4, "power": 1.5},
    sample=_smooth_sampler((0.17, 0.3), 0.84),
)(_draw_smooth)


# -- edge-on disks ---------------------------------------------------------


def _sample_edge_on(rng: np.random.Generator, config: SymbolConfig) -> dict[str, Any]:
    return {
        "length": _u(rng, 0.8, 0.9),
        "thickness": _u(rng, 0.035, 0.06),
        "bulge": _u(rng, 0.2, 0.26) * _u(rng, *config.bulge_scale_range),
        "bulge_q": _u(rng, 0.75, 1.0),
        "halo": _u(rng, 0.0, 0.25),
    }


def _draw_edge_on(canvas: SymbolCanvas, p: Mapping[str, Any], *, bulge: bool) -> None:
    length = p["length"]
    # at least a pixel thick so small symbols keep their disk
    b = max(min(p["thickness"] * canvas.line_width, 0.09), canvas.pixel)
    if p["halo"] > 0:
        canvas.ellipse(0.0, 0.0, length * 0.7, b * 2.5, profile="glow", value=p["halo"])
    canvas.ellipse(0.0, 0.0, length, b, profile="smooth", edge=0.75, power=1.0)
    if bulge:
        rb = p["bulge"]
        canvas.ellipse(0.0, 0.0, rb, rb * p["bulge_q"], edge=0.55, power=1.5)


_EDGE_ON_CANONICAL = {"length": 0.88, "thickness": 0.05, "bulge": 0.24, "bulge_q": 0.9, "halo": 0.0}

register_symbol_family("edge_on_no_bulge", canonical=_EDGE_ON_CANONICAL, sample=_sample_edge_on)(
    lambda canvas, p: _draw_edge_on(canvas, p, bulge=False)
)
register_symbol_family("edge_on_bulge", canonical=_EDGE_ON_CANONICAL, sample=_sample_edge_on)(
    lambda canvas, p: _draw_edge_on(canvas, p, bulge=True)
)


# -- spirals ---------------------------------------------------------------


def _spiral_points(
    r_start: float,
    r_end: float,
    pitch_deg: float,
    theta0: float,
    *,
    wobble: float = 0.0,
    wobble_phase: float = 0.0,
) -> np.ndarray:
    """Points of a logarithmic spiral r = r_start exp(tan(pitch) (theta - theta0))."""
    k = math.tan(math.radians(pitch_deg))
    sweep = math.log(r_end / r_start) / k
    n = max(int(sweep * 40), 24)
    dtheta = np.linspace(0.0, sweep, n)
    r = r_start * np.exp(k * dtheta)
    r = r * (1.0 + wobble * np.sin(2.0 * dtheta + wobble_phase) * (dtheta / sweep))
    theta = theta0 + dtheta
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _draw_arms(
    canvas: SymbolCanvas, p: Mapping[str, Any], *, starts: list[float], r_start: float
) -> None:
    ends = p.get("arm_ends") or [p["r_end"]] * len(starts)
    for i, theta0 in enumerate(starts):
        pts = _spiral_points(
            r_start,
            ends[i % len(ends)],
            p["pitch"],
            theta0,
            wobble=p["wobble"],
            wobble_phase=1.7 * i,
        )
        frac = np.linspace(0.0, 1.0, len(pts))
        widths = (p["arm_width"] * (1.0 - frac) + p["arm_width_end"] * frac) * canvas.line_width
        # arms swell out of the bulge or bar end instead of starting at full width
        widths = widths * (0.55 + 0.45 * np.clip(frac / 0.15, 0.0, 1.0))
        values = 1.0 - (1.0 - p["arm_fade"]) * frac
        canvas.stroke(pts, widths, values)


def _sample_spiral(
    rng: np.random.Generator,
    config: SymbolConfig,
    *,
    pitch_range: tuple[float, float],
    bulge: tuple[float, float],
    width: float,
) -> dict[str, Any]:
    n_arms = int(config.arm_counts[int(rng.integers(len(config.arm_counts)))])
    return {
        "n_arms": n_arms,
        "pitch": _u(rng, *pitch_range),
        "bulge": _u(rng, *bulge) * _u(rng, *config.bulge_scale_range),
        "r_end": _u(rng, 0.78, 0.88),
        "arm_ends": [_u(rng, 0.72, 0.88) for _ in range(n_arms)],
        "arm_width": _jit(rng, config, width),
        "arm_width_end": _jit(rng, config, width * 0.35),
        "arm_fade": _u(rng, 0.35, 0.7),
        "wobble": _u(rng, 0.0, config.jitter * 0.5),
        "phase": _u(rng, 0.0, 360.0),
        "disc": _u(rng, 0.1, 0.25),
        "squash": _u(rng, 0.7, 1.0),
    }


def _draw_disc_glow(canvas: SymbolCanvas, p: Mapping[str, Any]) -> None:
    if p["disc"] > 0:
        canvas.ellipse(0.0, 0.0, 0.55, 0.55, profile="glow", value=p["disc"])


def _draw_unbarred(canvas: SymbolCanvas, p: Mapping[str, Any]) -> None:
    _draw_disc_glow(canvas, p)
    n = p["n_arms"]
    phase = math.radians(p["phase"])
    starts = [phase + 2.0 * math.pi * i / n for i in range(n)]
    _draw_arms(canvas, p, starts=starts, r_start=p["bulge"] * 0.9)
    canvas.ellipse(0.0, 0.0, p["bulge"], p["bulge"], edge=0.7, power=1.5, over=True)


def _spiral_canonical(pitch: float, bulge: float, width: float) -> dict[str, Any]:
    return {
        "n_arms": 2,
        "pitch": pitch,
        "bulge": bulge,
        "r_end": 0.86,
        "arm_ends": None,
        "arm_width": width,
        "arm_width_end": width * 0.35,
        "arm_fade": 0.55,
        "wobble": 0.0,
        "phase": 0.0,
        "disc": 0.18,
        "squash": 1.0,
    }


register_symbol_family(
    "unbarred_tight_spiral",
    canonical=_spiral_canonical(8.0, 0.17, 0.06),
    sample=lambda rng, config: _sample_spiral(
        rng, config, pitch_range=config.tight_pitch_deg_range, bulge=(0.13, 0.2), width=0.06
    ),
)(_draw_unbarred)

register_symbol_family(
    "unbarred_loose_spiral",
    canonical=_spiral_canonical(26.0, 0.12, 0.1),
    sample=lambda rng, config: _sample_spiral(
        rng, config, pitch_range=config.loose_pitch_deg_range, bulge=(0.09, 0.14), width=0.1
    ),
)(_draw_unbarred)


def _sample_barred(rng: np.random.Generator, config: SymbolConfig) -> dict[str, Any]:
    p = _sample_spiral(
        rng, config, pitch_range=config.bar_pitch_deg_range, bulge=(0.1, 0.15), width=0.065
    )
    p["bar_length"] = _u(rng, 0.3, 0.42)
    p["bar_q"] = _u(rng, 0.18, 0.28)
    p["arm_ends"] = [_u(rng, 0.78, 0.9) for _ in range(p["n_arms"])]
    return p


def _draw_barred(canvas: SymbolCanvas, p: Mapping[str, Any]) -> None:
    _draw_disc_glow(canvas, p)
    bar = p["bar_length"]
    n = p["n_arms"]
    # arms leave the bar ends (angle 0 and pi); extra arms are spaced between them
    starts = [0.0, math.pi] if n >= 2 else [0.0]
    starts += [math.pi * (2 * i + 1) / (n - 1) for i in range(n - 2)] if n > 2 else []
    _draw_arms(canvas, p, starts=starts[:n], r_start=bar * 0.92)
    bar_b = bar * p["bar_q"] * min(max(canvas.line_width, 0.8), 1.25)
    canvas.ellipse(0.0, 0.0, bar, bar_b, profile="smooth", edge=0.75, power=1.0, over=True)
    canvas.ellipse(0.0, 0.0, p["bulge"], p["bulge"], edge=0.6, power=1.5)


register_symbol_family(
    "barred_spiral",
    canonical={**_spiral_canonical(15.0, 0.12, 0.065), "bar_length": 0.36, "bar_q": 0.22},
    sample=_sample_barred,
)(_draw_barred)


# -- interacting and irregular ---------------------------------------------


def _sample_merging(rng: np.random.Generator, config: SymbolConfig) -> dict[str, Any]:
    return {
        "separation": _u(rng, 0.36, 0.5),
        "r1": _u(rng, 0.24, 0.32),
        "r2": _u(rng, 0.16, 0.26),
        "q1": _u(rng, 0.7, 1.0),
        "q2": _u(rng, 0.6, 1.0),
        "angle1": _u(rng, 0.0, 180.0),
        "angle2": _u(rng, 0.0, 180.0),
        "sweep1": _u(rng, 90.0, 150.0),
        "sweep2": _u(rng, 50.0, 140.0),
        "tail_width": _jit(rng, config, 0.13),
        "tail_value": _u(rng, 0.4, 0.6),
        "squash": _u(rng, 0.8, 1.0),
    }


def _tail(centre: np.ndarray, r_end: float, sweep_deg: float) -> np.ndarray:
    """A tidal tail: a curve from a galaxy centre winding outward about the origin."""
    r0 = float(np.hypot(*centre))
    phi0 = math.atan2(centre[1], centre[0])
    t = np.linspace(0.0, 1.0, 60)
    theta = phi0 + math.radians(sweep_deg) * t
    r = r0 + (r_end - r0) * t**0.8
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _draw_merging(canvas: SymbolCanvas, p: Mapping[str, Any]) -> None:
    d, r1, r2 = p["separation"], p["r1"], p["r2"]
    # primary on the left, companion on the right, centre of "light" at the origin
    c1 = np.array([-d * r2 / (r1 + r2), 0.02])
    c2 = np.array([d * r1 / (r1 + r2), -0.02])
    width = p["tail_width"] * canvas.line_width
    for centre, sweep in ((c1, p["sweep1"]), (c2, p["sweep2"])):
        pts = _tail(centre, 0.86, sweep)
        frac = np.linspace(0.0, 1.0, len(pts))
        canvas.stroke(pts, width * (1.0 - 0.75 * frac), p["tail_value"] * (1.0 - 0.6 * frac))
    canvas.ellipse(c1[0], c1[1], r1, r1 * p["q1"], angle=p["angle1"], edge=0.45, power=1.6)
    canvas.ellipse(
        c2[0], c2[1], r2, r2 * p["q2"], angle=p["angle2"], value=0.9, edge=0.45, power=1.6
    )


register_symbol_family(
    "merging",
    canonical={
        "separation": 0.44,
        "r1": 0.3,
        "r2": 0.22,
        "q1": 0.85,
        "q2": 0.8,
        "angle1": 30.0,
        "angle2": 120.0,
        "sweep1": 130.0,
        "sweep2": 110.0,
        "tail_width": 0.13,
        "tail_value": 0.5,
        "squash": 1.0,
    },
    sample=_sample_merging,
)(_draw_merging)


def _sample_disturbed(rng: np.random.Generator, config: SymbolConfig) -> dict[str, Any]:
    # k = 1 makes the body lopsided, higher orders make it lumpy
    harmonics = [[k, _u(rng, 0.06, 0.22), _u(rng, 0.0, 360.0)] for k in (1, 2, 3, 4, 5)]
    n_clumps = int(rng.integers(3, 8))
    clumps = []
    # clumps gather on one side so the light is lopsided
    side = _u(rng, 0.0, 2.0 * math.pi)
    for _ in range(n_clumps):
        phi = side + rng.normal(0.0, 1.0)
        r = _u(rng, 0.0, 0.45)
        clumps.append(
            [r * math.cos(phi), r * math.sin(phi), _u(rng, 0.04, 0.11), _u(rng, 0.75, 1.0)]
        )
    return {
        "radius": _u(rng, 0.45, 0.55),
        "harmonics": harmonics,
        "body": _u(rng, 0.35, 0.5),
        "clumps": clumps,
        "plume": [_u(rng, -0.3, 0.3), _u(rng, -0.3, 0.3), _u(rng, 0.2, 0.35), _u(rng, 0.15, 0.3)],
        "squash": 1.0,
    }


def _draw_disturbed(canvas: SymbolCanvas, p: Mapping[str, Any]) -> None:
    px, py, pr, pv = p["plume"]
    canvas.ellipse(
        px, py, pr * 1.6, pr, angle=math.degrees(math.atan2(py, px)), profile="glow", value=pv
    )
    harmonics = [(int(k), float(a), float(ph)) for k, a, ph in p["harmonics"]]
    canvas.lumpy_blob(0.0, 0.0, p["radius"], harmonics, value=p["body"], edge=0.55, power=1.0)
    for x, y, r, v in p["clumps"]:
        canvas.ellipse(x, y, r, r, value=v, edge=0.5, power=1.2)


register_symbol_family(
    "disturbed",
    canonical={
        "radius": 0.5,
        "harmonics": [[2, 0.16, 30.0], [3, 0.14, 110.0], [4, 0.08, 200.0], [5, 0.07, 300.0]],
        "body": 0.42,
        "clumps": [
            [0.22, 0.18, 0.1, 1.0],
            [-0.05, 0.3, 0.07, 0.9],
            [0.3, -0.12, 0.08, 0.95],
            [0.08, 0.02, 0.06, 0.85],
            [-0.25, -0.2, 0.05, 0.8],
        ],
        "plume": [-0.25, 0.2, 0.3, 0.25],
        "squash": 1.0,
    },
    sample=_sample_disturbed,
)(_draw_disturbed)
