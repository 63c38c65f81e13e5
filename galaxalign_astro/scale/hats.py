"""Annotating HATS catalogs with LSDB, resumable per partition; indexing their embeddings.

`annotate_hats` reads a HATS catalog (or collection) with LSDB, appends the model's
columns to every partition (`~galaxalign_astro.scale.annotate_partition`) and
writes a new HATS catalog with LSDB's ``write_catalog``, on a Dask cluster or in
this process. The output directory holds, beside the HATS files,
``galaxalign_annotate.json`` (ours): the input, the model (name, weights SHA-256,
directory, preprocessing), the settings and their SHA-256, the start date and
whether the run finished. A run killed part-way is continued with ``resume=True``:
LSDB writes a marker per finished partition and skips those partitions, which are
then neither read nor annotated again; the resume is refused if the input (its
content digest, `input_digest`), the model or a setting differs. A run holds a lock
beside its output folder, so a second run on the same output fails at once.

`index_from_hats` builds a similarity index (`~galaxalign_astro.search`) from the
embedding column of such a catalog, reading one partition file at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..annotate import AnnotateOptions, CutoutSpec
from ..annotate.columns import DEFAULT_PREFIX
from ..annotate.params import settings_from_keywords
from ..catalog import Provenance
from .manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    check_resumable,
    holding_output_lock,
    input_digest,
    now,
    prepare_output,
    read_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "HatsAnnotateSummary",
    "annotate_hats",
    "hats_provenance",
    "index_from_hats",
    "iter_hats_partitions",
]

log = logging.getLogger(__name__)

#: the keyword arguments annotate_hats takes beside ``source`` and ``options``
_HATS_KEYWORDS = frozenset(
    (
        "model classes images bands path_col base_dir cutouts_dir id_col pattern fetch "
        "fetch_options fetch_dir prefix embeddings batch_size device scheduler dask_workers "
        "resume overwrite progress command"
    ).split()
)


@dataclass
class HatsAnnotateSummary:
    """Outcome of `annotate_hats`.

    Attributes
    ----------
    output : str
        The HATS catalog written.
    n_rows, n_ok, n_failed : int
        Rows in total, classified, and kept with ``status='error'``.
    n_partitions, partitions_resumed : int
        Partitions of the catalog, and those an interrupted earlier run had finished.
    seconds : float
        Wall time of this call.
    class_counts : dict
        Rows per predicted class.
    """

    output: str
    n_rows: int
    n_ok: int
    n_failed: int
    n_partitions: int
    seconds: float
    partitions_resumed: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Rows of the catalog per second of this call (resumed ones included)."""
        return self.n_rows / self.seconds if self.seconds > 0 else float("nan")


def _import_lsdb() -> Any:
    """``import lsdb``, without the warning lsdb 0.11 triggers in pandas 3."""
    with warnings.catch_warnings():
        # lsdb sets pandas' mode.chained_assignment, an option pandas 3 deprecated and
        # ignores: nothing to act on for our users
        warnings.filterwarnings("ignore", message=".*mode.chained_assignment")
        import lsdb
    return lsdb


def _open_catalog(path: Path) -> Any:
    """The main catalog of a HATS catalog or collection, all columns, without margin."""
    lsdb = _import_lsdb()
    catalog = lsdb.open_catalog(path, columns="all")
    # ours: margins are for cross-matching; annotating them would repeat work
    catalog.margin = None
    return catalog


def _done_pixels(output: Path) -> int:
    from upath import UPath

    _import_lsdb()
    from lsdb.io.to_hats import read_done_pixels

    if not (output / "done").is_dir():
        return 0
    return len(read_done_pixels(UPath(output)))


@contextlib.contextmanager
def _dask_context(scheduler: Any, dask_workers: int | None) -> Iterator[None]:
    import dask

    if scheduler is None and dask_workers is None:
        # ours: like ``annotate``, one partition at a time in this process, the model
        # using every core (Dask's default threads would run several models at once)
        with dask.config.set(scheduler="synchronous"):
            yield
        return
    from .cluster import dask_client

    with (
        dask_client(scheduler, n_workers=dask_workers) as client,
        dask.config.set(scheduler=client),
    ):
        yield


