"""Adding morphology columns to user catalogs: the functions, where they used to live.

The annotation code is split by concern: `galaxalign_astro.annotate.params` (the
validated parameters), `galaxalign_astro.annotate.engine` (the model and the cutout
sources), `galaxalign_astro.annotate.table` (`annotate`, tables in memory) and
`galaxalign_astro.annotate.stream` (`annotate_file`, streamed and resumable). This
import path stays for their callers.
"""

from __future__ import annotations

from .params import DEFAULT_CHUNK_SIZE
from .stream import MAX_REPORTED_FAILURES, SHOWN_FAILURES, AnnotateSummary, annotate_file
from .table import annotate

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_REPORTED_FAILURES",
    "SHOWN_FAILURES",
    "AnnotateSummary",
    "annotate",
    "annotate_file",
]
