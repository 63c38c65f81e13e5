"""Incremental, atomic catalog writing shared by every output format."""

from __future__ import annotations

import abc
import contextlib
import copy
import logging
import os
import re
import secrets
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from ..errors import OutputExistsError
from .columns import ColumnSpec, prepare_chunk
from .locks import _HAS_FLOCK, FlockUnsupportedError, _create_locked, _try_lock

__all__ = ["CatalogWriter", "check_output_path"]

log = logging.getLogger(__name__)

#: suffix of the lock file a writer holds beside its temporary file
_LOCK_SUFFIX = ".lock"


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check that ``path`` may be written, creating its folder; return it as a `~pathlib.Path`.

    A missing output folder is created (``-o out/catalog.fits`` works in a fresh
    checkout), as ``mkdir -p`` would.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    IsADirectoryError
        If ``path`` is a directory.
    NotADirectoryError
        If the folder ``path`` would go into is a file.
    """
    path = Path(path)
    if path.is_dir():
        msg = f"output {path} is a directory"
        raise IsADirectoryError(msg)
    if not overwrite and (path.exists() or path.is_symlink()):
        msg = f"output {path} exists; use overwrite (--overwrite) to replace it"
        raise OutputExistsError(msg)
    parent = path.parent
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            msg = f"folder {parent} for output {path.name} is not a folder"
            raise NotADirectoryError(msg) from None
    return path


def _lock_name(tmp: Path) -> Path:
    """The lock file its writer holds while ``tmp`` is being written."""
    return tmp.with_name(tmp.name + _LOCK_SUFFIX)


def _create_temp(path: Path) -> tuple[Path, int | None]:
    """Create an empty, hidden temporary file next to ``path`` (permissions follow umask).

    Returns the file and the descriptor of its lock file, which the writer holds
    (``flock``) until the temporary file is gone: the lock is created and taken
    first, so a temporary file never exists unguarded. None where there is no
    ``flock``.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        lock_fd = None
        if _HAS_FLOCK:
            try:
                lock_fd = _create_locked(_lock_name(tmp))
            except FlockUnsupportedError:
                # no flock here: unguarded, and clean-up leaves such files alone
                log.debug("no flock on the file system of %s", path, exc_info=True)
            else:
                if lock_fd is None:
                    continue
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            _release_temp_lock(tmp, lock_fd)
            continue
        except BaseException:
            _release_temp_lock(tmp, lock_fd)
            raise
        os.close(fd)
        return tmp, lock_fd


def _release_temp_lock(tmp: Path, lock_fd: int | None) -> None:
    """Remove the lock file of ``tmp`` (gone or published by now) and give up its lock."""
    if lock_fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(_lock_name(tmp))
    with contextlib.suppress(OSError):
        os.close(lock_fd)


def _legacy_writer_alive(pid: int) -> bool:
    """Whether process ``pid`` runs here (only asked of temporary files without a lock file)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _writer_gone(entry: os.DirEntry[str], pid: int) -> int | None:
    """A descriptor locking temporary file ``entry`` when its writer is gone, else None.

    The writer holds the lock on ``<temporary file>.lock``: if it can be taken, no
    process has it open any more (the kernel drops a killed process's locks),
    whichever PID namespace or host the writer ran in. A temporary file without a
    lock file comes from a version before the lock files: it is taken for gone only
    if nobody holds a lock on the file itself (HDF5 locks its open files) and its
    process no longer runs here, as that version decided.
    """
    try:
        fd = _try_lock(_lock_name(Path(entry.path)))
    except FileNotFoundError:
        pass
    except OSError:
        return None
    else:
        return fd
    try:
        fd = _try_lock(Path(entry.path))
    except OSError:  # gone meanwhile (published or removed by its writer)
        return None
    if fd is not None and _legacy_writer_alive(pid):
        os.close(fd)
        return None
    return fd


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary files of ``path`` left by writers that were killed.

    A writer killed with SIGKILL (or by the out-of-memory killer, or a power cut)
    cannot remove its ``.<name>.<pid>.<random>.part``; the next writer of the same
    output removes those whose lock (see `_writer_gone`) nobody holds any more.
    The process id in the name is not asked: in another container or on another
    host sharing the disk, it says nothing about the writer.
    """
    if not _HAS_FLOCK:
        return
    name = re.escape(path.name)
    temp = re.compile(rf"\.{name}\.(\d+)\.[0-9a-f]{{8}}\.part")
    orphan_lock = re.compile(rf"\.{name}\.\d+\.[0-9a-f]{{8}}\.part{re.escape(_LOCK_SUFFIX)}")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    names = {entry.name for entry in entries}
    for entry in entries:
        match = temp.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        fd = _writer_gone(entry, int(match.group(1)))
        if fd is None:
            continue
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                log.info(
                    "removed %s, a temporary file of %s whose writer no longer runs",
                    entry.name,
                    path.name,
                )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path + _LOCK_SUFFIX)
        except OSError:
            log.debug("cannot remove %s", entry.path, exc_info=True)
        finally:
            os.close(fd)
    for entry in entries:
        # a writer killed between creating its lock file and its temporary file
        if orphan_lock.fullmatch(entry.name) and entry.name[: -len(_LOCK_SUFFIX)] not in names:
            _remove_orphan_lock(Path(entry.path))


def _remove_orphan_lock(lock: Path) -> None:
    try:
        fd = _try_lock(lock)
    except OSError:
        return
    if fd is None:
        return
    try:
        # its writer may have created the temporary file since the folder was listed
        if not lock.with_name(lock.name[: -len(_LOCK_SUFFIX)]).exists():
            with contextlib.suppress(OSError):
                os.unlink(lock)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _unclosed(path: Path, handles: list[Any], lock_fd: int | None) -> None:
    log.warning("catalog writer was never closed; discarded its partial output %s", path)
    _close_all(handles)
    _remove_quietly(path)
    _release_temp_lock(path, lock_fd)


