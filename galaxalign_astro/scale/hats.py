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
import datetime as _dt
import functools
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..annotate.columns import DEFAULT_PREFIX

__all__ = [
    "MANIFEST_NAME",
    "HatsAnnotateSummary",
    "annotate_hats",
    "hats_provenance",
    "index_from_hats",
    "iter_hats_partitions",
]

log = logging.getLogger(__name__)

#: file in the output catalog recording the run (ours)
MANIFEST_NAME = "galaxalign_annotate.json"
_MANIFEST_FORMAT = "galaxalign-astro annotate-hats"


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


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _read_manifest(output: Path) -> dict[str, Any] | None:
    path = output / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        msg = f"cannot read {path}: {exc}"
        raise ValueError(msg) from exc


def _write_manifest(output: Path, manifest: Mapping[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / f".{MANIFEST_NAME}.partial"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, output / MANIFEST_NAME)


def _prepare_output(output: Path, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Clear or keep ``output``; return the manifest of the run to resume, if any."""
    from ..errors import OutputExistsError

    if not output.exists() or not any(output.iterdir()):
        return None
    old = _read_manifest(output)
    if overwrite:
        log.info("removing %s (overwrite)", output)
        shutil.rmtree(output)
        return None
    if resume and old is not None and old.get("format") == _MANIFEST_FORMAT:
        if old.get("finished"):
            msg = f"{output} is a finished annotated catalog; pass overwrite to replace it"
            raise OutputExistsError(msg)
        return old
    if resume:
        msg = f"{output} exists but holds no unfinished annotate-hats run to resume"
        raise OutputExistsError(msg)
    hint = (
        "continue it with resume=True (--resume) or replace it with overwrite=True (--overwrite)"
        if old is not None and not old.get("finished")
        else "pass overwrite=True (--overwrite) to replace it"
    )
    msg = f"{output} exists; {hint}"
    raise OutputExistsError(msg)


#: HATS files read whole into the input's digest (the catalog's metadata)
_DIGEST_FILES = (
    "properties",
    "hats.properties",
    "partition_info.csv",
    "_metadata",
    "_common_metadata",
    "point_map.fits",
)
#: bytes of each data file's end (its Parquet footer: schema and column statistics) digested
_FOOTER_BYTES = 1 << 16


def input_digest(catalog: Path) -> str:
    """SHA-256 of what identifies a HATS catalog's content, without reading all its rows.

    Covers the metadata files (properties, partition list, ``_metadata``...) whole, and
    every other file's path, size and last 64 KiB, which for Parquet is the footer with
    each column's statistics (ours: hashing every byte of a large survey catalog would
    take minutes before each resume).
    """
    import hashlib

    digest = hashlib.sha256()
    files = sorted(p for p in catalog.rglob("*") if p.is_file())
    for path in files:
        rel = path.relative_to(catalog).as_posix()
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with open(path, "rb") as fh:
            if path.name not in _DIGEST_FILES and size > _FOOTER_BYTES:
                fh.seek(size - _FOOTER_BYTES)
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], output: Path) -> None:
    problems = []
    before = old.get("input", {})
    if before.get("path") != new["input"]["path"]:
        problems.append(f"the input was {before.get('path')}")
    elif before.get("n_rows") != new["input"]["n_rows"]:
        problems.append("the input catalog changed (row count)")
    elif "sha256" not in before:
        problems.append("the unfinished run records no digest of its input (an earlier version)")
    elif before["sha256"] != new["input"]["sha256"]:
        problems.append("the input catalog's content changed")
    if old.get("model", {}).get("weights_sha256") != new["model"]["weights_sha256"]:
        problems.append("the model weights differ")
    if old.get("settings_sha256") != new["settings_sha256"]:
        before, now = old.get("settings", {}), new["settings"]
        keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        problems.append(f"settings differ ({', '.join(keys) or 'unknown'})")
    if problems:
        msg = (
            f"cannot resume the run in {output}: " + "; ".join(problems) + ". Start again "
            "with overwrite=True (--overwrite)."
        )
        raise ValueError(msg)


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


def _holding_output_lock(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run `annotate_hats` holding a lock beside its output folder, so a second run on
    the same output fails at once instead of writing partitions under the first."""

    @functools.wraps(func)
    def locked(*args: Any, **kwargs: Any) -> Any:
        from ..catalog.locks import exclusive_lock

        output = Path(kwargs["output"] if "output" in kwargs else args[1])
        output.parent.mkdir(parents=True, exist_ok=True)
        lock = output.parent / f".{output.name}.galaxalign.lock"
        with exclusive_lock(lock, what=f"annotate-hats output {output}", reentrant=False):
            return func(*args, **kwargs)

    return locked


@_holding_output_lock
def annotate_hats(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: Any = "default",
    classes: Any = None,
    images: str | None = None,
    image_shape: Sequence[int] | None = None,
    bands: Sequence[str] | str | None = None,
    path_col: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    cutouts_dir: str | os.PathLike[str] | None = None,
    id_col: str | None = None,
    pattern: str = "{id}.fits",
    fetch: str | None = None,
    fetch_options: Mapping[str, Any] | None = None,
    fetch_dir: str | os.PathLike[str] | None = None,
    prefix: str = DEFAULT_PREFIX,
    embeddings: bool = True,
    batch_size: int = 64,
    device: str = "cpu",
    scheduler: Any = None,
    dask_workers: int | None = None,
    catalog_name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    command: str | None = None,
) -> HatsAnnotateSummary:
    """Write a new HATS catalog: ``input``'s rows with the model's columns appended.

    Parameters
    ----------
    input : path-like
        A HATS catalog or collection (``lsdb.open_catalog`` reads it; every column
        is kept; a margin cache is not annotated and not written).
    output : path-like
        Directory of the new HATS catalog (same partitioning as the input).
    model : str or path-like
        Bundled model name or model directory (on a cluster: a directory every
        worker can read).
    classes : path-like, ``ClassSet`` or ``ClassHead``, optional
        Zero-shot classes instead of the model's own, as for
        `~galaxalign_astro.annotate.annotate_file`; their prototypes are computed
        here once and sent to the workers.
    images, image_shape, bands, path_col, base_dir, cutouts_dir, id_col, pattern, fetch,
    fetch_options, fetch_dir :
        Where each row's cutout comes from; give exactly one of ``images``,
        ``path_col``, ``cutouts_dir`` and ``fetch`` (see `annotate_partition`).
        Relative paths are taken from this process's working directory.
    prefix, embeddings, batch_size, device :
        As for `~galaxalign_astro.annotate.annotate_file`.
    scheduler : str or ``distributed.Client``, optional
        Run the partitions on this Dask cluster (address or scheduler file).
    dask_workers : int, optional
        Run them on a local cluster of this many worker processes. Without either,
        partitions run one after another in this process.
    catalog_name : str, optional
        ``obs_collection`` name of the output; default the output directory's name.
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
    if resume and overwrite:
        msg = "resume and overwrite exclude each other"
        raise ValueError(msg)
    sources = [
        n
        for n, v in (
            ("images", images),
            ("path_col", path_col),
            ("cutouts_dir", cutouts_dir),
            ("fetch", fetch),
        )
        if v is not None
    ]
    if len(sources) != 1:
        msg = (
            "give exactly one source of cutouts: images, path_col, cutouts_dir or fetch; "
            f"got {', '.join(sources) or 'none'}"
        )
        raise ValueError(msg)
    if fetch is not None and not isinstance(fetch, str):
        msg = "fetch must be a survey name (workers build their own client)"
        raise ValueError(msg)

    catalog = _open_catalog(input)
    info = catalog.hc_structure.catalog_info
    on_cluster = scheduler is not None or dask_workers is not None
    predictor = worker_predictor(model, device="cpu" if on_cluster else device, classes=classes)
    head = predictor.head if predictor.head.zero_shot else None
    loaded = predictor.loaded
    options: dict[str, Any] = {
        "model": model_key(loaded),
        "images": images,
        "image_shape": list(image_shape) if image_shape is not None else None,
        "bands": list(bands) if bands is not None else None,
        "path_col": path_col,
        "base_dir": str(Path(base_dir or ".").resolve()) if path_col is not None else None,
        "cutouts_dir": str(Path(cutouts_dir).resolve()) if cutouts_dir is not None else None,
        "id_col": id_col,
        "pattern": pattern,
        "fetch": fetch,
        "fetch_options": dict(fetch_options) if fetch_options else None,
        "fetch_dir": str(Path(fetch_dir).resolve()) if fetch_dir is not None else None,
        "ra_col": info.ra_column,
        "dec_col": info.dec_column,
        "prefix": prefix,
        "embeddings": embeddings,
        "batch_size": batch_size,
    }
    for name in (images, path_col, id_col):
        if name is not None and name not in catalog.columns:
            msg = f"catalog {input} has no column {name!r}"
            raise ValueError(msg)
    meta = annotation_meta(catalog.meta, model=predictor, prefix=prefix, embeddings=embeddings)

    from .._version import __version__
    from ..annotate.workdir import settings_digest

    settings = {k: v for k, v in options.items() if k != "model"}
    if head is not None:  # only then, so earlier runs' settings stay valid
        settings["classes_sha256"] = head.sha256
    manifest: dict[str, Any] = {
        "format": _MANIFEST_FORMAT,
        "format_version": 1,
        "input": {
            "path": str(input.resolve()),
            "n_rows": int(info.total_rows or 0),
            "sha256": input_digest(input),
        },
        "model": {
            "name": loaded.spec.name,
            "weights_sha256": loaded.weights_sha256,
            "path": options["model"],
        },
        "galaxalign": {**predictor.provenance(), "class_names": predictor.class_names},
        "settings": settings,
        "settings_sha256": settings_digest(settings),
        "package_version": __version__,
        "command": command,
        "started": _now(),
        "finished": False,
    }
    old = _prepare_output(output, resume=resume, overwrite=overwrite)
    if old is not None:
        _check_resumable(old, manifest, output)
        manifest["started"] = old.get("started", manifest["started"])
    resumed = _done_pixels(output) if old is not None else 0
    if resumed:
        log.info("resuming: %d partition(s) were finished", resumed)
    _write_manifest(output, manifest)

    annotated = catalog.map_partitions(
        annotate_partition,
        include_pixel=True,
        meta=meta,
        device=device,
        weights_sha256=loaded.weights_sha256,
        classes=head,
        **options,
    )
    properties = {
        "gxa_model_name": loaded.spec.name,
        "gxa_weights_sha256": loaded.weights_sha256,
        "gxa_prefix": prefix,
    }
    if (output / "hats.properties").is_file():
        log.info("%s was written completely before the interruption", output)
    else:
        with _dask_context(scheduler, dask_workers):
            annotated.write_catalog(
                output,
                catalog_name=catalog_name or output.name,
                as_collection=False,
                resume=True,
                progress_bar=progress,
                addl_hats_properties=properties,
            )
    counts: dict[str, int] = {}
    n_rows = n_ok = 0
    n_parts = 0
    status_key, name_key = prefix + "status", prefix + "class_name"
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
    manifest["finished_at"] = _now()
    _write_manifest(output, manifest)
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


def hats_provenance(catalog: str | os.PathLike[str]) -> Any:
    """The model provenance of a catalog written by `annotate_hats` (from its manifest).

    Returns
    -------
    `~galaxalign_astro.search.CatalogProvenance`
        Empty (all None) when the catalog has no manifest.
    """
    from ..search import catalog_provenance

    base = Path(_hats_catalog(catalog).catalog_base_dir.path)
    manifest = _read_manifest(base) or {}
    return catalog_provenance({"galaxalign": manifest.get("galaxalign") or {}})


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
    common = {
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
                index, output, embedding_col=embedding_col, provenance=prov, overwrite=overwrite
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
