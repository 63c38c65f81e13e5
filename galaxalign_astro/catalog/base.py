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

__all__ = ["CatalogWriter", "check_output_path"]

log = logging.getLogger(__name__)


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


def _create_temp(path: Path) -> Path:
    """Create an empty, hidden temporary file next to ``path`` (permissions follow umask)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary files of ``path`` left by writers that were killed.

    A writer killed with SIGKILL (or by the out-of-memory killer, or a power cut)
    cannot remove its ``.<name>.<pid>.<random>.part``; the next writer of the same
    output removes those whose process no longer runs on this machine.
    """
    if os.name != "posix":  # os.kill(pid, 0) is not a liveness probe elsewhere
        return
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.part")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _process_alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            log.info(
                "removed %s, a temporary file of %s left by process %d, which no longer runs",
                entry.name,
                path.name,
                pid,
            )


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _unclosed(path: Path, handles: list[Any]) -> None:
    log.warning("catalog writer was never closed; discarded its partial output %s", path)
    _close_all(handles)
    _remove_quietly(path)


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
    writer being garbage-collected unclosed remove the temporary file instead; one
    left by a killed process is removed by the next writer of the same output.
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
        self._tmp = _create_temp(self.path)
        #: open files of the temporary output, closed if the writer is dropped unclosed
        self._handles: list[Any] = []
        self._finalizer = weakref.finalize(self, _unclosed, self._tmp, self._handles)
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
        log.info("wrote %d rows to %s", self._rows, self.path)

    def abort(self) -> None:
        """Discard everything written; the output path is left untouched."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._finalizer.detach()
        _close_all(self._handles)
        _remove_quietly(self._tmp)
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
