"""Scaling annotation out: Dask clusters and LSDB/HATS catalogs.

`galaxalign_astro.scale.plugin` annotates the partitions of an LSDB catalog
(``catalog.map_partitions(annotate_partition, ...)``); `galaxalign_astro.scale.hats`
annotates a HATS catalog into a new one, resumable per partition, and indexes its
embeddings for similarity search one partition at a time. Every worker keeps one
loaded model (`galaxalign_astro.annotate.workers`). The Dask runner that sends the
chunks of ``annotate_file`` to a cluster belongs to annotate
(`galaxalign_astro.annotate.cluster`) and is re-exported here. See ``docs/scaleout.md``.
"""

from __future__ import annotations

from ..annotate.cluster import annotate_chunks, annotate_rows, dask_client
from ..annotate.workers import cached_models, clear_predictors, model_key, worker_predictor
from .hats import (
    HatsAnnotateSummary,
    annotate_hats,
    hats_provenance,
    index_from_hats,
    iter_hats_partitions,
)
from .plugin import annotate_partition, annotation_meta, annotation_specs

__all__ = [
    "HatsAnnotateSummary",
    "annotate_chunks",
    "annotate_hats",
    "annotate_partition",
    "annotate_rows",
    "annotation_meta",
    "annotation_specs",
    "cached_models",
    "clear_predictors",
    "dask_client",
    "hats_provenance",
    "index_from_hats",
    "iter_hats_partitions",
    "model_key",
    "worker_predictor",
]
