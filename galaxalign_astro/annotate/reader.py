"""Reading input catalogs a chunk of rows at a time.

The readers live in `galaxalign_astro.catalog.read` (one per storage format:
FITS, HDF5, Parquet, CSV, ECSV, and tables read whole by astropy), behind
`~galaxalign_astro.catalog.open_catalog`; this module keeps their names where
``annotate`` has always had them.

Every reader gives the same thing: an `InputSchema` describing the output form of the
input columns, and blocks of rows as plain (possibly masked) numpy arrays cast to it,
so the rows written do not depend on the chunk size.
"""

from __future__ import annotations

from ..catalog import open_catalog
from ..catalog.read import *  # noqa: F403
from ..catalog.read import __all__ as read_names

__all__ = [*read_names, "open_catalog"]
