"""One loaded model per worker process: re-exported from `galaxalign_astro.annotate.workers`.

The Dask runner of ``annotate_file`` needs the cache, so it lives in ``annotate/``
(see ``docs/architecture.md``); this import path stays for its callers.
"""

from __future__ import annotations

from ..annotate.workers import cached_models, clear_predictors, model_key, worker_predictor

__all__ = ["cached_models", "clear_predictors", "model_key", "worker_predictor"]
