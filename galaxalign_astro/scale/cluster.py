"""The Dask runner of ``annotate_file``: re-exported from `galaxalign_astro.annotate.cluster`.

``annotate_file(scheduler=...)`` is annotate's own API, so its Dask runner lives in
``annotate/`` (a lower layer than ``scale/``, see ``docs/architecture.md``); this
import path stays for its callers.
"""

from __future__ import annotations

from ..annotate.cluster import IN_FLIGHT_PER_THREAD, annotate_chunks, annotate_rows, dask_client

__all__ = ["IN_FLIGHT_PER_THREAD", "annotate_chunks", "annotate_rows", "dask_client"]
