"""Registry of symbol families: one renderer per morphology class key.

Filled with the :func:`register_symbol_family` decorator (the pattern timm uses
for models), so a user can add a family for a new class::

    from galaxalign_astro.symbols import register_symbol_family

    @register_symbol_family("ring", canonical={"radius": 0.6})
    def draw_ring(canvas, p):
        canvas.ellipse(0, 0, p["radius"], p["radius"], profile="flat")
        canvas.ellipse(0, 0, p["radius"] - 0.1, p["radius"] - 0.1, value=0.0, profile="flat")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .canvas import SymbolCanvas
from .config import SymbolConfig

__all__ = [
    "SYMBOL_FAMILIES",
    "DrawFunction",
    "SampleFunction",
    "SymbolFamily",
    "get_symbol_family",
    "register_symbol_family",
]

#: ``draw(canvas, params)``: draws the canonical shape described by ``params``
DrawFunction = Callable[[SymbolCanvas, Mapping[str, Any]], None]
#: ``sample(rng, config)``: family-specific random parameters of one variant
SampleFunction = Callable[[np.random.Generator, SymbolConfig], dict[str, Any]]


@dataclass(frozen=True)
class SymbolFamily:
    """A symbol renderer for one class key.

    Attributes
    ----------
    key : str
        Class key the family draws.
    draw : callable
        ``draw(canvas, params)``; the canvas already applies rotation, mirroring,
        scale and offset, so ``draw`` describes only the canonical shape.
    canonical : mapping
        Family-specific parameters of the canonical (variant 0) icon.
    sample : callable or None
        ``sample(rng, config) -> dict`` giving the family-specific parameters of a
        random variant; ``None`` means variants differ only in the generic
        parameters (rotation, mirror, scale, offset, line width, brightness).
    """

    key: str
    draw: DrawFunction
    canonical: Mapping[str, Any] = field(default_factory=dict)
    sample: SampleFunction | None = None


SYMBOL_FAMILIES: dict[str, SymbolFamily] = {}


def register_symbol_family(
    key: str,
    *,
    canonical: Mapping[str, Any] | None = None,
    sample: SampleFunction | None = None,
    overwrite: bool = False,
) -> Callable[[DrawFunction], DrawFunction]:
    """Decorator registering a draw function as the symbol family of ``key``.

    Parameters
    ----------
    key : str
        Class key (e.g. a key of `galaxalign_astro.taxonomy.GALAXY10_DECALS`).
    canonical : mapping, optional
        Parameters of the canonical icon, passed to the draw function.
    sample : callable, optional
        ``sample(rng, config) -> dict`` of randomised parameters for variants.
    overwrite : bool
        Replace an existing family of the same key instead of raising.

    Returns
    -------
    callable
        The decorator; it returns the draw function unchanged.
    """
    if not key or not key.replace("_", "").isalnum():
        msg = f"symbol family key must be a non-empty identifier-like string, got {key!r}"
        raise ValueError(msg)

    def decorator(func: DrawFunction) -> DrawFunction:
        if key in SYMBOL_FAMILIES and not overwrite:
            msg = f"symbol family {key!r} is already registered; pass overwrite=True to replace it"
            raise ValueError(msg)
        SYMBOL_FAMILIES[key] = SymbolFamily(
            key=key, draw=func, canonical=MappingProxyType(dict(canonical or {})), sample=sample
        )
        return func

    return decorator


def get_symbol_family(key: str) -> SymbolFamily:
    """Return the registered family of ``key``; ValueError listing known keys otherwise."""
    from . import families  # noqa: F401  (registers the built-in families)

    try:
        return SYMBOL_FAMILIES[key]
    except KeyError:
        msg = f"no symbol family for class key {key!r}; known: {', '.join(sorted(SYMBOL_FAMILIES))}"
        raise ValueError(msg) from None
