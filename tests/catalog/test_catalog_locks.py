"""Writer locks: exclusive between processes and threads, re-entrant, named in errors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from galaxalign_astro.catalog.locks import LOCK_TIMEOUT_ENV, exclusive_lock, lock_timeout
from galaxalign_astro.errors import OutputLockedError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

_HOLDER = """
import sys
from galaxalign_astro.catalog.locks import exclusive_lock
with exclusive_lock(sys.argv[1], what="test output"):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_fails_naming_the_holder_and_what_is_locked(tmp_path):
    lock = tmp_path / ".galaxalign.lock"
    proc = _holder(lock)
    try:
        t0 = time.monotonic()
        with pytest.raises(OutputLockedError) as info:
            with exclusive_lock(lock, what="index /data/gal.index", timeout=0.3):
                pass
        assert time.monotonic() - t0 >= 0.3
        message = str(info.value)
        assert "\n" not in message
        assert "index /data/gal.index is being written by another writer" in message
        assert f"pid {proc.pid} on " in message and "after waiting 0.3 s" in message
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
    # released at its holder's exit (and its file removed): free again
    assert not lock.exists()
    with exclusive_lock(lock, what="test output"):
        assert lock.exists()
    assert not lock.exists()


def test_a_killed_holder_releases_the_lock(tmp_path):
    lock = tmp_path / ".galaxalign.lock"
    proc = _holder(lock)
    proc.kill()
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()
    assert lock.exists()  # a killed holder cannot remove it, but holds nothing
    with exclusive_lock(lock, what="test output", timeout=0):
        pass


def test_a_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    lock = tmp_path / ".galaxalign.lock"
    proc = _holder(lock)
    threading.Timer(0.3, proc.stdin.close).start()
    try:
        with exclusive_lock(lock, what="test output", timeout=30):
            assert proc.wait(timeout=30) == 0
    finally:
        proc.wait()
        proc.stdout.close()


def test_reentrant_within_a_thread_exclusive_between_threads(tmp_path):
    lock = tmp_path / ".galaxalign.lock"
    errors = []

    def other():
        try:
            with exclusive_lock(lock, what="test output"):
                pass
        except OutputLockedError as exc:
            errors.append(exc)

    with exclusive_lock(lock, what="test output"):
        with exclusive_lock(lock, what="test output"):  # nested: only counts
            pass
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert lock.exists()  # still held by the outer block
    assert len(errors) == 1
    assert not lock.exists()


def test_lock_timeout_from_the_environment(monkeypatch):
    monkeypatch.delenv(LOCK_TIMEOUT_ENV, raising=False)
    assert lock_timeout() == 60
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2.5")
    assert lock_timeout() == 2.5
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=LOCK_TIMEOUT_ENV):
        lock_timeout()


def test_without_flock_on_the_file_system_writers_go_on_with_a_warning(
    tmp_path, monkeypatch, caplog
):
    import errno
    import logging

    import numpy as np

    from galaxalign_astro.catalog import ColumnSpec, locks, open_writer

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(locks.fcntl, "flock", no_flock)
    lock = tmp_path / ".galaxalign.lock"
    with caplog.at_level(logging.WARNING, logger="galaxalign_astro.catalog.locks"):
        with exclusive_lock(lock, what="test output"):
            assert not lock.exists()
    assert "does not support flock" in caplog.text
    out = tmp_path / "cat.ecsv"
    with open_writer(out, [ColumnSpec("x", "f8")], meta={}) as writer:
        writer.write({"x": np.arange(3.0)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.ecsv"]