def _close_all(handles: list[Any]) -> None:
    for handle in handles:
        try:
            handle.close()
        except Exception:  # the temporary file is removed regardless
            log.debug("error while closing %r", handle, exc_info=True)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync; the rename is still atomic
        pass
    finally:
        os.close(fd)


class CatalogWriter(abc.ABC):
    """Write a catalog chunk by chunk, publishing it only when complete.

    Rows go to a hidden temporary file in the output's folder
    (``.<name>.<pid>.<random>.part``); `close` moves it onto the output with
    `os.replace`, so an interrupted run never leaves a half-written catalog and never
    destroys an existing one. `abort`, an exception inside a ``with`` block, or the
    writer being garbage-collected unclosed remove the temporary file instead. While
    it exists the writer holds an exclusive ``flock`` on ``<temporary file>.lock``;
    the next writer of the same output removes a temporary file whose lock nobody
    holds (its writer was killed), and never one whose writer still runs, be it in
    another container or on another host.
    Memory use depends on the chunk size, not on the number of rows written.

    Use `open_writer` rather than the subclasses.

    Parameters
    ----------
    path : str or path-like
        Output file.
    columns : sequence of `ColumnSpec`
        Output columns, in order.
    meta : mapping, optional
        Table metadata (provenance), e.g. from `provenance_meta`.
    overwrite : bool, optional
        Replace an existing output at `close`.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false (checked before anything else).
    """

    #: format name, as `output_format` returns it
    format: ClassVar[str]

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[ColumnSpec],
        *,
        meta: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = check_output_path(path, overwrite=overwrite)
        self.overwrite = overwrite
        self.columns = self._checked_columns(columns)
        self.meta = copy.deepcopy(dict(meta or {}))
        self._rows = 0
        self._state = "open"
        self._warned: set[str] = set()
        _remove_stale_temps(self.path)
        self._tmp, self._lock_fd = _create_temp(self.path)
        #: open files of the temporary output, closed if the writer is dropped unclosed
        self._handles: list[Any] = []
        self._finalizer = weakref.finalize(self, _unclosed, self._tmp, self._handles, self._lock_fd)
        try:
            self._open(self._tmp)
        except BaseException:
            self.abort()
            raise
        log.debug("writing %s catalog %s via %s", self.format, self.path, self._tmp.name)

    @staticmethod
    def _checked_columns(columns: Sequence[ColumnSpec]) -> tuple[ColumnSpec, ...]:
        columns = tuple(columns)
        if not columns:
            msg = "a catalog needs at least one column"
            raise ValueError(msg)
        for spec in columns:
            if not isinstance(spec, ColumnSpec):
                msg = f"columns must be ColumnSpec instances, not {type(spec).__name__}"
                raise TypeError(msg)
        names = [spec.name for spec in columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            msg = f"duplicate column names {duplicates}"
            raise ValueError(msg)
        return columns

    @property
    def rows_written(self) -> int:
        """Number of rows written so far."""
        return self._rows

    @property
    def closed(self) -> bool:
        """Whether the writer was closed or aborted."""
        return self._state != "open"

    def write(self, chunk: Any) -> None:
        """Append a chunk of rows.

        Parameters
        ----------
        chunk : `~astropy.table.Table` or dict of array-like
            Rows holding exactly the writer's columns (see `prepare_chunk`). A chunk
            with zero rows is allowed and writes nothing. The chunk is checked
            completely before anything is written, so a rejected chunk leaves the
            writer usable; a failure while writing (disk full...) aborts the writer.
        """
        if self._state != "open":
            msg = f"catalog writer for {self.path} is already {self._state}"
            raise ValueError(msg)
        arrays, nrows = prepare_chunk(chunk, self.columns, warned=self._warned)
        if nrows:
            try:
                self._write(arrays, nrows)
            except BaseException:  # a half-written chunk cannot be taken back
                self.abort()
                raise
            self._rows += nrows

    def close(self) -> None:
        """Finish the file and move it onto the output path; does nothing when closed."""
        if self._state == "closed":
            return
        if self._state == "aborted":
            msg = f"catalog writer for {self.path} was aborted; nothing to close"
            raise ValueError(msg)
        try:
            self._finish()
            _fsync(self._tmp)
            # re-checked in case another process created the output meanwhile
            check_output_path(self.path, overwrite=self.overwrite)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        self._finalizer.detach()
        _release_temp_lock(self._tmp, self._lock_fd)
        log.info("wrote %d rows to %s", self._rows, self.path)

    def abort(self) -> None:
        """Discard everything written; the output path is left untouched."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._finalizer.detach()
        _close_all(self._handles)
        _remove_quietly(self._tmp)
        _release_temp_lock(self._tmp, self._lock_fd)
        log.debug("discarded partial catalog %s", self._tmp)

    def __enter__(self) -> CatalogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.path} ({self.format}, {len(self.columns)} columns, "
            f"{self._rows} rows, {self._state})>"
        )

    @abc.abstractmethod
    def _open(self, tmp: Path) -> None:
        """Start the file at ``tmp`` (which exists, empty); add open handles to ``_handles``."""

    @abc.abstractmethod
    def _write(self, arrays: dict[str, np.ndarray], nrows: int) -> None:
        """Append ``nrows`` rows given as checked arrays (see `prepare_chunk`)."""

    @abc.abstractmethod
    def _finish(self) -> None:
        """Complete the temporary file and close its handles."""
