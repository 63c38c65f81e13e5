"""One loaded model per worker process, shared by every task that runs there.

A Dask worker runs many tasks (catalog chunks, HATS partitions) one after another,
possibly in several threads. Loading the model for each task would cost seconds per
task, so `worker_predictor` keeps the loaded
`~galaxalign_astro.inference.Predictor` in a module-level cache keyed by the model
directory and device: the first task on a worker loads it and the others reuse it.
The cache lives in the process, so threads of one worker (and in-process workers of
a ``LocalCluster(processes=False)``) share one copy (ours: this is simpler than a
Dask ``WorkerPlugin`` and also works without a cluster).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["cached_models", "clear_predictors", "model_key", "worker_predictor"]

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
#: models loaded by this process (the cache's misses), for tests and logs
_LOADS: list[tuple[str, str]] = []


def model_key(model: Any) -> str:
    """The model directory (absolute) of a bundled name, a path or a loaded model.

    Workers load the model from this path, so on a cluster it must be on storage
    every worker sees.
    """
    from ..inference.run import Predictor
    from ..models.checkpoint import LoadedModel, resolve_model_path

    if isinstance(model, Predictor):
        return str(Path(model.loaded.path).resolve())
    if isinstance(model, LoadedModel):
        return str(Path(model.path).resolve())
    return str(resolve_model_path(os.fspath(model)).resolve())


def worker_predictor(
    model: Any,
    *,
    device: str = "cpu",
    weights_sha256: str | None = None,
    classes: Any = None,
) -> Any:
    """The process's `~galaxalign_astro.inference.Predictor` of ``model``, loaded once.

    Parameters
    ----------
    model : str, path-like or `~galaxalign_astro.inference.Predictor`
        Bundled model name or model directory. A ``Predictor`` is returned as it is
        (and cached under its directory for later calls in this process).
    device : str, optional
        torch device of the loaded model.
    weights_sha256 : str, optional
        Expected SHA-256 of the weights: a worker that finds other weights at the
        path (a model directory replaced during a run, or a different copy on a
        worker's disk) raises instead of annotating with them.
    classes : `~galaxalign_astro.inference.zeroshot.ClassHead`, optional
        Zero-shot classes to classify into instead of the model's own; the model is
        still loaded once and shared (a ``ClassHead`` is plain numbers, so it travels
        to workers without the class file and its drawings).

    Returns
    -------
    `~galaxalign_astro.inference.Predictor`

    Raises
    ------
    ValueError
        The weights at the path differ from ``weights_sha256``.
    """
    from ..inference.run import Predictor

    key = (model_key(model), str(device))
    if isinstance(model, Predictor) and model.head.zero_shot and classes is None:
        classes = model.head
    with _LOCK:
        predictor = _CACHE.get(key)
        if predictor is None:
            if isinstance(model, Predictor):
                # the cache holds the model with its own classes
                predictor = model.with_classes(None) if model.head.zero_shot else model
            else:
                log.info("loading model %s on %s in process %d", key[0], device, os.getpid())
                predictor = Predictor(key[0], device=device)
                _LOADS.append(key)
            _CACHE[key] = predictor
    found = predictor.loaded.weights_sha256
    if weights_sha256 is not None and found != weights_sha256.lower():
        msg = (
            f"model {key[0]} has weights sha256 {found[:12]}... on this worker (pid "
            f"{os.getpid()}) but the run was started with {weights_sha256[:12]}...; every "
            "worker must see the same model directory"
        )
        raise ValueError(msg)
    if classes is not None:
        return predictor.with_classes(classes)
    return predictor


def cached_models() -> list[tuple[str, str]]:
    """``(model directory, device)`` of every model this process has loaded itself."""
    with _LOCK:
        return list(_LOADS)


def clear_predictors() -> None:
    """Forget the cached models of this process (their memory is freed when unused)."""
    with _LOCK:
        _CACHE.clear()
        _LOADS.clear()
