"""Scaling annotation out: Dask clusters and LSDB/HATS catalogs.

`galaxalign_astro.scale.plugin` annotates the partitions of an LSDB catalog
(``catalog.map_partitions(annotate_partition, ...)``); `galaxalign_astro.scale.hats`
annotates a HATS catalog into a new one, resumable per partition, and indexes its
embeddings for similarity search one partition at a time. Every worker keeps one
loaded model (`galaxalign_astro.scale.workers`). `galaxalign_astro.scale.cluster`
holds the Dask runner that sends the chunks of ``annotate_file`` to a cluster
(`run_on_cluster`); importing this package registers it with annotate. See
``docs/scaleout.md``.
"""

from __future__ import annotations

from .cluster import (
    IN_FLIGHT_PER_THREAD,
    annotate_chunks,
    annotate_rows,
    dask_client,
    run_on_cluster,
)
from .hats import (
    HatsAnnotateSummary,
    annotate_hats,
    hats_provenance,
    index_from_hats,
    iter_hats_partitions,
)
from .plugin import annotate_partition, annotation_meta, annotation_specs
from .workers import cached_models, clear_predictors, model_key, worker_predictor

__all__ = [
    "IN_FLIGHT_PER_THREAD",
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
    "run_on_cluster",
    "worker_predictor",
]
