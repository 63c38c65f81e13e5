"""Parameters of the randomised symbol variants (stored with a trained model)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SymbolConfig"]

_RANGE_FIELDS = (
    "scale_range",
    "line_width_range",
    "brightness_range",
    "bulge_scale_range",
    "tight_pitch_deg_range",
    "loose_pitch_deg_range",
    "bar_pitch_deg_range",
)


@dataclass(frozen=True)
class SymbolConfig:
    """How many symbol variants to draw per class, and how far they may vary.

    All choices here are ours (the paper does not publish its symbols). Variant 0
    of every class is the canonical, un-randomised icon; variants 1.. draw their
    parameters from the ranges below with a generator seeded by ``seed``, the class
    key and the variant number, so a class's variants do not depend on which other
    classes are in the bank.

    Parameters
    ----------
    variants : int
        Symbols per class, canonical icon included.
    seed : int
        Seed of the variant generator.
    rotation : bool
        Rotate variants by a uniform random angle.
    mirror : bool
        Mirror variants at random (flips the winding sense of spiral arms).
    scale_range : tuple of float
        Overall size factor; 1 is the canonical icon, which fills about 90% of
        the image width.
    offset : float
        Largest shift of the icon centre, as a fraction of half the image size.
    line_width_range : tuple of float
        Factor on stroke widths (spiral arms, tails, edge-on disks, bars).
    brightness_range : tuple of float
        Factor on the peak brightness of the drawing.
    jitter : float
        Relative size of the small random perturbations of shape parameters
        (axis ratios, arm wobble, clump positions).
    bulge_scale_range : tuple of float
        Factor on the bulge radius of spirals and edge-on disks with a bulge.
    arm_counts : tuple of int
        Spiral arm counts a variant picks from, uniformly; repeating a count
        weights it. The default follows Galaxy Zoo's "1, 2, 3, 4, more than 4"
        answers with two arms the most common.
    tight_pitch_deg_range, loose_pitch_deg_range, bar_pitch_deg_range : tuple of float
        Pitch angle (degrees) of logarithmic spiral arms in tightly wound,
        loosely wound and barred spirals.
    supersample : int
        Drawing is done at ``supersample`` times the output size and averaged
        down, which antialiases every edge.
    """

    variants: int = 16
    seed: int = 0
    rotation: bool = True
    mirror: bool = True
    scale_range: tuple[float, float] = (0.85, 1.05)
    offset: float = 0.04
    line_width_range: tuple[float, float] = (0.7, 1.4)
    brightness_range: tuple[float, float] = (0.75, 1.0)
    jitter: float = 0.1
    bulge_scale_range: tuple[float, float] = (0.75, 1.35)
    arm_counts: tuple[int, ...] = (1, 2, 2, 2, 3, 3, 4, 5)
    tight_pitch_deg_range: tuple[float, float] = (6.0, 11.0)
    loose_pitch_deg_range: tuple[float, float] = (20.0, 32.0)
    bar_pitch_deg_range: tuple[float, float] = (11.0, 20.0)
    supersample: int = 4

    def __post_init__(self) -> None:
        # JSON round trips give lists; store tuples so the config stays hashable
        for name in (*_RANGE_FIELDS, "arm_counts"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if self.variants < 1:
            msg = f"variants must be at least 1, got {self.variants}"
            raise ValueError(msg)
        if self.supersample < 1:
            msg = f"supersample must be at least 1, got {self.supersample}"
            raise ValueError(msg)
        if not 0 <= self.offset <= 0.2:
            msg = f"offset must be in [0, 0.2] (fraction of half the image), got {self.offset}"
            raise ValueError(msg)
        if not 0 <= self.jitter <= 0.5:
            msg = f"jitter must be in [0, 0.5], got {self.jitter}"
            raise ValueError(msg)
        for name in _RANGE_FIELDS:
            value = getattr(self, name)
            if len(value) != 2 or value[0] > value[1]:
                msg = f"{name} must be a (low, high) pair with low <= high, got {value!r}"
                raise ValueError(msg)
        if not self.arm_counts or any(int(n) != n or n < 1 for n in self.arm_counts):
            msg = f"arm_counts must be a non-empty tuple of integers >= 1, got {self.arm_counts!r}"
            raise ValueError(msg)
        if self.scale_range[0] <= 0 or self.scale_range[1] > 1.1:
            msg = (
                "scale_range must lie in (0, 1.1] so icons stay inside the image, "
                f"got {self.scale_range!r}"
            )
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-serialisable dict."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SymbolConfig:
        """Build a configuration from :meth:`to_dict` output (missing keys take defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"unknown SymbolConfig keys {unknown}; known: {', '.join(sorted(known))}"
            raise ValueError(msg)
        return cls(**dict(data))

    def to_json(self) -> str:
        """Return :meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)
