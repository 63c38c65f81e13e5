"""Persistence of an index: its directory's files, writer lock and stale-file removal.

An index is saved as a directory: ``vectors.npy`` (normalised float32, always
present; the ground truth every kind re-ranks from or can be rebuilt from),
``ids.npy`` (int64 catalog ids), ``index.faiss`` (ivf and hnsw only) and the JSON
sidecar ``index.json``. Every file is written under a temporary name of its own
and renamed into place, holding the directory's lock (`index_lock`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...catalog.locks import LockFile, exclusive_lock, lock_timeout
from .backends import INDEX_KINDS, IndexParams, _import_faiss
from .errors import IndexFileError
from .store import _ids_sha256, _VectorStore

__all__ = ["INDEX_LOCK", "index_lock", "remove_stale_files"]

log = logging.getLogger(__name__)

_FORMAT = "galaxalign-astro embedding index"
_FORMAT_VERSION = 1
_SIDECAR = "index.json"
_VECTORS = "vectors.npy"
_IDS = "ids.npy"
_FAISS = "index.faiss"
#: lock file every writer of an index directory holds while it changes the directory
INDEX_LOCK = ".galaxalign.lock"
#: temporary files of the index's files and of ``search.json`` (``.<file>.<random>.partial``;
#: before the random part existed, ``.<file>.partial``): only a writer holding the lock
#: makes them, so one found by the lock's holder was left by a killed writer
_PARTIAL_RE = re.compile(
    r"\.(vectors\.npy|ids\.npy|index\.faiss|index\.json|search\.json)(\.[\w-]+)?\.partial"
)
_METRIC = "cosine"


@contextlib.contextmanager
def index_lock(
    directory: str | os.PathLike[str], *, timeout: float | None = None
) -> Iterator[LockFile]:
    """Hold the writer lock of the index directory ``directory`` (created if needed).

    Every writer of an index directory holds it while it writes (`EmbeddingIndex.save`
    and `~galaxalign_astro.search.save_search_index` take it themselves). A
    read-modify-write, loading an index, adding rows and saving it back, holds it
    from before the load to after the save, so that a concurrent one waits instead
    of dropping this one's rows::

        with index_lock("gal.index"):
            found = open_search_index("gal.index")
            add_catalog_rows(found.index, "catalog.fits")
            save_search_index(found.index, "gal.index", overwrite=True)

    The lock is an ``fcntl.flock`` on ``<directory>/.galaxalign.lock`` (removed
    again when released), re-entrant within a thread.

    Parameters
    ----------
    directory : str or os.PathLike
        Index directory.
    timeout : float, optional
        Seconds to wait for another writer; default
        `~galaxalign_astro.catalog.locks.lock_timeout` (60, or
        ``$GALAXALIGN_ASTRO_LOCK_TIMEOUT``).

    Raises
    ------
    OutputLockedError
        Another writer still holds the lock after ``timeout``; the message names the
        index and that writer.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    wait = lock_timeout() if timeout is None else timeout
    with exclusive_lock(path / INDEX_LOCK, what=f"index {path}", timeout=wait) as lock:
        yield lock


def _new_partial(directory: Path, name: str) -> Path:
    """Create an empty ``.<name>.<random>.partial`` in ``directory``, a name no other writer has.

    Permissions follow the umask, as those of the file it becomes.
    """
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.partial"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def remove_stale_files(path: Path, pattern: re.Pattern[str] = _PARTIAL_RE) -> None:
    """Remove the files of ``path`` named by ``pattern``: left by killed writers.

    Call it holding the index's lock (`index_lock`): only the lock's holder makes
    such files, so any found then belong to no live writer.
    """
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    log.info("removed %s, left in %s by a killed writer", entry.name, path)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def check_unchanged_since_load(path: Path, origin: tuple[str, str | None] | None, n: int) -> None:
    """Refuse to save over an index another writer saved after this one was read.

    ``origin`` is the (directory, sidecar sha256) the index of ``n`` rows was loaded
    from or last saved to.
    """
    if origin is None or origin[0] != os.path.realpath(path):
        return
    now = _sha256_file(path / _SIDECAR)
    if now is not None and now != origin[1]:
        try:
            rows = json.loads((path / _SIDECAR).read_text(encoding="utf-8"))["n_rows"]
        except (OSError, ValueError, KeyError, TypeError):
            rows = "?"
        msg = (
            f"index {path} was saved by another writer after this copy was loaded "
            f"(it now has {rows} rows, this copy {n}); saving would drop that "
            "writer's changes: load it again and redo the change"
        )
        raise IndexFileError(msg)