@holding_output_lock
def annotate_hats(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    source: CutoutSpec | None = None,
    options: AnnotateOptions | None = None,
    *,
    image_shape: Sequence[int] | None = None,
    catalog_name: str | None = None,
    **keywords: Any,
) -> HatsAnnotateSummary:
    """Write a new HATS catalog: ``input``'s rows with the model's columns appended.

    Parameters
    ----------
    input : path-like
        A HATS catalog or collection (``lsdb.open_catalog`` reads it; every column
        is kept; a margin cache is not annotated and not written).
    output : path-like
        Directory of the new HATS catalog (same partitioning as the input).
    source : `~galaxalign_astro.annotate.CutoutSpec`
        Where each row's cutout comes from (``images`` is then a column name).
        Relative paths are taken from this process's working directory.
    options : `~galaxalign_astro.annotate.AnnotateOptions`, optional
        The model, the added columns and the run's settings; of them, this uses
        ``model``, ``classes``, ``prefix``, ``embeddings``, ``batch_size``,
        ``device``, ``scheduler``, ``dask_workers``, ``resume``, ``overwrite``,
        ``progress`` and ``command``.
    image_shape : sequence of int, optional
        Shape of one image when the ``images`` column holds flat lists.
    catalog_name : str, optional
        ``obs_collection`` name of the output; default the output directory's name.
    **keywords
        The fields of ``source`` and ``options`` as keyword arguments, as this
        function took them before (they build the two values, or replace those
        fields of the values given):
    model : str or path-like
        Bundled model name or model directory (on a cluster: a directory every
        worker can read).
    classes : path-like, ``ClassSet`` or ``ClassHead``, optional
        Zero-shot classes instead of the model's own, as for
        `~galaxalign_astro.annotate.annotate_file`; their prototypes are computed
        here once and sent to the workers.
    images, bands, path_col, base_dir, cutouts_dir, id_col, pattern, fetch,
    fetch_options, fetch_dir :
        Where each row's cutout comes from; give exactly one of ``images``,
        ``path_col``, ``cutouts_dir`` and ``fetch`` (see `annotate_partition`).
    prefix, embeddings, batch_size, device :
        As for `~galaxalign_astro.annotate.annotate_file`.
    scheduler : str or ``distributed.Client``, optional
        Run the partitions on this Dask cluster (address or scheduler file).
    dask_workers : int, optional
        Run them on a local cluster of this many worker processes. Without either,
        partitions run one after another in this process.
    resume : bool, optional
        Continue an interrupted run in ``output`` (finished partitions are skipped).
    overwrite : bool, optional
        Replace an existing ``output``.
    progress : bool, optional
        Show LSDB's progress bar.
    command : str, optional
        Command line recorded in the manifest.

    Returns
    -------
    HatsAnnotateSummary

    Raises
    ------
    OutputExistsError
        ``output`` exists and neither ``resume`` nor ``overwrite`` is given.
    ValueError
        Bad options or columns, or a resume whose input, model or settings differ.
    """
    from .plugin import annotate_partition, annotation_meta
    from .workers import model_key, worker_predictor

    t0 = time.perf_counter()
    input, output = Path(input), Path(output)
    spec, opts = settings_from_keywords(
        "annotate_hats", source, options, keywords, allowed=_HATS_KEYWORDS
    )
    if opts.resume and opts.overwrite:
        msg = "resume and overwrite exclude each other"
        raise ValueError(msg)
    if spec.images is not None and not isinstance(spec.images, str):
        msg = "images must be the name of a column of image arrays"
        raise ValueError(msg)
    if spec.fetch is not None and not isinstance(spec.fetch, str):
        msg = "fetch must be a survey name (workers build their own client)"
        raise ValueError(msg)
    catalog = _open_catalog(input)
    info = catalog.hc_structure.catalog_info
    device = "cpu" if opts.on_cluster else opts.device
    predictor = worker_predictor(opts.model, device=device, classes=opts.classes)
    head = predictor.head if predictor.head.zero_shot else None
    loaded = predictor.loaded
    run: dict[str, Any] = {
        "model": model_key(loaded),
        "images": spec.images,
        "image_shape": list(image_shape) if image_shape is not None else None,
        "bands": list(spec.bands) if spec.bands is not None else None,
        "path_col": spec.path_col,
        "base_dir": _absolute(spec.base_dir or ".") if spec.path_col is not None else None,
        "cutouts_dir": _absolute(spec.cutouts_dir),
        "id_col": spec.id_col,
        "pattern": spec.pattern,
        "fetch": spec.fetch,
        "fetch_options": dict(spec.fetch_options) if spec.fetch_options else None,
        "fetch_dir": _absolute(spec.fetch_dir),
        "ra_col": info.ra_column,
        "dec_col": info.dec_column,
        "prefix": opts.prefix,
        "embeddings": opts.embeddings,
        "batch_size": opts.batch_size,
    }
    for name in (spec.images, spec.path_col, spec.id_col):
        if name is not None and name not in catalog.columns:
            msg = f"catalog {input} has no column {name!r}"
            raise ValueError(msg)
    meta = annotation_meta(
        catalog.meta, model=predictor, prefix=opts.prefix, embeddings=opts.embeddings
    )

    from .._version import __version__
    from ..annotate.workdir import settings_digest

    settings = {k: v for k, v in run.items() if k != "model"}
    if head is not None:  # only then, so earlier runs' settings stay valid
        settings["classes_sha256"] = head.sha256
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "input": {
            "path": str(input.resolve()),
            "n_rows": int(info.total_rows or 0),
            "sha256": input_digest(input),
        },
        "model": {
            "name": loaded.spec.name,
            "weights_sha256": loaded.weights_sha256,
            "path": run["model"],
        },
        "galaxalign": Provenance.from_model(
            predictor, step="annotate-hats", command=opts.command, input=str(input)
        ).record(),
        "settings": settings,
        "settings_sha256": settings_digest(settings),
        "package_version": __version__,
        "command": opts.command,
        "started": now(),
        "finished": False,
    }
    old = prepare_output(output, resume=opts.resume, overwrite=opts.overwrite)
    if old is not None:
        check_resumable(old, manifest, output)
        manifest["started"] = old.get("started", manifest["started"])
    resumed = _done_pixels(output) if old is not None else 0
    if resumed:
        log.info("resuming: %d partition(s) were finished", resumed)
    write_manifest(output, manifest)

    partition_source = CutoutSpec(
        **{k: run[k] for k in ("images", "bands", "path_col", "base_dir", "cutouts_dir")},
        **{k: run[k] for k in ("id_col", "pattern", "fetch", "fetch_options", "fetch_dir")},
    )
    partition_options = AnnotateOptions(
        model=run["model"],
        classes=head,
        ra_col=run["ra_col"],
        dec_col=run["dec_col"],
        prefix=opts.prefix,
        embeddings=opts.embeddings,
        batch_size=opts.batch_size,
        device=opts.device,
    )
    annotated = catalog.map_partitions(
        annotate_partition,
        include_pixel=True,
        meta=meta,
        source=partition_source,
        options=partition_options,
        image_shape=run["image_shape"],
        weights_sha256=loaded.weights_sha256,
    )
    properties = {
        "gxa_model_name": loaded.spec.name,
        "gxa_weights_sha256": loaded.weights_sha256,
        "gxa_prefix": opts.prefix,
    }
    if (output / "hats.properties").is_file():
        log.info("%s was written completely before the interruption", output)
    else:
        with _dask_context(opts.scheduler, opts.dask_workers):
            annotated.write_catalog(
                output,
                catalog_name=catalog_name or output.name,
                as_collection=False,
                resume=True,
                progress_bar=opts.progress,
                addl_hats_properties=properties,
            )
    counts: dict[str, int] = {}
    n_rows = n_ok = 0
    n_parts = 0
    status_key, name_key = opts.prefix + "status", opts.prefix + "class_name"
    for _, part in iter_hats_partitions(output, columns=[status_key, name_key]):
        n_parts += 1
        status = np.asarray(part[status_key].to_numpy(zero_copy_only=False), dtype=str)
        names = np.asarray(part[name_key].to_numpy(zero_copy_only=False), dtype=str)
        ok = status == "ok"
        n_rows += len(status)
        n_ok += int(ok.sum())
        for name, count in zip(*np.unique(names[ok], return_counts=True), strict=True):
            counts[str(name)] = counts.get(str(name), 0) + int(count)
    manifest["finished"] = True
    manifest["finished_at"] = now()
    write_manifest(output, manifest)
    return HatsAnnotateSummary(
        output=str(output),
        n_rows=n_rows,
        n_ok=n_ok,
        n_failed=n_rows - n_ok,
        n_partitions=n_parts,
        seconds=time.perf_counter() - t0,
        partitions_resumed=resumed,
        class_counts=counts,
    )


