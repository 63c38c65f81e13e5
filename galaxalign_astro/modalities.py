"""The symbol and text sides of every class, from the settings stored with a model.

One place turns a model's stored :class:`~galaxalign_astro.symbols.SymbolConfig` and
:class:`~galaxalign_astro.text.TextConfig` dictionaries into per-class symbol
images and descriptions, for training, prototypes and zero-shot classes alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["class_symbol_images", "class_text_lists", "node_symbol_images"]


def class_text_lists(keys: Sequence[str], text: dict[str, Any] | None = None) -> list[list[str]]:
    """Descriptions x templates of every class key, as configured."""
    from .text import TextConfig

    config = TextConfig.from_dict(text or {})
    return [config.class_texts(key) for key in keys]


def class_symbol_images(
    keys: Sequence[str], symbols: dict[str, Any] | None = None, *, size: int
) -> np.ndarray:
    """uint8 (n_keys, variants, size, size, 3) symbol images, as configured."""
    from .symbols import SymbolConfig, symbol_bank

    return symbol_bank(keys, size=size, config=SymbolConfig.from_dict(symbols or {}))


def node_symbol_images(taxonomy, symbols: dict[str, Any] | None = None, *, size: int) -> np.ndarray:
    """uint8 (n_nodes, variants, size, size, 3) symbols of every class and coarse group.

    A coarse group has no drawing of its own (ours): its variants are taken in turn
    from its members' variants, so "spiral" shows barred, tight and loose spirals.
    """
    bank = class_symbol_images(taxonomy.keys, symbols, size=size)
    variants = bank.shape[1]
    index = {k: i for i, k in enumerate(taxonomy.keys)}
    groups = []
    for group in taxonomy.groups:
        members = [index[m] for m in group.members]
        groups.append(
            np.stack([bank[members[v % len(members)], v // len(members)] for v in range(variants)])
        )
    return np.concatenate([bank, np.stack(groups)]) if groups else bank
