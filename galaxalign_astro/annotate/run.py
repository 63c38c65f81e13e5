"""Adding morphology columns to user catalogs: in memory, or streamed and resumable.

`annotate` works on an astropy `~astropy.table.Table` in memory. `annotate_file`
streams a catalog file of any size: it reads the input a chunk of rows at a time
(`galaxalign_astro.annotate.reader`), finds each row's cutout (a path column, a
directory, or a survey service: `galaxalign_astro.annotate.cutouts`), classifies the
chunk (`galaxalign_astro.inference.iter_classify`), stores the finished chunk in the
work directory (`galaxalign_astro.annotate.workdir`), and finally streams the parts in
order into the output catalog (`galaxalign_astro.catalog.open_writer`).

When cutouts are fetched, a background thread reads and downloads the next chunk
while the model works on the current one (ours: at most two chunks ahead), so a slow
service and the model overlap instead of taking turns.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from ..catalog import ColumnSpec
from ..inference.columns import fit_message
from ..utils import check_value
from .columns import DEFAULT_PREFIX, annotation_columns

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AnnotateSummary",
    "annotate",
    "annotate_file",
]

log = logging.getLogger(__name__)
#: failed rows named on stderr at the end of a run (all are in the output)
SHOWN_FAILURES = 10

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: rows per chunk (ours: a few seconds of CPU inference; bounded memory)
DEFAULT_CHUNK_SIZE = 4096
#: failed rows listed in a summary (all of them are in the catalog)
MAX_REPORTED_FAILURES = 20
#: chunks a background fetch may run ahead of the model
_PREFETCH_CHUNKS = 2


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


def _predictor(model: Any, device: str, classes: Any = None):
    from ..inference.run import Predictor

    if isinstance(model, Predictor):
        return model if classes is None else model.with_classes(classes)
    return Predictor(model, device=device, classes=classes)


class _Annotator:
    """The model, the added columns and how a block of rows is filled in."""

    def __init__(
        self,
        predictor: Any,
        *,
        prefix: str,
        embeddings: bool,
        batch_size: int,
        workers: int | None,
    ) -> None:
        from ..inference.columns import MESSAGE_WIDTH

        self.predictor = predictor
        self.prefix = prefix
        self.embeddings = embeddings
        self.batch_size = batch_size
        self.workers = workers
        config = predictor.config
        self.n_bands = len(config.bands) if config.sources is not None else None
        self.columns = annotation_columns(
            predictor.class_names,
            embed_dim=predictor.embed_dim,
            embeddings=embeddings,
            n_bands=self.n_bands,
            prefix=prefix,
        )
        self.specs = {spec.name[len(prefix) :]: spec for spec in self.columns}
        self.message_width = MESSAGE_WIDTH

    def blank(self, n: int, errors: Sequence[str]) -> dict[str, np.ndarray]:
        """Columns of ``n`` rows that all failed with ``errors``."""
        out = {
            key: np.full((n, *spec.shape), spec.null, dtype=spec.numpy_dtype)
            for key, spec in self.specs.items()
        }
        out["status"][:] = "error"
        out["message"][:] = [fit_message(e, self.message_width) for e in errors]
        return out

    def fill(
        self,
        dataset: Any,
        rows: np.ndarray,
        out: dict[str, np.ndarray],
        radec: tuple[np.ndarray, np.ndarray] | None,
        bar: Any,
    ) -> None:
        """Classify ``dataset`` (item ``i`` is block row ``rows[i]``) into ``out``."""
        from ..inference.dataset import measurement_layout
        from ..inference.run import iter_classify

        layout = measurement_layout(self.n_bands) if self.n_bands is not None else []
        for batch in iter_classify(
            dataset,
            self.predictor,
            batch_size=self.batch_size,
            workers=self.workers,
            embeddings=self.embeddings,
            progress=False,
        ):
            idx = rows[batch["index"]]
            for key in ("class_id", "class_name", "class_prob", "probs", "status"):
                out[key][idx] = batch[key]
            if self.embeddings:
                out["embedding"][idx] = batch["embedding"]
            out["message"][idx] = [fit_message(m, self.message_width) for m in batch["message"]]
            if radec is not None:
                out["sep"][idx] = _separation_arcsec(
                    radec[0][idx], radec[1][idx], batch["ra"], batch["dec"]
                )
            if layout:
                vectors = batch["measurements"]
                for name, start, length in layout:
                    spec = self.specs[name]
                    values = vectors[:, start : start + length].reshape(len(idx), *spec.shape)
                    if spec.dtype[0] in "iu":  # NaN marks rows without the measurement
                        good = np.isfinite(values).reshape(len(idx), -1).all(axis=1)
                        out[name][idx[good]] = values[good].astype(spec.numpy_dtype)
                    else:
                        out[name][idx] = values
            bar.update(len(idx))

    def block(
        self,
        paths: Sequence[str | None],
        errors: Sequence[str],
        radec: tuple[np.ndarray, np.ndarray] | None,
        bar: Any,
    ) -> dict[str, np.ndarray]:
        """Columns of a block of rows whose cutouts are ``paths`` (None: failed)."""
        from ..inference.dataset import CutoutFiles

        out = self.blank(len(paths), errors)
        todo = np.array([i for i, p in enumerate(paths) if p is not None], dtype=int)
        bar.update(len(paths) - len(todo))
        if len(todo):
            dataset = CutoutFiles(
                [str(paths[i]) for i in todo],
                self.predictor.config,
                measurements=self.n_bands is not None,
            )
            self.fill(dataset, todo, out, radec, bar)
        return out

    def provenance(self, settings: Mapping[str, Any], date: str | None = None) -> dict[str, Any]:
        info = self.predictor.provenance()
        if date is not None:
            info["date"] = date
        info["annotate"] = dict(settings)
        return info


def _row_name(first: int, index: int) -> str:
    return f"row {first + index}"


def _separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    from astropy.coordinates import angular_separation

    rad = np.deg2rad
    with np.errstate(invalid="ignore"):
        sep = angular_separation(rad(ra1), rad(dec1), rad(np.asarray(ra2)), rad(np.asarray(dec2)))
    return np.rad2deg(np.asarray(sep, dtype=np.float64)) * 3600.0


def _coord_columns(
    template: Any, ra_col: str | None, dec_col: str | None, *, required: bool
) -> tuple[str, str] | None:
    from ..fetch import find_coord_columns

    try:
        return find_coord_columns(template, ra_col=ra_col, dec_col=dec_col)
    except ValueError:
        if required or ra_col is not None or dec_col is not None:
            raise
        log.info("no RA/Dec columns found; the separation column stays NaN")
        return None


def _catalog_radec(table: Any, coords: tuple[str, str] | None):
    if coords is None:
        return None
    from ..fetch import read_targets

    _, ra, dec = read_targets(table, ra_col=coords[0], dec_col=coords[1])
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def _cutout_source(
    *,
    path_col: str | None,
    base_dir: str | os.PathLike[str] | None,
    cutouts_dir: str | os.PathLike[str] | None,
    id_col: str | None,
    pattern: str,
    fetch: Any,
    fetch_options: Mapping[str, Any] | None,
    fetch_dir: str | os.PathLike[str] | None,
    coords: tuple[str, str] | None,
    preprocess: Any,
    images_given: bool = False,
):
    from .cutouts import CutoutsDirectory, PathColumn

    given = [
        name
        for name, value in (
            ("images", images_given or None),
            ("path_col", path_col),
            ("cutouts_dir", cutouts_dir),
            ("fetch", fetch),
        )
        if value is not None
    ]
    if len(given) != 1:
        what = f"got {', '.join(given)}" if given else "got none"
        msg = (
            "give exactly one source of cutouts: path_col (--path-col), cutouts_dir "
            f"(--cutouts) or fetch (--fetch); {what}"
        )
        raise ValueError(msg)
    if fetch_options and fetch is None:
        msg = "fetch_options apply only with fetch"
        raise ValueError(msg)
    if path_col is not None:
        return PathColumn(path_col, base_dir)
    if cutouts_dir is not None:
        return CutoutsDirectory(cutouts_dir, id_col, pattern)
    if fetch is not None:
        return _fetch_source(fetch, fetch_options, fetch_dir, coords, id_col, preprocess)
    return None


#: fetch options that go to the survey client (the others set the cutout geometry)
_GEOMETRY_KEYS = ("size", "pixscale", "bands", "max_workers")


def _fetch_source(fetch, fetch_options, fetch_dir, coords, id_col, preprocess):
    from ..fetch import SurveyClient, get_client
    from .cutouts import FetchedCutouts, fetch_geometry, geometry_problems

    options = dict(fetch_options or {})
    geometry = {key: options.pop(key) for key in _GEOMETRY_KEYS if key in options}
    if isinstance(fetch, SurveyClient):
        if options:
            msg = f"fetch options {sorted(options)} configure a new client; not with a client"
            raise ValueError(msg)
        client = fetch
    else:
        if geometry.get("max_workers") is not None:
            options["max_workers"] = geometry["max_workers"]
        client = get_client(str(fetch), **options)
    shape = fetch_geometry(
        client,
        preprocess,
        size=geometry.get("size"),
        pixscale=geometry.get("pixscale"),
        bands=geometry.get("bands"),
    )
    for problem in geometry_problems(preprocess, shape):
        log.warning("fetch geometry: %s", problem)
    if coords is None:  # pragma: no cover - _coord_columns raises first
        msg = "fetching cutouts needs RA/Dec columns"
        raise ValueError(msg)
    return FetchedCutouts(
        client,
        fetch_dir or "",
        ra_col=coords[0],
        dec_col=coords[1],
        id_col=id_col,
        max_workers=geometry.get("max_workers"),
        **shape,
    )


class _Stop(Exception):
    pass


def _in_background(items: Iterable[Any], *, depth: int, cancel: threading.Event) -> Iterator[Any]:
    """Yield ``items``, produced by a daemon thread at most ``depth`` items ahead."""
    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def put(item: Any) -> None:
        while not cancel.is_set():
            try:
                box.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def produce() -> None:
        try:
            for item in items:
                put(item)
            put(done)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the consumer, which raises it
            try:
                put(exc)
            except _Stop:
                pass

    thread = threading.Thread(target=produce, name="galaxalign-annotate-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
        thread.join(timeout=10)


@dataclass
class _Chunk:
    index: int
    table: Any
    paths: list[str | None]
    errors: list[str]


def _resolved_chunks(reader: Any, source: Any, chunk_size: int, skip: set[int]) -> Iterator[_Chunk]:
    for k, table in reader.chunks(chunk_size, skip=skip):
        paths, errors = source.resolve(table, k * chunk_size)
        yield _Chunk(k, table, paths, errors)


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


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="row",
        disable=not enabled,
        file=sys.stderr,
        smoothing=0.05,
        dynamic_ncols=True,
    )


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


def _annotate_on_cluster(
    chunks: Iterable[tuple[int, Any]],
    *,
    scheduler: Any,
    dask_workers: int | None,
    source: Any,
    source_options: Mapping[str, Any],
    coords: tuple[str, str] | None,
    annotator: _Annotator,
    device: str,
    chunk_size: int,
    store: Any,
    bar: Any,
) -> None:
    """Classify ``chunks`` on a Dask cluster and ``store`` each as it comes back."""
    from .cluster import annotate_chunks, dask_client
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


def _check_resumable(manifest: dict[str, Any], wanted: dict[str, Any], work: Path) -> None:
    """Refuse to resume when the input, model or settings differ from the earlier run."""
    problems = []
    old_in, new_in = manifest.get("input", {}), wanted["input"]
    if old_in.get("path") != new_in["path"]:
        problems.append(f"the input was {old_in.get('path')}, now {new_in['path']}")
    elif not old_in.get("sha256"):
        problems.append(
            f"the interrupted run recorded no content SHA-256 of its input {new_in['path']} "
            "(an earlier version of galaxalign-astro), so it cannot be checked unchanged"
        )
    elif old_in["sha256"] != new_in["sha256"]:
        # the content decides: size and modification time can be restored (cp -p, rsync -t)
        problems.append(
            f"the input file {new_in['path']} changed since the interrupted run (content "
            f"SHA-256 {old_in['sha256'][:12]}... -> {new_in['sha256'][:12]}...)"
        )
    if manifest.get("model", {}).get("weights_sha256") != wanted["model"]["weights_sha256"]:
        problems.append(
            f"the model differs (weights sha256 {manifest.get('model', {}).get('weights_sha256')}"
            f" -> {wanted['model']['weights_sha256']})"
        )
    if manifest.get("settings_sha256") != wanted["settings_sha256"]:
        old, new = manifest.get("settings", {}), wanted["settings"]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        problems.append(f"settings differ ({detail or 'unknown'})")
    if problems:
        msg = (
            f"cannot resume from {work}: " + "; ".join(problems) + ". Run again with "
            "restart=True (--restart) to discard the unfinished run."
        )
        raise ValueError(msg)


#: types and smallest values of annotate's numeric and switch options
_OPTION_TYPES: dict[str, tuple[Any, int | None]] = {
    "chunk_size": (int, 1),
    "batch_size": (int, 1),
    "workers": (int | None, 0),
    "dask_workers": (int | None, 1),
    "prefix": (str, None),
    "embeddings": (bool, None),
    "resume": (bool, None),
    "restart": (bool, None),
    "overwrite": (bool, None),
}


def _check_options(**options: Any) -> None:
    """One-line ``ValueError`` for an option of the wrong type or range, before any output."""
    for name, value in options.items():
        annotation, least = _OPTION_TYPES[name]
        check_value(value, annotation, name=name, where="annotate")
        if least is not None and value is not None and value < least:
            msg = f"annotate: {name} must be >= {least}, got {value}"
            raise ValueError(msg)


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
    *,
    model: Any = "default",
    classes: Any = None,
    path_col: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    cutouts_dir: str | os.PathLike[str] | None = None,
    id_col: str | None = None,
    pattern: str = "{id}.fits",
    fetch: Any = None,
    fetch_options: Mapping[str, Any] | None = None,
    fetch_dir: str | os.PathLike[str] | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
    input_format: str | None = None,
    hdf5_path: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    embeddings: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int | None = None,
    resume: bool = False,
    restart: bool = False,
    overwrite: bool = False,
    embeddings_hdf5: str | os.PathLike[str] | None = None,
    progress: bool = False,
    command: str | None = None,
    scheduler: Any = None,
    dask_workers: int | None = None,
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
        ``resume`` are the same (see `galaxalign_astro.annotate.cluster`). Every
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
    from ..catalog import open_writer, output_format, provenance_meta
    from ..catalog.base import check_output_path
    from ..catalog.columns import prepare_chunk
    from ..errors import OutputExistsError
    from ..utils import file_sha256
    from .hdf5 import ColumnsHdf5Writer
    from .reader import open_catalog
    from .workdir import MANIFEST_VERSION, WorkDir, settings_digest

    t0 = time.perf_counter()
    input, output = Path(input), Path(output)
    out_format = output_format(output)
    _check_options(
        chunk_size=chunk_size,
        batch_size=batch_size,
        workers=workers,
        dask_workers=dask_workers,
        prefix=prefix,
        embeddings=embeddings,
        resume=resume,
        restart=restart,
        overwrite=overwrite,
    )
    work = WorkDir(output)
    resuming = False
    if work.exists():
        if restart:
            log.info("discarding the unfinished run in %s", work.path)
            work.remove()
        elif resume:
            resuming = True
        else:
            msg = (
                f"{work.path} holds an unfinished run for {output}: continue it with "
                "resume=True (--resume) or discard it with restart=True (--restart)"
            )
            raise OutputExistsError(msg)
    old_manifest = work.read_manifest() if resuming else {}
    if not old_manifest.get("merging"):
        check_output_path(output, overwrite=overwrite or old_manifest.get("overwrite", False))
    if embeddings_hdf5 is not None:
        check_output_path(embeddings_hdf5, overwrite=overwrite or bool(old_manifest))

    on_cluster = scheduler is not None or dask_workers is not None
    if on_cluster and fetch is not None and not isinstance(fetch, str):
        msg = "with a Dask cluster, give fetch as a survey name (workers build their own client)"
        raise ValueError(msg)
    with open_catalog(input, format=input_format, hdf5_path=hdf5_path) as reader:
        # on a cluster the workers run the model; this copy gives columns and provenance
        predictor = _predictor(model, "cpu" if on_cluster else device, classes)
        config = predictor.config
        coords = _coord_columns(reader.template, ra_col, dec_col, required=fetch is not None)
        source = _cutout_source(
            path_col=path_col,
            base_dir=base_dir,
            cutouts_dir=cutouts_dir,
            id_col=id_col,
            pattern=pattern,
            fetch=fetch,
            fetch_options=fetch_options,
            fetch_dir=fetch_dir or work.cutouts,
            coords=coords,
            preprocess=config,
        )
        source.check(reader.template)
        if fetch is not None and workers is None:
            workers = 0  # decoding is not the bottleneck, and no fork beside fetch threads
        annotator = _Annotator(
            predictor, prefix=prefix, embeddings=embeddings, batch_size=batch_size, workers=workers
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
            **source.settings(),
            "ra_col": coords[0] if coords else None,
            "dec_col": coords[1] if coords else None,
            "prefix": prefix,
            "embeddings": embeddings,
            "chunk_size": chunk_size,
            "batch_size": batch_size,
            "input_format": reader.format,
            "hdf5_path": hdf5_path,
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
            "overwrite": overwrite,
            "merging": False,
        }
        if resuming:
            _check_resumable(old_manifest, manifest, work.path)
            manifest["started"] = old_manifest.get("started", manifest["started"])
            manifest["overwrite"] = overwrite or old_manifest.get("overwrite", False)
            manifest["merging"] = old_manifest.get("merging", False)
            work.write_manifest(manifest)
        else:
            work.create(manifest)

        n_chunks = -(-reader.n_rows // chunk_size)
        done = {k for k in work.done_chunks() if k < n_chunks}
        rows_resumed = sum(min(chunk_size, reader.n_rows - k * chunk_size) for k in done)
        if done:
            log.info("resuming: %d of %d chunks were finished", len(done), n_chunks)
        cancel = threading.Event()
        source.cancel = cancel
        chunks: Iterator[_Chunk] = (
            iter(()) if on_cluster else _resolved_chunks(reader, source, chunk_size, done)
        )
        if source.slow and not on_cluster:
            chunks = _in_background(chunks, depth=_PREFETCH_CHUNKS, cancel=cancel)
        try:
            with _progress_bar(reader.n_rows, rows_resumed, progress) as bar:
                if on_cluster:
                    cluster_options = {
                        "path_col": path_col,
                        "base_dir": Path(base_dir or ".").resolve(),
                        "cutouts_dir": Path(cutouts_dir).resolve() if cutouts_dir else None,
                        "id_col": id_col,
                        "pattern": pattern,
                        "fetch": fetch,
                        "fetch_options": fetch_options,
                        "fetch_dir": Path(fetch_dir or work.cutouts).resolve(),
                    }
                    _annotate_on_cluster(
                        reader.chunks(chunk_size, skip=done),
                        scheduler=scheduler,
                        dask_workers=dask_workers,
                        source=source,
                        source_options=cluster_options,
                        coords=coords,
                        annotator=annotator,
                        device=device,
                        chunk_size=chunk_size,
                        store=partial(_store_chunk, work, schema, columns, prefix),
                        bar=bar,
                    )
                for chunk in chunks:
                    radec = _catalog_radec(chunk.table, coords)
                    added = annotator.block(chunk.paths, chunk.errors, radec, bar)
                    record = schema.conform(chunk.table)
                    record.update({annotator.prefix + k: v for k, v in added.items()})
                    arrays, _ = prepare_chunk(record, columns)
                    work.write_part(chunk.index, arrays)
        finally:
            cancel.set()
            if hasattr(chunks, "close"):
                chunks.close()

    meta = _header_safe(schema.meta)
    meta.update(
        provenance_meta(
            model=predictor.loaded.spec.name,
            weights_sha256=predictor.loaded.weights_sha256,
            preprocessing=config.to_dict(),
            stretch=config.stretch,
            bands="".join(config.bands),
            survey=getattr(getattr(source, "client", None), "survey", None),
            input=input.name,
            command=command,
        )
    )
    meta["DATE"] = manifest["started"]
    meta["galaxalign"] = annotator.provenance(settings, manifest["started"])
    if schema.renamed:
        meta["galaxalign"]["renamed_columns"] = schema.renamed

    manifest["merging"] = True
    work.write_manifest(manifest)
    n_ok, n_failed = 0, 0
    failures: list[tuple[int, str]] = []
    labels: list[str] = []  # each failure's row, and its id when id_col is given
    counts: dict[str, int] = {}
    status_key, message_key = prefix + "status", prefix + "message"
    name_key = prefix + "class_name"
    h5_columns: list[ColumnSpec] = []
    if embeddings_hdf5 is not None:
        h5_columns = [ColumnSpec("row", "i8", description="Row of the input catalog (from 0)")]
        if id_col is not None:
            h5_columns += [
                s for n, s in zip(schema.names, schema.specs, strict=True) if n == id_col
            ]
        h5_columns += annotator.columns
    # a run killed while merging may have published the output already: it is ours to replace
    replace = bool(manifest["overwrite"] or old_manifest.get("merging"))
    with open_writer(output, columns, meta=meta, overwrite=replace) as writer:
        h5 = (
            ColumnsHdf5Writer(embeddings_hdf5, h5_columns, meta=meta, overwrite=True)
            if embeddings_hdf5 is not None
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
                    failures.append((k * chunk_size + int(i), str(part[message_key][i])))
                    named = f" ({id_col}={part[id_col][i]})" if id_col in part else ""
                    labels.append(f"row {failures[-1][0]}{named}")
                if h5 is not None:
                    rows = np.arange(k * chunk_size, k * chunk_size + len(status))
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
        fetch_counts=dict(getattr(source, "counts", {})),
    )


def annotate(
    table: Any,
    *,
    model: Any = "default",
    classes: Any = None,
    images: Any = None,
    bands: Sequence[str] | str | None = None,
    path_col: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    cutouts_dir: str | os.PathLike[str] | None = None,
    id_col: str | None = None,
    pattern: str = "{id}.fits",
    fetch: Any = None,
    fetch_options: Mapping[str, Any] | None = None,
    fetch_dir: str | os.PathLike[str] | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    embeddings: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int | None = None,
    progress: bool = False,
):
    """Return a copy of an astropy ``table`` with the model's columns appended.

    The input table is not modified; its columns (mixins included), row order and
    metadata are kept, and the provenance goes into ``meta['galaxalign']``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog, in memory.
    model, classes :
        As for `annotate_file`.
    images : str or array-like, optional
        Cutouts in memory: the name of a column of image arrays, or an array of
        shape (n_rows, bands, H, W) (or a sequence of (bands, H, W) arrays) of
        fluxes with band names ``bands``.
    path_col, base_dir, cutouts_dir, id_col, pattern, fetch, fetch_options, fetch_dir :
        Where the cutouts come from, as for `annotate_file`; give exactly one of
        ``images``, ``path_col``, ``cutouts_dir`` and ``fetch``. Fetched files go to a
        temporary directory unless ``fetch_dir`` is given.
    ra_col, dec_col, prefix, embeddings, chunk_size, batch_size, device, workers, progress :
        As for `annotate_file`.

    Returns
    -------
    `~astropy.table.Table`
        The same class as ``table``. Failed rows have ``status='error'``, the
        reason in ``message``, NaN floats and ``class_id=-1``; integer source
        measurements of failed rows are masked.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from galaxalign_astro.annotate import annotate
    >>> cat = Table.read("catalogs/bright_galaxies.ecsv")  # doctest: +SKIP
    >>> out = annotate(cat, fetch="legacysurvey")  # doctest: +SKIP
    >>> out["name", "gxa_class_name", "gxa_class_prob"]  # doctest: +SKIP
    """
    from astropy.table import Column, MaskedColumn, Table

    from ..inference.dataset import ArrayCutouts

    if not isinstance(table, Table):
        hint = (
            "; for a catalog file use annotate_file(path, output, ...)"
            if isinstance(table, str | os.PathLike)
            else "; convert it first, e.g. astropy.table.Table.from_pandas(df)"
        )
        msg = f"annotate takes an astropy Table, not {type(table).__name__}{hint}"
        raise TypeError(msg)
    _check_options(
        chunk_size=chunk_size,
        batch_size=batch_size,
        workers=workers,
        prefix=prefix,
        embeddings=embeddings,
    )
    _check_images(table, images)
    predictor = _predictor(model, device, classes)
    coords = _coord_columns(table, ra_col, dec_col, required=fetch is not None)
    with tempfile.TemporaryDirectory(prefix="galaxalign-annotate-") as tmp:
        source = _cutout_source(
            path_col=path_col,
            base_dir=base_dir,
            cutouts_dir=cutouts_dir,
            id_col=id_col,
            pattern=pattern,
            fetch=fetch,
            fetch_options=fetch_options,
            fetch_dir=fetch_dir or tmp,
            coords=coords,
            preprocess=predictor.config,
            images_given=images is not None,
        )
        if source is not None:
            source.check(table)
        if fetch is not None and workers is None:
            workers = 0
        annotator = _Annotator(
            predictor, prefix=prefix, embeddings=embeddings, batch_size=batch_size, workers=workers
        )
        clash = [spec.name for spec in annotator.columns if spec.name in table.colnames]
        if clash:
            msg = f"table already has column(s) {', '.join(clash)}; choose another prefix"
            raise ValueError(msg)
        arrays = None
        if images is not None:
            arrays = table[images] if isinstance(images, str) else images
            if len(arrays) != len(table):
                msg = f"{len(arrays)} images for {len(table)} rows"
                raise ValueError(msg)

        parts = []
        with _progress_bar(len(table), 0, progress) as bar:
            for start in range(0, len(table), chunk_size):
                block = table[start : start + chunk_size]
                radec = _catalog_radec(block, coords)
                if arrays is None:
                    paths, errors = source.resolve(block, start)
                    parts.append(annotator.block(paths, errors, radec, bar))
                    continue
                out = annotator.blank(len(block), [""] * len(block))
                dataset = ArrayCutouts(
                    arrays[start : start + chunk_size],
                    predictor.config,
                    bands=tuple(bands) if bands is not None else None,
                    names=partial(_row_name, start),
                    measurements=annotator.n_bands is not None,
                )
                annotator.fill(dataset, np.arange(len(block)), out, radec, bar)
                parts.append(out)

    result = table.__class__(table, copy=False)
    result.meta = copy.deepcopy(table.meta)
    for key, spec in annotator.specs.items():
        if parts:
            values = np.concatenate([p[key] for p in parts])
        else:
            values = np.zeros((0, *spec.shape), dtype=spec.numpy_dtype)
        null = spec.null
        if spec.dtype[0] in "iu" and key != "class_id" and (values == null).any():
            col = MaskedColumn(values, mask=values == null, fill_value=null)
        else:
            col = Column(values)
        col.unit = spec.unit
        col.description = spec.description
        result[spec.name] = col
    settings = {
        **(source.settings() if source is not None else {"images": True}),
        "ra_col": coords[0] if coords else None,
        "dec_col": coords[1] if coords else None,
        "prefix": prefix,
        "embeddings": embeddings,
    }
    result.meta["galaxalign"] = annotator.provenance(settings)
    status = np.asarray(result[prefix + "status"])
    failed = np.flatnonzero(status != "ok")
    if len(failed):
        first = str(result[prefix + "message"][failed[0]])
        log.warning(
            "annotate: %d of %d rows failed (status=error in %sstatus); row %d: %s",
            len(failed),
            len(result),
            prefix,
            failed[0],
            first,
        )
    return result


def _check_images(table: Any, images: Any) -> None:
    """``images=`` holds image arrays; file paths there are a ``TypeError`` naming ``path_col``."""
    if images is None:
        return
    if isinstance(images, str):
        if images not in table.colnames:
            msg = f"table has no column {images!r} of images"
            raise ValueError(msg)
        column = table[images]
        paths = column.dtype.kind in "US" or (
            column.dtype == object and len(column) and isinstance(column[0], str | os.PathLike)
        )
    else:
        first = next(iter(images), None) if not isinstance(images, np.ndarray) else None
        paths = (isinstance(images, np.ndarray) and images.dtype.kind in "US") or isinstance(
            first, str | os.PathLike
        )
    if paths:
        name = images if isinstance(images, str) else "..."
        msg = (
            f"images= takes image arrays (bands, H, W), not file paths; for a column of cutout "
            f"files use path_col={name!r}"
        )
        raise TypeError(msg)
