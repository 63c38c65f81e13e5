"""Indexing cutouts: classify and embed them, write their catalog, index it.

``index --cutouts`` builds (or, with ``--add``, extends) an index folder that
holds its own catalog, ``catalog.fits``, beside the index (see `index_cutouts`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError
from .build import (
    CatalogProvenance,
    SearchIndex,
    _check_same_model,
    add_catalog_rows,
    build_index_from_catalog,
    catalog_provenance,
    open_search_index,
    save_search_index,
)
from .index import IndexParams, index_lock, remove_stale_files

__all__ = ["CUTOUT_CATALOG", "index_cutouts"]

log = logging.getLogger(__name__)

#: name of the catalog ``index --cutouts`` writes inside the index directory
CUTOUT_CATALOG = "catalog.fits"
#: header keys of a FITS table HDU that Table.read leaves in ``meta`` and writers refuse
_HDU_KEY_RE = re.compile(r"EXTNAME|EXTVER|EXTLEVEL|LONGSTRN|CHECKSUM|DATASUM")


def index_cutouts(
    paths: Sequence[str | os.PathLike[str]],
    directory: str | os.PathLike[str],
    *,
    model: Any = "default",
    add: bool = False,
    kind: str = "auto",
    params: IndexParams | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    recursive: bool = False,
) -> tuple[SearchIndex, Any]:
    """Classify and embed cutouts, write their catalog into the index folder, index it.

    ``paths`` are files, directories and glob patterns, expanded as by
    `~galaxalign_astro.io.expand_inputs` (``recursive``: sub-folders of
    directories too).

    The catalog is ``<directory>/catalog.fits`` (sources as absolute paths, so
    montages find the cutouts from anywhere). With ``add``, cutouts whose path is
    already in that catalog are skipped, the new rows are appended to it and added
    to the index; the model must be the index's.

    The folder's writer lock (`~galaxalign_astro.search.index_lock`) is held from
    reading the index to saving it: a concurrent run into the same folder waits
    for it (up to `~galaxalign_astro.catalog.locks.lock_timeout` seconds), then
    adds only what is still missing, or fails with
    `~galaxalign_astro.errors.OutputLockedError`.

    Returns
    -------
    search_index : SearchIndex
    summary : `~galaxalign_astro.inference.run.ClassifySummary` or None
        The classification of the new cutouts (None when nothing was new).
    """
    from ..io.cutouts import expand_inputs

    out = Path(directory)
    files = [os.path.abspath(p) for p in expand_inputs(paths, recursive=recursive)]
    if not files:
        msg = "no input cutouts (empty directory or glob with no match)"
        raise ValueError(msg)
    if add and not out.is_dir():
        open_search_index(out)  # raises: no index there to add to
    created = not out.exists()
    try:
        # the whole read-modify-write of the folder (catalog and index) under its lock
        with index_lock(out):
            remove_stale_files(out, _NEW_CATALOG_RE)
            return _index_cutouts_locked(
                files,
                out,
                model=model,
                add=add,
                kind=kind,
                params=params,
                batch_size=batch_size,
                device=device,
                workers=workers,
                overwrite=overwrite,
                progress=progress,
            )
    except BaseException:
        if created:  # leave no empty folder behind, as before the lock needed one
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


#: the catalog of new cutouts ``index_cutouts(add=True)`` writes before merging it, and
#: the catalog writer's temporary files of it
_NEW_CATALOG_RE = re.compile(r"\.\.?new-[\w-]+\.fits(\.\d+\.[0-9a-f]{8}\.part(\.lock)?)?")


def _index_cutouts_locked(
    files: list[str],
    out: Path,
    *,
    model: Any,
    add: bool,
    kind: str,
    params: IndexParams | None,
    batch_size: int,
    device: str,
    workers: int | None,
    overwrite: bool,
    progress: bool,
) -> tuple[SearchIndex, Any]:
    from ..catalog import write_table
    from ..inference.run import classify_to_file
    from ..models.checkpoint import load_model

    catalog = out / CUTOUT_CATALOG
    existing = None
    if add:
        existing = open_search_index(out)
        if not catalog.is_file():
            msg = f"{catalog} not found: index {out} was not built from cutouts"
            raise FileNotFoundError(msg)
        if model == "default" and existing.model_path and Path(existing.model_path).is_dir():
            model = existing.model_path
    elif (out / "index.json").exists() and not overwrite:
        msg = f"{out} already holds an index; pass overwrite (--overwrite) or add (--add)"
        raise OutputExistsError(msg)
    loaded = model if hasattr(model, "weights_sha256") else load_model(model, device=device)
    if existing is not None:
        _check_same_model(
            existing.index,
            CatalogProvenance(model_name=loaded.spec.name, weights_sha256=loaded.weights_sha256),
            f"model {loaded.path}",
        )
        from astropy.table import Table

        done = {str(s) for s in Table.read(catalog)["source"]}
        files = [f for f in files if f not in done]
        if not files:
            log.info("every cutout is already in %s", catalog)
            return existing, None
    target = catalog
    if existing is not None:
        fd, name = tempfile.mkstemp(prefix=".new-", suffix=".fits", dir=out)
        os.close(fd)
        target = Path(name)
    try:
        summary = classify_to_file(
            files,
            target,
            model=loaded,
            batch_size=batch_size,
            device=device,
            workers=workers,
            overwrite=overwrite or existing is not None,
            progress=progress,
        )
        if existing is not None:
            from astropy.table import Table, vstack

            old = Table.read(catalog, mask_invalid=False)
            new = Table.read(target, mask_invalid=False)
            merged = vstack([old, new], join_type="exact", metadata_conflicts="silent")
            merged.meta = _writable_meta(old.meta)
            write_table(merged, catalog, overwrite=True)
    finally:
        if existing is not None:
            target.unlink(missing_ok=True)
    prov = catalog_provenance({"galaxalign": loaded.provenance()})
    if existing is None:
        index = build_index_from_catalog(catalog, kind=kind, params=params)
    else:
        index = existing.index
        add_catalog_rows(index, catalog)
    save_search_index(index, out, provenance=prov, overwrite=True)
    return open_search_index(out), summary


def _writable_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` of a table read from FITS without the HDU keys astropy leaves in it."""
    return {k: v for k, v in meta.items() if not _HDU_KEY_RE.fullmatch(str(k))}
