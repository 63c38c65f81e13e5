"""Annotating catalog files of any size: streamed in chunks, resumable, any format.

`annotate_file` reads the input a chunk of rows at a time
(`galaxalign_astro.annotate.reader`), finds each row's cutout (a path column, a
directory, or a survey service: `galaxalign_astro.annotate.cutouts`), classifies the
chunk (`galaxalign_astro.annotate.engine`), stores the finished chunk in the work
directory (`galaxalign_astro.annotate.workdir`), and finally streams the parts in
order into the output catalog (`galaxalign_astro.catalog.open_writer`). While the
model works, a background thread reads and fetches the next chunks
(`galaxalign_astro.annotate.prefetch`).

On a Dask cluster (``scheduler=`` or ``dask_workers=``) the chunks are classified by
a *cluster runner* (`ClusterRunner`) instead of in this process. annotate does not
own one: it sits below ``scale`` (``docs/architecture.md``), so the runner is handed
in (``runner=``) or registered with `register_cluster_runner`;
`galaxalign_astro.scale` registers its Dask runner when it is imported, and the CLI
and ``galaxalign_astro.annotate_file`` import it when a cluster is asked for.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from ..catalog import ColumnSpec
from .engine import (
    Annotator,
    catalog_radec,
    coord_columns,
    cutout_source,
    predictor_for,
    progress_bar,
)
from .params import AnnotateOptions, CutoutSpec, settings_from_keywords
from .prefetch import PREFETCH_CHUNKS, Chunk, in_background, resolved_chunks

__all__ = [
    "AnnotateSummary",
    "ClusterRunner",
    "annotate_file",
    "register_cluster_runner",
    "registered_cluster_runner",
]

log = logging.getLogger(__name__)
#: failed rows named on stderr at the end of a run (all are in the output)
SHOWN_FAILURES = 10
#: failed rows listed in a summary (all of them are in the catalog)
MAX_REPORTED_FAILURES = 20

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: the keyword arguments annotate_file takes beside ``source`` and ``options``
_FILE_KEYWORDS = frozenset(
    (
        "model classes path_col base_dir cutouts_dir id_col pattern fetch fetch_options "
        "fetch_dir ra_col dec_col input_format hdf5_path prefix embeddings chunk_size "
        "batch_size device workers resume restart overwrite embeddings_hdf5 progress "
        "command scheduler dask_workers"
    ).split()
)


@dataclass
class AnnotateSummary:
    """Outcome of `annotate_file`.

    Attributes
    ----------
    output : str
        The catalog written.
    n_rows, n_ok, n_failed : int
        Rows in total, classified, and kept with ``status='error'``.
    seconds : float
        Wall time of this call.
    rows_resumed : int
        Rows taken from an interrupted earlier run.
    failures : list of (int, str)
        Row index and message of the first failed rows.
    class_counts : dict
        Rows per predicted class.
    fetch_counts : dict
        Fetched cutouts by origin (``network``, ``cache``, ``exists``, ``error``).
    """

    output: str
    n_rows: int
    n_ok: int
    n_failed: int
    seconds: float
    rows_resumed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    fetch_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Rows annotated by this call per second."""
        done = self.n_rows - self.rows_resumed
        return done / self.seconds if self.seconds > 0 else float("nan")


#: Classifies the chunks of `annotate_file` on a cluster, storing each as it finishes.
#: Called with the chunks still to do (``(chunk index, rows)``) and keyword arguments:
#: ``scheduler``, ``dask_workers`` (as given to `annotate_file`), ``source`` (this
#: process's cutout source, whose ``counts`` it adds to), ``source_options``
#: (`CutoutSpec` fields with absolute paths, to build the source where the chunk
#: runs), ``coords`` (RA and Dec column names), ``annotator`` (the
#: `~galaxalign_astro.annotate.engine.Annotator` of this run), ``device``,
#: ``chunk_size``, ``store`` (call ``store(index, rows, added columns)`` for each
#: finished chunk) and ``bar`` (a progress bar to ``update(n_rows)``).
#: `galaxalign_astro.scale.run_on_cluster` is the Dask one.
ClusterRunner = Callable[..., None]


_RUNNERS: list[ClusterRunner] = []


def register_cluster_runner(runner: ClusterRunner) -> None:
    """Make ``runner`` the one `annotate_file` uses on a cluster when none is handed in."""
    _RUNNERS[:] = [runner]


