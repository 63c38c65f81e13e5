"""Annotating the chunks of a catalog file on a Dask cluster.

`annotate_file` (``galaxalign-astro annotate``) reads the input catalog and writes
the resumable work directory in the calling process either way; given a scheduler
(``--scheduler ADDRESS``) or a number of local workers (``--dask-workers N``) it
sends each chunk of rows to a ``distributed`` worker instead of classifying it
itself. A worker finds the chunk's cutouts (reads the path column, names files in
the cutout directory, or fetches them), runs the model it keeps loaded
(`~galaxalign_astro.scale.workers.worker_predictor`) and returns the added columns;
the calling process stores each finished chunk as it comes back, so ``--resume``,
the final merge and the output are exactly those of a single-process run.

`run_on_cluster` is the `~galaxalign_astro.annotate.ClusterRunner` that
``annotate_file`` is handed (annotate sits below scale and never imports it):
importing this module registers it
(`~galaxalign_astro.annotate.register_cluster_runner`), and the CLI passes it.

Only the columns a worker needs (the cutout path or ID column and RA/Dec) travel to
it, and at most a few chunks per worker thread are in flight at a time (ours), so
the calling process's memory stays bounded whatever the catalog size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..annotate import register_cluster_runner

__all__ = [
    "IN_FLIGHT_PER_THREAD",
    "annotate_chunks",
    "annotate_rows",
    "dask_client",
    "run_on_cluster",
]

log = logging.getLogger(__name__)

#: chunks submitted per worker thread before waiting for one to finish (ours: one
#: running, one queued behind it, so a worker never waits for the calling process)
IN_FLIGHT_PER_THREAD = 2


def quiet_dask_logs() -> None:
    """Keep Dask's start-up and shut-down INFO lines (dozens, on its own handler) off stderr.

    Its warnings and errors still show; with debug logging (``-vv``) everything does.
    """
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)


@contextlib.contextmanager
def dask_client(
    scheduler: Any = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client``: of a running cluster, or of a new local one.

    Parameters
    ----------
    scheduler : str or ``distributed.Client``, optional
        Address of a running scheduler (``tcp://host:8786``, or the path of a
        scheduler file written by ``dask scheduler --scheduler-file``), or a client
        to use as it is (it is not closed at the end).
    n_workers : int, optional
        Without ``scheduler``: start a ``distributed.LocalCluster`` of this many
        workers for the duration of the ``with`` block.
    threads_per_worker : int, optional
        Threads of each local worker (ours: 1, so one model runs per worker and
        torch's own threads do not compete with Dask's).
    processes : bool, optional
        Local workers are processes (default) or threads of this process.

    Yields
    ------
    ``distributed.Client``
    """
    from distributed import Client, LocalCluster

    if scheduler is not None and n_workers is not None:
        msg = "give a scheduler address or a number of local workers, not both"
        raise ValueError(msg)
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is not None:
        text = os.fspath(scheduler)
        if Path(text).is_file():
            client = Client(scheduler_file=text)
        else:
            client = Client(text)
        try:
            log.info("connected to the Dask scheduler at %s", client.scheduler.address)
            yield client
        finally:
            client.close()
        return
    if n_workers is None or n_workers < 1:
        msg = f"n_workers must be >= 1 without a scheduler address, got {n_workers}"
        raise ValueError(msg)
    quiet_dask_logs()
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            # a free port: a busy default port (another cluster on this machine) warns
            dashboard_address=":0",
            silence_logs=logging.WARNING,
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info(
            "started a local Dask cluster of %d worker(s); dashboard %s",
            n_workers,
            client.dashboard_link,
        )
        yield client


class _NoBar:
    def update(self, n: int) -> None:
        pass


