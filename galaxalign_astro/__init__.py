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
    "annotate_file",
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


def annotate_file(*args: Any, **kwargs: Any) -> Any:
    """`galaxalign_astro.annotate.annotate_file`, with the Dask runner of ``scale`` at hand.

    annotate sits below scale and never imports it (``docs/architecture.md``), so
    ``annotate_file(scheduler=...)`` needs scale's runner: this entry point imports
    `galaxalign_astro.scale` (which registers `~galaxalign_astro.scale.run_on_cluster`)
    and then runs annotate's function with the same arguments.
    """
    from . import scale  # noqa: F401 - registers the Dask runner
    from .annotate import annotate_file as run

    return run(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    msg = f"module 'galaxalign_astro' has no attribute {name!r}"
    raise AttributeError(msg)