def registered_cluster_runner() -> ClusterRunner | None:
    """The runner `register_cluster_runner` set, or None."""
    return _RUNNERS[0] if _RUNNERS else None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _header_safe(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Input metadata without keys that would break a FITS header (structural keywords)."""
    from ..catalog import fits_header_cards

    out = {}
    for key, value in meta.items():
        try:
            fits_header_cards({key: value})
        except ValueError:
            log.debug("input metadata %r is a FITS structural keyword; left out", key)
            continue
        out[key] = value
    return out


def _store_chunk(
    work: Any,
    schema: Any,
    columns: list[ColumnSpec],
    prefix: str,
    index: int,
    table: Any,
    added: Mapping[str, np.ndarray],
) -> None:
    from ..catalog.columns import prepare_chunk

    record = schema.conform(table)
    record.update({prefix + k: v for k, v in added.items()})
    arrays, _ = prepare_chunk(record, columns)
    work.write_part(index, arrays)


def _holding_output_lock(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `annotate_file` holding the writer lock of its output (`WorkDir.lock`).

    The lock covers everything the run does to ``<output>.partial`` and the output,
    from looking for an unfinished run to removing the work directory, so a second
    run on the same output fails at once (`~galaxalign_astro.errors.OutputLockedError`)
    instead of resuming, restarting or merging parts under the first one's feet.
    """

    @functools.wraps(func)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from ..catalog import output_format
        from ..catalog.base import check_output_path
        from .workdir import WorkDir

        output = Path(kwargs["output"] if "output" in kwargs else args[1])  # type: ignore[arg-type]
        output_format(output)  # an unusable name is refused before anything is made
        if not output.parent.is_dir():
            check_output_path(output, overwrite=True)  # the folder, which the lock needs
        with WorkDir(output).lock():
            return func(*args, **kwargs)

    return locked


@_holding_output_lock
def annotate_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    source: CutoutSpec | None = None,
    options: AnnotateOptions | None = None,
    *,
    runner: ClusterRunner | None = None,
    **keywords: Any,
) -> AnnotateSummary:
    """Add morphology columns to every row of a catalog file, streaming and resumable.

    Every input column and row is kept, in order; the model's columns are appended
    (see `~galaxalign_astro.annotate.annotation_columns`). Rows whose cutout cannot
    be found, fetched or read are kept with ``status='error'`` and the reason in
    ``message``; they never stop the run.

    Parameters
    ----------
    input : str or path-like
        Any catalog astropy reads (FITS, Parquet, HDF5, CSV, ECSV, VOTable...).
        FITS, Parquet, HDF5, CSV and ECSV are read in chunks; others whole.
    output : str or path-like
        Output catalog; its suffix selects the format (``.fits``, ``.hdf5``/``.h5``,
        ``.parquet``, ``.ecsv``, ``.csv``).
    source : `~galaxalign_astro.annotate.CutoutSpec`
        Where the cutouts come from: a path column, a directory or a survey (not
        images in memory).
    options : `~galaxalign_astro.annotate.AnnotateOptions`, optional
        The model, the added columns and the run's settings (default: the
        defaults of `~galaxalign_astro.annotate.AnnotateOptions`).
    runner : callable, optional
        The `ClusterRunner` that classifies the chunks when ``options`` asks for a
        Dask cluster (default: the registered one, `register_cluster_runner`;
        `galaxalign_astro.scale.run_on_cluster` once ``galaxalign_astro.scale`` is
        imported).
    **keywords
        The fields of ``source`` and ``options`` as keyword arguments, as this
        function took them before: they build the two values, or replace those
        fields of the values given. They are:
    model : str, path-like, `~galaxalign_astro.models.LoadedModel` or `Predictor`
        Bundled model name or model directory (or a loaded model, or a
        `~galaxalign_astro.inference.Predictor` to reuse).
    classes : path-like, ``ClassSet`` or ``ClassHead``, optional
        Zero-shot classes to classify into instead of the model's own: a class file
        (see `~galaxalign_astro.inference.zeroshot`). The probability column then
        has one entry per such class; the file and the SHA-256 of the classes'
        prototypes go into the provenance, and ``resume`` refuses other classes.
    path_col : str, optional
        Column of cutout file paths (relative paths start at ``base_dir``, default
        the current directory).
    cutouts_dir : path-like, optional
        Directory of cutouts named by ``pattern`` (fields ``{id}``: the value of
        ``id_col``; ``{row}``: the zero-based row number).
    fetch : str or `~galaxalign_astro.fetch.SurveyClient`, optional
        Survey to fetch cutouts from (``'legacysurvey'``, ``'sdss'``, ``'hips'``).
        ``fetch_options`` holds the geometry (``size``, ``pixscale``, ``bands``;
        default: the model's bands and field of view), ``max_workers`` and client
        options (``layer``, ``base_url``, ``cache_dir``, ``cache``, ``rate_limit``,
        ``timeout``, ``max_retries``, ``hips_ids``). Files go to ``fetch_dir``
        (default: inside the work directory, removed at the end).
    ra_col, dec_col : str, optional
        Coordinate columns; found by name (``ra``, ``RAJ2000``, ...) by default.
        Needed to fetch; otherwise used for the separation column when present.
    input_format, hdf5_path : str, optional
        astropy format of ``input`` and the dataset path of an HDF5 input.
    prefix : str, optional
        Prepended to the added column names (default ``'gxa_'``); an input column
        with one of those names is an error.
    embeddings : bool, optional
        Add the embedding column.
    chunk_size : int, optional
        Rows per chunk: memory depends on it, not on the catalog size.
    batch_size, device, workers : optional
        Inference settings (``workers``: cutout-reading processes; default
        automatic, and 0 when fetching).
    resume : bool, optional
        Continue the unfinished run left in ``<output>.partial`` (refused when the
        input's content, by SHA-256, the model or the settings differ); starts
        afresh when there is none.
    restart : bool, optional
        Discard an unfinished run instead.
    overwrite : bool, optional
        Replace an existing output.
    embeddings_hdf5 : path-like, optional
        Also write the row index, ``id_col`` and the added columns as h5py datasets
        (see `~galaxalign_astro.annotate.hdf5`).
    progress : bool, optional
        Show a progress bar with rate and ETA on stderr.
    command : str, optional
        Command line recorded in the provenance.
    scheduler : str or ``distributed.Client``, optional
        Classify the chunks on this Dask cluster (a scheduler address, a scheduler
        file, or a client) instead of in this process; this process still reads the
        input and writes the work directory and the output, so the catalog and
        ``resume`` are the same (see `galaxalign_astro.scale.cluster`). Every
        worker must see the model directory and the cutouts; ``fetch`` must then
        be a survey name.
    dask_workers : int, optional
        Like ``scheduler``, on a local cluster of this many worker processes.

    Returns
    -------
    AnnotateSummary

    Raises
    ------
    OutputExistsError
        ``output`` exists and ``overwrite`` is false.
    OutputLockedError
        Another run on the same output is in progress (it holds the output's
        writer lock, ``.<output name>.galaxalign.lock``).
    ValueError
        Bad options, unusable columns, an unfinished run in the way, or a resume
        that does not match.
    """
    from ..catalog import open_writer, output_format
    from ..catalog.base import check_output_path
    from ..catalog.columns import prepare_chunk
    from ..errors import OutputExistsError
    from ..utils import file_sha256
    from .hdf5 import ColumnsHdf5Writer
    from .reader import open_catalog
    from .workdir import MANIFEST_VERSION, WorkDir, check_resumable, settings_digest

    t0 = time.perf_counter()
    input, output = Path(input), Path(output)
    out_format = output_format(output)
    spec, opts = settings_from_keywords(
        "annotate_file", source, options, keywords, allowed=_FILE_KEYWORDS
    )
    if spec.images is not None:
        msg = "annotate_file reads cutout files or fetches them; for images in memory use annotate"
        raise ValueError(msg)
    on_cluster = opts.on_cluster
    if on_cluster and runner is None:
        runner = registered_cluster_runner()
        if runner is None:
            msg = (
                "annotate_file on a Dask cluster needs a cluster runner: import "
                "galaxalign_astro.scale (which registers its Dask runner), pass "
                "runner=galaxalign_astro.scale.run_on_cluster, or call "
                "galaxalign_astro.annotate_file"
            )
            raise ValueError(msg)
    work = WorkDir(output)
    resuming = False
    if work.exists():
        if opts.restart:
            log.info("discarding the unfinished run in %s", work.path)
            work.remove()
        elif opts.resume:
            resuming = True
        else:
            msg = (
                f"{work.path} holds an unfinished run for {output}: continue it with "
                "resume=True (--resume) or discard it with restart=True (--restart)"
            )
            raise OutputExistsError(msg)
    old_manifest = work.read_manifest() if resuming else {}
    if not old_manifest.get("merging"):
        check_output_path(output, overwrite=opts.overwrite or old_manifest.get("overwrite", False))
    if opts.embeddings_hdf5 is not None:
        check_output_path(opts.embeddings_hdf5, overwrite=opts.overwrite or bool(old_manifest))

    if on_cluster and spec.fetch is not None and not isinstance(spec.fetch, str):
        msg = "with a Dask cluster, give fetch as a survey name (workers build their own client)"
        raise ValueError(msg)
    with open_catalog(input, format=opts.input_format, hdf5_path=opts.hdf5_path) as reader:
        # on a cluster the workers run the model; this copy gives columns and provenance
        predictor = predictor_for(opts.model, "cpu" if on_cluster else opts.device, opts.classes)
        config = predictor.config
        coords = coord_columns(
            reader.template, opts.ra_col, opts.dec_col, required=spec.fetch is not None
        )
        cutouts = cutout_source(
            spec.replace(fetch_dir=spec.fetch_dir or work.cutouts),
            coords=coords,
            preprocess=config,
        )
        assert cutouts is not None  # images in memory were refused above
        cutouts.check(reader.template)
        workers = opts.workers
        if spec.fetch is not None and workers is None:
            workers = 0  # decoding is not the bottleneck, and no fork beside fetch threads
        annotator = Annotator(
            predictor,
            prefix=opts.prefix,
            embeddings=opts.embeddings,
            batch_size=opts.batch_size,
            workers=workers,
        )
        schema = reader.schema
        clash = sorted({s.name for s in schema.specs} & {s.name for s in annotator.columns})
        if clash:
            msg = (
                f"input catalog {input} already has column(s) {', '.join(clash)}; choose "
                "another prefix (--prefix)"
            )
            raise ValueError(msg)
        columns = [*schema.specs, *annotator.columns]
        settings = {
            **cutouts.settings(),
            "ra_col": coords[0] if coords else None,
            "dec_col": coords[1] if coords else None,
            "prefix": opts.prefix,
            "embeddings": opts.embeddings,
            "chunk_size": opts.chunk_size,
            "batch_size": opts.batch_size,
            "input_format": reader.format,
            "hdf5_path": opts.hdf5_path,
            "output_format": out_format,
            "preprocess": config.to_dict(),
        }
        if predictor.head.zero_shot:  # only then, so earlier runs' settings stay valid
            settings["classes_sha256"] = predictor.head.sha256
        stat = input.stat()
        log.info("hashing %s (%d bytes) to key the resumable run", input, stat.st_size)
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "input": {
                "path": str(input.resolve()),
                "sha256": file_sha256(input),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            },
            "output": str(output.resolve()),
            "model": {
                "name": predictor.loaded.spec.name,
                "weights_sha256": predictor.loaded.weights_sha256,
            },
            "settings": settings,
            "settings_sha256": settings_digest(settings),
            "n_rows": reader.n_rows,
            "columns": [spec.name for spec in columns],
            "started": _now(),
            "overwrite": opts.overwrite,
            "merging": False,
        }
        if resuming:
            check_resumable(old_manifest, manifest, work.path)
            manifest["started"] = old_manifest.get("started", manifest["started"])
            manifest["overwrite"] = opts.overwrite or old_manifest.get("overwrite", False)
            manifest["merging"] = old_manifest.get("merging", False)
            work.write_manifest(manifest)
        else:
            work.create(manifest)

        n_chunks = -(-reader.n_rows // opts.chunk_size)
        done = {k for k in work.done_chunks() if k < n_chunks}
        rows_resumed = sum(min(opts.chunk_size, reader.n_rows - k * opts.chunk_size) for k in done)
        if done:
            log.info("resuming: %d of %d chunks were finished", len(done), n_chunks)
        cancel = threading.Event()
        cutouts.cancel = cancel
        chunks: Iterator[Chunk] = (
            iter(()) if on_cluster else resolved_chunks(reader, cutouts, opts.chunk_size, done)
        )
        if cutouts.slow and not on_cluster:
            chunks = in_background(chunks, depth=PREFETCH_CHUNKS, cancel=cancel)
        try:
            with progress_bar(reader.n_rows, rows_resumed, opts.progress) as bar:
                if on_cluster:
                    assert runner is not None  # looked up above
                    cluster_options = spec.replace(
                        base_dir=Path(spec.base_dir or ".").resolve(),
                        cutouts_dir=Path(spec.cutouts_dir).resolve() if spec.cutouts_dir else None,
                        fetch_dir=Path(spec.fetch_dir or work.cutouts).resolve(),
                    ).keywords()
                    runner(
                        reader.chunks(opts.chunk_size, skip=done),
                        scheduler=opts.scheduler,
                        dask_workers=opts.dask_workers,
                        source=cutouts,
                        source_options=cluster_options,
                        coords=coords,
                        annotator=annotator,
                        device=opts.device,
                        chunk_size=opts.chunk_size,
                        store=partial(_store_chunk, work, schema, columns, opts.prefix),
                        bar=bar,
                    )
                for chunk in chunks:
                    radec = catalog_radec(chunk.table, coords)
                    added = annotator.block(chunk.paths, chunk.errors, radec, bar)
                    record = schema.conform(chunk.table)
                    record.update({annotator.prefix + k: v for k, v in added.items()})
                    arrays, _ = prepare_chunk(record, columns)
                    work.write_part(chunk.index, arrays)
        finally:
            cancel.set()
            if hasattr(chunks, "close"):
                chunks.close()

    extra = {"renamed_columns": schema.renamed} if schema.renamed else {}
    provenance = annotator.provenance(
        settings,
        manifest["started"],
        command=opts.command,
        input=input.name,
        survey=getattr(getattr(cutouts, "client", None), "survey", None),
        **extra,
    )
    meta = provenance.to_meta(_header_safe(schema.meta))

    manifest["merging"] = True
    work.write_manifest(manifest)
    n_ok, n_failed = 0, 0
    failures: list[tuple[int, str]] = []
    labels: list[str] = []  # each failure's row, and its id when id_col is given
    counts: dict[str, int] = {}
    status_key, message_key = opts.prefix + "status", opts.prefix + "message"
    name_key = opts.prefix + "class_name"
    h5_columns: list[ColumnSpec] = []
    if opts.embeddings_hdf5 is not None:
        h5_columns = [ColumnSpec("row", "i8", description="Row of the input catalog (from 0)")]
        if spec.id_col is not None:
            h5_columns += [
                s for n, s in zip(schema.names, schema.specs, strict=True) if n == spec.id_col
            ]
        h5_columns += annotator.columns
    # a run killed while merging may have published the output already: it is ours to replace
    replace = bool(manifest["overwrite"] or old_manifest.get("merging"))
    with open_writer(output, columns, meta=meta, overwrite=replace) as writer:
        h5 = (
            ColumnsHdf5Writer(opts.embeddings_hdf5, h5_columns, meta=meta, overwrite=True)
            if opts.embeddings_hdf5 is not None
            else None
        )
        try:
            for k in range(n_chunks):
                part = work.read_part(k)
                writer.write(part)
                status = part[status_key]
                ok = status == "ok"
                n_ok += int(ok.sum())
                n_failed += int((~ok).sum())
                names, found = np.unique(part[name_key][ok], return_counts=True)
                for name, count in zip(names, found, strict=True):
                    counts[str(name)] = counts.get(str(name), 0) + int(count)
                for i in np.flatnonzero(~ok)[: MAX_REPORTED_FAILURES - len(failures)]:
                    failures.append((k * opts.chunk_size + int(i), str(part[message_key][i])))
                    named = (
                        f" ({spec.id_col}={part[spec.id_col][i]})" if spec.id_col in part else ""
                    )
                    labels.append(f"row {failures[-1][0]}{named}")
                if h5 is not None:
                    rows = np.arange(k * opts.chunk_size, k * opts.chunk_size + len(status))
                    h5.write({"row": rows, **{s.name: part[s.name] for s in h5_columns[1:]}})
            if h5 is not None:
                h5.close()
        except BaseException:
            if h5 is not None:
                h5.abort()
            raise
    work.remove()
    for label, (_, message) in zip(labels[:SHOWN_FAILURES], failures, strict=False):
        log.warning("%s failed: %s", label, message)
    if n_failed > SHOWN_FAILURES:
        log.warning("... and %d more failed rows (status=error)", n_failed - SHOWN_FAILURES)
    return AnnotateSummary(
        output=str(output),
        n_rows=reader.n_rows,
        n_ok=n_ok,
        n_failed=n_failed,
        seconds=time.perf_counter() - t0,
        rows_resumed=rows_resumed,
        failures=failures,
        class_counts=counts,
        fetch_counts=dict(getattr(cutouts, "counts", {})),
    )