def _absolute(path: str | os.PathLike[str] | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


def _hats_catalog(path: str | os.PathLike[str]) -> Any:
    import hats

    catalog = hats.read_hats(os.fspath(path))
    return getattr(catalog, "main_catalog", catalog)


def iter_hats_partitions(
    catalog: str | os.PathLike[str], *, columns: Sequence[str] | None = None
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(HEALPix pixel, pyarrow.Table)`` for each partition file of a HATS catalog.

    Partitions come in the catalog's pixel order and rows in file order, which is
    the row order of ``lsdb.open_catalog(catalog).compute()``; only ``columns`` are
    read, one partition at a time.
    """
    import hats
    import pyarrow.parquet as pq

    cat = _hats_catalog(catalog)
    for pixel in cat.get_healpix_pixels():
        path = hats.io.pixel_catalog_file(
            cat.catalog_base_dir, pixel, npix_suffix=cat.catalog_info.npix_suffix
        )
        table = pq.read_table(
            path.path, columns=list(columns) if columns is not None else None, filesystem=path.fs
        )
        yield pixel, table


def hats_provenance(catalog: str | os.PathLike[str]) -> Provenance:
    """The model provenance of a catalog written by `annotate_hats` (from its manifest).

    Returns
    -------
    `~galaxalign_astro.catalog.Provenance`
        Empty (all None) when the catalog has no manifest.
    """
    base = Path(_hats_catalog(catalog).catalog_base_dir.path)
    manifest = read_manifest(base) or {}
    return Provenance.from_meta({"galaxalign": manifest.get("galaxalign") or {}})


def index_from_hats(
    catalog: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    embedding_col: str = DEFAULT_PREFIX + "embedding",
    id_col: str | None = None,
    kind: str = "auto",
    params: Any = None,
    exact_max_rows: int | None = None,
    overwrite: bool = False,
) -> Any:
    """Build a similarity index over a HATS catalog's embeddings, a partition at a time.

    The whole catalog is never loaded: each partition file is read for its
    embedding (and id) column only. An exact index grows partition by partition
    with `~galaxalign_astro.search.EmbeddingIndex.add`; an approximate one (ivf,
    hnsw) needs all vectors to train on, so they are first gathered partition by
    partition into a temporary memory-mapped file. Rows without a valid embedding
    (failed rows) are left out.

    Parameters
    ----------
    catalog : path-like
        A HATS catalog with an embedding column (from `annotate_hats`).
    output : path-like, optional
        Save the index there (with ``search.json``; see
        `~galaxalign_astro.search.save_search_index`).
    embedding_col : str, optional
        The embedding column (``gxa_embedding``).
    id_col : str, optional
        Integer column whose values become the index ids (e.g. an object ID; the
        spatial index ``_healpix_29`` also works). Default (ours): the row's number
        in the catalog's row order (see `iter_hats_partitions`), so a result ``i``
        is ``lsdb.open_catalog(catalog).compute().iloc[i]``.
    kind, params, exact_max_rows :
        As for `~galaxalign_astro.search.EmbeddingIndex`.
    overwrite : bool, optional
        Replace an index saved in ``output``.

    Returns
    -------
    `~galaxalign_astro.search.EmbeddingIndex`

    Raises
    ------
    ValueError
        No such column, or no row with a valid embedding.
    """
    from ..search import EXACT_MAX_ROWS, EmbeddingIndex, save_search_index
    from ..search.build import valid_embedding_rows

    cat = _hats_catalog(catalog)
    base = Path(cat.catalog_base_dir.path)
    names = {f.name for f in cat.schema} if cat.schema is not None else set()
    for name in (embedding_col, id_col):
        if name is not None and names and name not in names:
            msg = f"HATS catalog {base} has no column {name!r}"
            raise ValueError(msg)
    n_total = int(cat.catalog_info.total_rows or 0)
    limit = EXACT_MAX_ROWS if exact_max_rows is None else exact_max_rows
    if kind == "auto":
        kind = "exact" if n_total <= limit else "ivf"
    prov = hats_provenance(catalog)
    columns = [embedding_col] + ([id_col] if id_col is not None else [])
    common: dict[str, Any] = {
        "model_name": prov.model_name,
        "weights_sha256": prov.weights_sha256,
        "catalog_path": str(base.resolve()),
        "catalog_rows": n_total if id_col is None else None,
    }
    index: Any = None
    offset = 0
    with tempfile.TemporaryDirectory(prefix="gxa-hats-index-") as tmp:
        store: Any = None
        gathered: list[np.ndarray] = []
        used = 0
        for _, part in iter_hats_partitions(catalog, columns=columns):
            vectors = _embedding_array(part[embedding_col])
            valid = valid_embedding_rows(vectors) if len(vectors) else np.zeros(0, bool)
            if id_col is None:
                ids = offset + np.flatnonzero(valid)
            else:
                ids = np.asarray(part[id_col].to_numpy(zero_copy_only=False))[valid]
            offset += len(vectors)
            good = vectors[valid]
            if not len(good):
                continue
            if kind == "exact":
                if index is None:
                    index = EmbeddingIndex(
                        np.zeros((0, good.shape[1]), np.float32),
                        kind="exact",
                        params=params,
                        **common,
                    )
                index.add(good, ids=ids)
                continue
            if store is None:
                store = np.lib.format.open_memmap(
                    Path(tmp) / "vectors.npy",
                    mode="w+",
                    dtype=np.float32,
                    shape=(max(n_total, offset), good.shape[1]),
                )
            store[used : used + len(good)] = good
            used += len(good)
            gathered.append(np.asarray(ids, dtype=np.int64))
        if kind != "exact" and used:
            index = EmbeddingIndex(
                store[:used],
                ids=np.concatenate(gathered),
                kind=kind,
                params=params,
                exact_max_rows=limit,
                **common,
            )
        if index is None:
            msg = f"no row of column {embedding_col!r} in {base} holds a valid embedding"
            raise ValueError(msg)
        if output is not None:
            save_search_index(
                index,
                output,
                embedding_col=embedding_col,
                provenance=prov,
                overwrite=overwrite,
            )
    return index


def _embedding_array(column: Any) -> np.ndarray:
    """A (fixed-size) list column of a pyarrow table as an (n, d) float32 array."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    if arr.null_count:
        rows = [np.full(0, np.nan) if v is None else v for v in arr.to_pylist()]
        width = max(len(r) for r in rows)
        return np.array(
            [r if len(r) == width else np.full(width, np.nan) for r in rows], dtype=np.float32
        )
    if not (
        pa.types.is_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
        or pa.types.is_large_list(arr.type)
    ):
        msg = f"column of type {arr.type} is not a vector column"
        raise ValueError(msg)
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(n, -1)