def write_index_files(
    path: Path,
    meta: dict[str, Any],
    store: _VectorStore,
    ids: np.ndarray,
    faiss_index: Any,
    faiss_file: Path | None,
) -> None:
    """Write the files of an index into ``path``, each renamed into place once complete.

    Call it holding the directory's lock. Every file is first written under a
    unique temporary name (`_new_partial`), listed before it is written so that a
    failed write removes it; an ``index.faiss`` left from an earlier approximate
    index is removed when ``faiss_index`` is None.
    """
    written: list[tuple[Path, Path]] = []

    def partial(name: str) -> Path:
        written.append((_new_partial(path, name), path / name))
        return written[-1][0]

    try:
        with open(partial(_VECTORS), "wb") as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": (len(ids), store.dim)}
            np.lib.format.write_array_header_1_0(fh, header)
            for _, block in store.chunks():
                fh.write(np.ascontiguousarray(block, dtype="<f4").data)
        with open(partial(_IDS), "wb") as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(ids, dtype="<i8"))
        if faiss_index is not None:
            tmp = partial(_FAISS)
            if faiss_file is not None:
                # a memory-mapped faiss index is unchanged since it was read (add() reads
                # it into memory first), and faiss may write such an index as a reference
                # to its source file, so copy the file itself
                shutil.copyfile(faiss_file, tmp)
            else:
                _import_faiss().write_index(faiss_index, str(tmp))
        partial(_SIDECAR).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    for src, dst in written:
        os.replace(src, dst)
    if faiss_index is None and (path / _FAISS).exists():
        (path / _FAISS).unlink()


@dataclass
class _IndexFiles:
    """What `read_index_files` read from an index directory."""

    meta: dict[str, Any]
    kind: str
    dim: int
    params: IndexParams
    vectors: np.ndarray
    ids: np.ndarray
    faiss_index: Any
    faiss_file: Path | None
    #: (directory, sidecar sha256) of the directory read
    origin: tuple[str, str | None]


def read_index_files(path: Path, *, mmap: bool) -> _IndexFiles:
    """Read and check the files of the index directory ``path`` (see `EmbeddingIndex.load`).

    Raises
    ------
    IndexFileError
        A file is missing or disagrees with the sidecar (shape, row count, ids
        checksum, format version).
    """
    sidecar = path / _SIDECAR
    if not sidecar.is_file():
        msg = f"{sidecar} not found; {path} is not a saved embedding index"
        raise IndexFileError(msg)
    try:
        raw = sidecar.read_bytes()
        meta = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"cannot read index sidecar {sidecar}: {exc}"
        raise IndexFileError(msg) from exc
    if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
        msg = (
            f"{sidecar} is format {meta.get('format')!r} version "
            f"{meta.get('format_version')!r}; this package reads {_FORMAT!r} version "
            f"{_FORMAT_VERSION}"
        )
        raise IndexFileError(msg)
    try:
        n, dim, kind = int(meta["n_rows"]), int(meta["embedding_dim"]), meta["kind"]
        catalog = meta["catalog"]
        params = IndexParams(**{f.name: meta["params"][f.name] for f in fields(IndexParams)})
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"index sidecar {sidecar} lacks or garbles field {exc}"
        raise IndexFileError(msg) from exc
    if kind not in INDEX_KINDS[1:]:
        msg = f"{sidecar} records unknown index kind {kind!r}"
        raise IndexFileError(msg)
    mode: Literal["r"] | None = "r" if mmap else None
    vectors = _load_npy(path / _VECTORS, mode, np.float32, (n, dim))
    ids = _load_npy(path / _IDS, mode, np.int64, (n,))
    if _ids_sha256(ids) != catalog.get("ids_sha256"):
        msg = f"{path / _IDS} does not match the ids checksum recorded in {sidecar}"
        raise IndexFileError(msg)
    faiss_index, faiss_file = None, None
    if kind != "exact":
        faiss_index, faiss_file = _read_faiss(path / _FAISS, kind, n, mmap=mmap)
    return _IndexFiles(
        meta=meta,
        kind=kind,
        dim=dim,
        params=params,
        vectors=vectors,
        ids=ids,
        faiss_index=faiss_index,
        faiss_file=faiss_file,
        origin=(os.path.realpath(path), hashlib.sha256(raw).hexdigest()),
    )


def _load_npy(
    path: Path, mode: Literal["r"] | None, dtype: Any, shape: tuple[int, ...]
) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode=mode, allow_pickle=False)
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise IndexFileError(msg) from exc
    if arr.dtype != dtype or arr.shape != shape:
        msg = (
            f"{path} holds {arr.dtype} {arr.shape} but the sidecar promises "
            f"{np.dtype(dtype)} {shape}"
        )
        raise IndexFileError(msg)
    return arr


def _read_faiss(path: Path, kind: str, n: int, *, mmap: bool) -> tuple[Any, Path | None]:
    faiss = _import_faiss()
    if not path.is_file():
        msg = f"{path} not found; the sidecar says this is an {kind!r} index"
        raise IndexFileError(msg)
    flags = 0
    if mmap:
        flags = faiss.IO_FLAG_MMAP if kind == "ivf" else faiss.IO_FLAG_MMAP_IFC
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        msg = f"cannot read faiss index {path}: {exc}"
        raise IndexFileError(msg) from exc
    if index.ntotal != n:
        msg = f"{path} holds {index.ntotal} vectors but the sidecar records {n} rows"
        raise IndexFileError(msg)
    return index, (path if mmap else None)