def annotate_rows(
    table: Any,
    first_row: int,
    *,
    source_options: Mapping[str, Any],
    coords: tuple[str, str] | None,
    model: str,
    weights_sha256: str | None,
    device: str,
    prefix: str,
    embeddings: bool,
    batch_size: int,
    classes: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The added columns of one chunk of rows, computed where this runs (a Dask task).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The chunk's rows: at least the columns the cutout source and the separation
        need.
    first_row : int
        Row number of the chunk's first row in the whole catalog (names ``{row}``
        files and fetched files).
    source_options : mapping
        Keyword arguments of the cutout source (``path_col``, ``base_dir``,
        ``cutouts_dir``, ``id_col``, ``pattern``, ``fetch``, ``fetch_options``,
        ``fetch_dir``); the source is built here, so nothing unpicklable travels.
    coords : (str, str) or None
        RA and Dec column names.
    model, weights_sha256, device :
        Model directory, its expected weights checksum and the torch device
        (see `~galaxalign_astro.scale.workers.worker_predictor`).
    prefix, embeddings, batch_size :
        As for `~galaxalign_astro.annotate.annotate_file`.
    classes : `~galaxalign_astro.inference.zeroshot.ClassHead`, optional
        Zero-shot classes (computed once by the client; see
        `~galaxalign_astro.scale.workers.worker_predictor`).

    Returns
    -------
    columns : dict of ndarray
        Added columns keyed by name without the prefix.
    fetch_counts : dict
        Fetched cutouts by origin (empty unless fetching).
    """
    from ..annotate import CutoutSpec
    from ..annotate.engine import Annotator, catalog_radec, cutout_source
    from .workers import worker_predictor

    predictor = worker_predictor(
        model, device=device, weights_sha256=weights_sha256, classes=classes
    )
    source = cutout_source(CutoutSpec(**source_options), coords=coords, preprocess=predictor.config)
    if source is None:  # pragma: no cover - CutoutSpec refuses no source
        msg = "annotate_rows needs cutout files or a survey, not images in memory"
        raise ValueError(msg)
    # the Dask workers are the parallelism, and their processes may not fork loaders
    annotator = Annotator(
        predictor, prefix=prefix, embeddings=embeddings, batch_size=batch_size, workers=0
    )
    try:
        paths, errors = source.resolve(table, first_row)
    finally:
        source.close()
    added = annotator.block(paths, errors, catalog_radec(table, coords), _NoBar())
    return added, dict(getattr(source, "counts", {}))


def _needed_columns(table: Any, source_options: Mapping[str, Any], coords: Any) -> list[str]:
    names = [source_options.get("path_col"), source_options.get("id_col")]
    names += list(coords or ())
    return [n for n in dict.fromkeys(names) if n is not None and n in table.colnames]


def annotate_chunks(
    chunks: Iterable[tuple[int, Any]],
    client: Any,
    *,
    chunk_size: int,
    source_options: Mapping[str, Any],
    coords: tuple[str, str] | None,
    model: str,
    weights_sha256: str | None,
    device: str,
    prefix: str,
    embeddings: bool,
    batch_size: int,
    classes: Any = None,
    max_in_flight: int | None = None,
) -> Iterator[tuple[int, Any, dict[str, np.ndarray], dict[str, int]]]:
    """Annotate ``(chunk index, rows)`` on the cluster; yield results as they finish.

    Yields ``(chunk index, rows, added columns, fetch counts)`` in completion order
    (not input order). At most ``max_in_flight`` chunks (default
    `IN_FLIGHT_PER_THREAD` per worker thread) are submitted and not yet yielded.
    Closing the generator cancels the chunks still running.
    """
    from distributed import as_completed

    if max_in_flight is None:
        threads = sum(client.nthreads().values()) or 1
        max_in_flight = IN_FLIGHT_PER_THREAD * threads
    options = dict(source_options)
    run = uuid.uuid4().hex[:8]
    pending: dict[Any, tuple[int, Any]] = {}
    queue = as_completed()
    todo = iter(chunks)

    def submit() -> bool:
        item = next(todo, None)
        if item is None:
            return False
        k, table = item
        needed = _needed_columns(table, options, coords)
        future = client.submit(
            annotate_rows,
            table[needed],
            k * chunk_size,
            source_options=options,
            coords=coords,
            model=model,
            weights_sha256=weights_sha256,
            device=device,
            prefix=prefix,
            embeddings=embeddings,
            batch_size=batch_size,
            classes=classes,
            key=f"galaxalign-annotate-{run}-{k}",
        )
        pending[future] = (k, table)
        queue.add(future)
        return True

    try:
        while len(pending) < max_in_flight and submit():
            pass
        for future in queue:
            k, table = pending.pop(future)
            added, counts = future.result()
            future.release()
            submit()
            yield k, table, added, counts
    finally:
        if pending:
            client.cancel(list(pending))


def run_on_cluster(
    chunks: Iterable[tuple[int, Any]],
    *,
    scheduler: Any,
    dask_workers: int | None,
    source: Any,
    source_options: Mapping[str, Any],
    coords: tuple[str, str] | None,
    annotator: Any,
    device: str,
    chunk_size: int,
    store: Any,
    bar: Any,
) -> None:
    """Classify ``chunks`` on a Dask cluster and ``store`` each as it comes back.

    The `~galaxalign_astro.annotate.ClusterRunner` of
    `~galaxalign_astro.annotate.annotate_file` (see there for the arguments).
    """
    from .workers import model_key

    loaded = annotator.predictor.loaded
    with dask_client(scheduler, n_workers=dask_workers) as client:
        for index, table, added, counts in annotate_chunks(
            chunks,
            client,
            chunk_size=chunk_size,
            source_options=source_options,
            coords=coords,
            model=model_key(loaded),
            weights_sha256=loaded.weights_sha256,
            classes=annotator.predictor.head if annotator.predictor.head.zero_shot else None,
            device=device,
            prefix=annotator.prefix,
            embeddings=annotator.embeddings,
            batch_size=annotator.batch_size,
        ):
            store(index, table, added)
            if isinstance(getattr(source, "counts", None), dict):
                for key, n in counts.items():
                    source.counts[key] = source.counts.get(key, 0) + n
            bar.update(len(table))


register_cluster_runner(run_on_cluster)
