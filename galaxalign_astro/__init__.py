"""galaxalign-astro: GalaxAlign galaxy morphology classification and similarity search.

Importing the package is cheap: heavy modules (torch, open_clip) load on first use
of the functions that need them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._version import __version__

__all__ = [
    "__version__",
    "add_morphology_columns",
    "classify",
    "create_model",
    "load_model",
]

_LAZY = {
    "classify": "galaxalign_astro.inference.run",
    "add_morphology_columns": "galaxalign_astro.inference.run",
    "load_model": "galaxalign_astro.models.checkpoint",
    "create_model": "galaxalign_astro.models.factory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    msg = f"module 'galaxalign_astro' has no attribute {name!r}"
    raise AttributeError(msg)
