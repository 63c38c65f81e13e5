"""Exclusive writer locks on outputs: ``fcntl.flock`` on a lock file, named holders.

A writer that reads, changes and writes back an output (an index folder, a
resumable run) holds `exclusive_lock` for the whole of it, so a second writer
waits for it, or fails in one line naming the holder, instead of overwriting what
the first one wrote. The lock belongs to an open file, not to a process id, so it
works between containers, and between hosts sharing a file system whose ``flock``
works between its clients (Linux NFS clients map it to NFS locks; Lustre needs
its ``flock`` mount option); the kernel releases it when its holder dies, however
it dies. Where the file system refuses ``flock``, writers go on unguarded, as
they did before these locks, with a warning.

The lock file holds one line naming its holder (process id, host, start time,
command line) for the message of a writer that finds it taken. It is removed
when the lock is released; one left by a killed writer is taken over by the next
(the kernel no longer holds a lock on it). A taker checks, once it holds the lock,
that the path still names the file it locked, and otherwise starts again, so
removing a lock file never lets two writers in at once.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputLockedError

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, writers proceed unguarded
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_TIMEOUT_ENV", "LockFile", "exclusive_lock", "lock_timeout"]

log = logging.getLogger(__name__)

#: environment variable of the time (seconds) a writer waits for another one
LOCK_TIMEOUT_ENV = "GALAXALIGN_ASTRO_LOCK_TIMEOUT"
#: default of that wait (ours): long enough for a save, short enough to notice
_DEFAULT_TIMEOUT = 60.0
_MAX_HOLDER_CHARS = 300
#: whether this platform has ``flock`` (POSIX)
_HAS_FLOCK = fcntl is not None

#: locks this process holds: resolved path -> (owning thread, depth)
_held: dict[str, tuple[int, int]] = {}
_held_guard = threading.Lock()
#: lock files a "flock not supported" warning was given for
_warned: set[str] = set()
#: errors of a non-blocking flock that mean "someone else holds it"
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
if hasattr(os, "register_at_fork"):
    # a forked child shares the parent's lock but must not believe it may re-enter it
    os.register_at_fork(after_in_child=_held.clear)


def lock_timeout() -> float:
    """Seconds a writer waits for a lock: ``$GALAXALIGN_ASTRO_LOCK_TIMEOUT``, by default 60."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else _DEFAULT_TIMEOUT
    except ValueError:
        value = float("nan")
    if not value >= 0:
        msg = f"{LOCK_TIMEOUT_ENV}={text!r}: expected a number of seconds >= 0"
        raise ValueError(msg)
    return value


def _holder_line() -> str:
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])
    line = f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command}"
    return line[:_MAX_HOLDER_CHARS].replace("\n", " ")


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "a process that did not say who it is"


