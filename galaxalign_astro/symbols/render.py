"""Render symbols: one icon, or a bank of randomised variants per class."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .canvas import SymbolCanvas
from .config import SymbolConfig
from .registry import get_symbol_family

__all__ = ["GENERIC_PARAMS", "render_symbol", "symbol_bank", "symbol_params", "variant_seed"]

log = logging.getLogger(__name__)

#: parameters every family understands (applied by the canvas); canonical values
GENERIC_PARAMS: Mapping[str, Any] = {
    "rotation": 0.0,
    "mirror": False,
    "scale": 1.0,
    "offset": (0.0, 0.0),
    "line_width": 1.0,
    "brightness": 1.0,
    "squash": 1.0,
}


def _generic_sample(rng: np.random.Generator, config: SymbolConfig) -> dict[str, Any]:
    return {
        "rotation": float(rng.uniform(0.0, 360.0)) if config.rotation else 0.0,
        "mirror": bool(rng.integers(0, 2)) if config.mirror else False,
        "scale": float(rng.uniform(*config.scale_range)),
        "offset": tuple(float(x) for x in rng.uniform(-config.offset, config.offset, size=2)),
        "line_width": float(rng.uniform(*config.line_width_range)),
        "brightness": float(rng.uniform(*config.brightness_range)),
    }


def symbol_params(
    key: str,
    *,
    rng: np.random.Generator | int | None = None,
    variant_params: Mapping[str, Any] | None = None,
    config: SymbolConfig | None = None,
) -> dict[str, Any]:
    """Return the full parameter dict of one symbol (generic and family-specific).

    Parameters
    ----------
    key : str
        Class key of a registered symbol family.
    rng : `numpy.random.Generator`, int or None
        Source of the random variant parameters; ``None`` gives the canonical icon.
    variant_params : mapping, optional
        Values that override the canonical or sampled ones; keys must be known
        parameters of the family or of `GENERIC_PARAMS`.
    config : `SymbolConfig`, optional
        Ranges of the random parameters (default `SymbolConfig()`).
    """
    family = get_symbol_family(key)
    config = SymbolConfig() if config is None else config
    params: dict[str, Any] = {**GENERIC_PARAMS, **family.canonical}
    if rng is not None:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        params.update(_generic_sample(gen, config))
        if family.sample is not None:
            params.update(family.sample(gen, config))
    if variant_params:
        unknown = sorted(set(variant_params) - set(params))
        if unknown:
            msg = (
                f"unknown symbol parameters {unknown} for family {key!r}; "
                f"known: {', '.join(sorted(params))}"
            )
            raise ValueError(msg)
        params.update(variant_params)
    return params


def render_symbol(
    key: str,
    *,
    size: int = 224,
    rng: np.random.Generator | int | None = None,
    variant_params: Mapping[str, Any] | None = None,
    config: SymbolConfig | None = None,
) -> np.ndarray:
    """Draw the schematic icon of a morphology class.

    Parameters
    ----------
    key : str
        Class key, e.g. ``"barred_spiral"`` (see `galaxalign_astro.taxonomy`).
    size : int
        Side of the square output image in pixels (at least 8).
    rng : `numpy.random.Generator`, int or None
        Randomises the variant; ``None`` draws the canonical, un-randomised icon.
    variant_params : mapping, optional
        Parameter overrides (see `symbol_params`), e.g. ``{"n_arms": 3}``.
    config : `SymbolConfig`, optional
        Ranges of the random parameters and the supersampling factor.

    Returns
    -------
    `numpy.ndarray`
        uint8 array (size, size, 3): a light grey drawing on black, centred.
    """
    config = SymbolConfig() if config is None else config
    p = symbol_params(key, rng=rng, variant_params=variant_params, config=config)
    canvas = SymbolCanvas(
        size,
        supersample=config.supersample,
        rotation=p["rotation"],
        mirror=p["mirror"],
        scale=p["scale"],
        offset=p["offset"],
        line_width=p["line_width"],
        brightness=p["brightness"],
        squash=p["squash"],
    )
    get_symbol_family(key).draw(canvas, p)
    return canvas.to_uint8()


def variant_seed(config: SymbolConfig, key: str, variant: int) -> np.random.SeedSequence:
    """Seed of variant ``variant`` of class ``key``: independent of the other classes in a bank."""
    return np.random.SeedSequence([config.seed, zlib.crc32(key.encode()), variant])


def symbol_bank(
    keys: Sequence[str], *, size: int, config: SymbolConfig | None = None
) -> np.ndarray:
    """Render ``config.variants`` symbols for every class key.

    Parameters
    ----------
    keys : sequence of str
        Class keys, in label order.
    size : int
        Side of each symbol in pixels.
    config : `SymbolConfig`, optional
        Number of variants, seed and parameter ranges.

    Returns
    -------
    `numpy.ndarray`
        uint8 array (len(keys), variants, size, size, 3). Variant 0 is the
        canonical icon; the others are deterministic in ``config.seed`` and
        depend only on the class key, not on the other keys.
    """
    config = SymbolConfig() if config is None else config
    keys = list(keys)
    for key in keys:
        get_symbol_family(key)
    bank = np.zeros((len(keys), config.variants, size, size, 3), dtype=np.uint8)
    for i, key in enumerate(keys):
        for v in range(config.variants):
            rng = None if v == 0 else np.random.default_rng(variant_seed(config, key, v))
            bank[i, v] = render_symbol(key, size=size, rng=rng, config=config)
    log.debug("rendered %d x %d symbols of %d px", len(keys), config.variants, size)
    return bank
