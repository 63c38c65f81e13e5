"""Class prototypes: re-exported from :mod:`galaxalign_astro.models.prototypes`.

Prototypes are part of a model (stored beside its weights and mixed when it is
loaded), so they live in ``models/``; this old import path stays for its callers.
"""

from __future__ import annotations

from ..models.prototypes import *  # noqa: F403
from ..models.prototypes import __all__  # noqa: F401