class LockFile:
    """An exclusive ``flock`` on ``path``, taken by `acquire` and given up by `release`.

    Re-entrant within one thread by default (a nested `acquire` of a lock the
    thread holds only counts), so a function taking the lock may call another that
    takes it too. Use `exclusive_lock` rather than this class directly.

    Parameters
    ----------
    path : path-like
        The lock file (created; its folder must exist).
    what : str
        What it guards, for messages (``"index /data/gal.index"``).
    reentrant : bool
        Whether a thread holding the lock may take it again; if not, it is refused
        as it would be to another process.
    """

    def __init__(self, path: str | os.PathLike[str], *, what: str, reentrant: bool = True) -> None:
        self.path = Path(path)
        self.what = what
        self.reentrant = reentrant
        self._key = os.path.realpath(self.path)
        self._fd: int | None = None
        self._nested = False

    def __repr__(self) -> str:
        return f"<LockFile {self.path} ({'held' if self._fd is not None else 'free'})>"

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for its holder.

        Raises
        ------
        OutputLockedError
            Another writer still holds it after ``timeout`` seconds.
        """
        me = threading.get_ident()
        with _held_guard:
            owner, depth = _held.get(self._key, (None, 0))
            if owner == me and self.reentrant:
                _held[self._key] = (me, depth + 1)
                self._nested = True
                return
        if owner == me:
            self._refuse(0.0)
        if fcntl is None:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.01
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _BUSY:
                    self._unsupported(exc)
                    return
                if time.monotonic() >= deadline:
                    self._refuse(timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            if not _same_file(fd, self.path):  # its holder removed it as we waited
                os.close(fd)
                continue
            break
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (_holder_line() + "\n").encode("utf-8", "replace"), 0)
        except OSError:  # the holder line is only for messages
            log.debug("cannot record the holder in %s", self.path, exc_info=True)
        self._fd = fd
        with _held_guard:
            _held[self._key] = (me, 1)
        log.debug("locked %s (%s)", self.what, self.path)

    def _unsupported(self, exc: OSError) -> None:
        """Go on unguarded where the file system has no ``flock`` (as before the locks)."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if self._key not in _warned:
            _warned.add(self._key)
            log.warning(
                "cannot lock %s (%s): the file system does not support flock; concurrent "
                "writers of %s are not kept apart",
                self.path,
                exc.strerror or exc,
                self.what,
            )

    def _refuse(self, timeout: float) -> None:
        holder = _read_holder(self.path)
        waited = f"after waiting {timeout:g} s" if timeout > 0 else "now"
        msg = (
            f"{self.what} is being written by another writer ({holder}); it still holds "
            f"{self.path} {waited}: try again when it has finished"
        )
        if timeout > 0:
            msg += f" (or wait longer: {LOCK_TIMEOUT_ENV})"
        raise OutputLockedError(msg)

    def release(self) -> None:
        """Give up the lock (only counts down after a nested `acquire`)."""
        with _held_guard:
            owner, depth = _held.get(self._key, (None, 0))
            if self._nested:
                if owner is not None and depth > 1:
                    _held[self._key] = (owner, depth - 1)
                self._nested = False
                return
            _held.pop(self._key, None)
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # removed while still held: whoever opened it meanwhile sees it is gone and retries
        with contextlib.suppress(OSError):
            if _same_file(fd, self.path):
                os.unlink(self.path)
        os.close(fd)
        log.debug("unlocked %s", self.what)


class FlockUnsupportedError(OSError):
    """The file system refuses ``flock`` (ENOSYS, EOPNOTSUPP, ENOLCK...)."""


def _create_locked(path: Path) -> int | None:
    """Create the lock file ``path`` and lock it; None if it exists or was lost at once.

    Returns the open descriptor holding the lock (None too where there is no
    ``flock``: nothing to hold).

    Raises
    ------
    FlockUnsupportedError
        The file system does not support ``flock`` (the lock file is removed again).
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except FileExistsError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in _BUSY:  # a clean-up took the fresh file for an orphan: try another name
            return None
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise FlockUnsupportedError(exc.errno, exc.strerror, str(path)) from exc
    if not _same_file(fd, path):  # ... and removed it before we locked it
        os.close(fd)
        return None
    return fd


def _try_lock(path: Path) -> int | None:
    """Lock the existing file ``path`` without waiting: its descriptor, or None if held.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    assert fcntl is not None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in _BUSY:
            return None
        raise
    return fd


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike[str], *, what: str, timeout: float = 0.0, reentrant: bool = True
) -> Iterator[LockFile]:
    """Hold an exclusive lock on the lock file ``path`` for the ``with`` block.

    Parameters
    ----------
    path : path-like
        The lock file; its folder must exist.
    what : str
        What the lock guards, named in the error.
    timeout : float
        Seconds to wait for another holder (0: fail at once).
    reentrant : bool
        Whether the thread holding the lock may take it again (see `LockFile`).

    Raises
    ------
    OutputLockedError
        Another writer holds the lock after ``timeout`` seconds; the message names
        ``what`` and the holder.
    """
    lock = LockFile(path, what=what, reentrant=reentrant)
    lock.acquire(timeout)
    try:
        yield lock
    finally:
        lock.release()
