"""Atomic file writes and the on-disk cutout cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from astropy.io import fits

__all__ = ["CutoutCache", "atomic_write_bytes", "atomic_write_hdul", "cache_key"]

log = logging.getLogger(__name__)

#: bump when the cached file layout changes, so old entries are not reused
CACHE_VERSION = 1
#: temporary files are hidden and end with this, so ``*.fits`` globs never see them
PART_SUFFIX = ".part"


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[BinaryIO]:
    """Yield a temporary file next to ``path``; on success it replaces ``path`` atomically.

    The temporary file sits in the same directory (so ``os.replace`` is a
    rename, atomic on POSIX and Windows), is flushed and fsync'ed before
    the rename, and is removed on any error, KeyboardInterrupt included. A
    process killed outright can leave a hidden ``.NAME.*.part`` file, never
    a partial ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{PART_SUFFIX}")
    # os.open with 0o666 honours the umask (mkstemp would leave the file private to its owner)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(content: bytes, path: str | Path) -> Path:
    """Write ``content`` to ``path`` so that ``path`` is either absent, old, or complete."""
    path = Path(path)
    with _atomic_target(path) as handle:
        handle.write(content)
    return path


def atomic_write_hdul(hdul: fits.HDUList, path: str | Path) -> Path:
    """Write a FITS ``HDUList`` to ``path`` atomically (see `atomic_write_bytes`)."""
    path = Path(path)
    with _atomic_target(path) as handle:
        hdul.writeto(handle, output_verify="exception")
    return path


def cache_key(parameters: dict[str, Any]) -> str:
    """Return a hex digest identifying a request by every parameter that shapes its result.

    Parameters
    ----------
    parameters : dict
        JSON-serialisable description of the request: service URL, query
        parameters, size, pixel scale, bands, layer...
    """
    blob = json.dumps(
        {"cache_version": CACHE_VERSION, **parameters}, sort_keys=True, default=str
    ).encode()
    return hashlib.sha256(blob).hexdigest()


class CutoutCache:
    """Cutout files stored under a directory, one per request key.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Where the files live (created on first write).
    prefix : str
        File name prefix, e.g. the survey name.
    """

    def __init__(self, directory: str | Path, *, prefix: str) -> None:
        self.directory = Path(directory)
        self.prefix = prefix

    def path(self, key: str) -> Path:
        """Return the file that holds (or would hold) the entry ``key``."""
        return self.directory / f"{self.prefix}-{key[:40]}.fits"

    def get(self, key: str) -> fits.HDUList | None:
        """Return the cached cutout for ``key`` read into memory, or None on a miss."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                copy = fits.HDUList([hdu.copy() for hdu in hdul])
        except (OSError, ValueError, TypeError) as exc:
            log.warning("dropping unreadable cache entry %s: %s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        log.debug("cache hit %s", path)
        return copy

    def put(self, key: str, hdul: fits.HDUList) -> Path:
        """Store a cutout under ``key`` (atomically) and return its path."""
        return atomic_write_hdul(hdul, self.path(key))

    def clear(self) -> int:
        """Remove every entry with this prefix; return how many files were removed."""
        removed = 0
        if self.directory.is_dir():
            for path in self.directory.glob(f"{self.prefix}-*.fits"):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed
