"""Schematic morphology symbols: procedurally drawn icons, one family per class.

The second modality of GalaxAlign (see PAPER.md, "Modalities"). The icons,
their randomised variants and the style (light grey drawing on black, 3-channel
uint8, centred) are ours.
"""

from __future__ import annotations

from . import families as _families  # noqa: F401  (registers the built-in families)
from .canvas import SymbolCanvas
from .config import SymbolConfig
from .drawing import load_drawing
from .montage import symbol_montage, write_symbol_set
from .registry import (
    SYMBOL_FAMILIES,
    SymbolFamily,
    get_symbol_family,
    register_symbol_family,
)
from .render import GENERIC_PARAMS, render_symbol, symbol_bank, symbol_params, variant_seed

__all__ = [
    "GENERIC_PARAMS",
    "SYMBOL_FAMILIES",
    "SymbolCanvas",
    "SymbolConfig",
    "SymbolFamily",
    "get_symbol_family",
    "load_drawing",
    "register_symbol_family",
    "render_symbol",
    "symbol_bank",
    "symbol_montage",
    "symbol_params",
    "variant_seed",
    "write_symbol_set",
]
