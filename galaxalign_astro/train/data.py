"""Labelled training images: re-exported from :mod:`galaxalign_astro.datasets.prepared`.

Preparing data is the data sets' concern (layer 4); this old import path stays for
callers of ``galaxalign_astro.train.data``.
"""

from __future__ import annotations

from ..datasets.prepared import *  # noqa: F403
from ..datasets.prepared import __all__  # noqa: F401
