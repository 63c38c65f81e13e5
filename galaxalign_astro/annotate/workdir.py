"""The work directory that makes ``annotate`` resumable.

``OUT.partial/`` (next to the output ``OUT``) holds

``manifest.json``
    what the run depends on: the input file (absolute path, SHA-256 of its
    content; size and modification time for information), the model (name,
    weights SHA-256), every setting that changes the output (and their SHA-256),
    the chunk size and row count, the output columns and the run's start date;
``chunk-00000000.npz`` ...
    one finished part per chunk of input rows: every output column of those rows
    (numpy ``.npz``, written to a temporary name and renamed, so a part either
    exists complete or not at all);
``cutouts/``
    fetched cutouts, when they are fetched and no other directory is given.

A run killed at any point leaves only complete parts; ``resume`` skips the chunks
that have one, and the final step streams the parts in order into the output
catalog. The directory is removed once the output is complete.

A run holds the output's writer lock (`WorkDir.lock`: an ``flock`` on
``.<output name>.galaxalign.lock`` beside the output) from before it looks at the
directory until it is done, so a second run on the same output, resuming,
restarting or starting afresh, fails at once instead of mixing its parts, its
manifest or its clean-up with the first's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog.locks import LockFile, exclusive_lock

__all__ = ["MANIFEST_VERSION", "WorkDir", "check_resumable", "settings_digest"]

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
_MANIFEST = "manifest.json"


def settings_digest(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``settings``."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_resumable(manifest: dict[str, Any], wanted: dict[str, Any], work: Path) -> None:
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
    problems += run_differences(manifest, wanted)
    if problems:
        msg = (
            f"cannot resume from {work}: " + "; ".join(problems) + ". Run again with "
            "restart=True (--restart) to discard the unfinished run."
        )
        raise ValueError(msg)


def run_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How the model and settings of run record ``new`` differ from ``old`` (the part of
    a resume check that ``annotate`` and ``annotate-hats`` share)."""
    problems = []
    before, now = old.get("model", {}).get("weights_sha256"), new["model"]["weights_sha256"]
    if before != now:
        problems.append(f"the model differs (weights sha256 {before} -> {now})")
    if old.get("settings_sha256") != new["settings_sha256"]:
        was, wanted = old.get("settings", {}), new["settings"]
        changed = sorted(k for k in set(was) | set(wanted) if was.get(k) != wanted.get(k))
        detail = "; ".join(f"{k}: {was.get(k)!r} -> {wanted.get(k)!r}" for k in changed)
        problems.append(f"settings differ ({detail or 'unknown'})")
    return problems


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            with contextlib.suppress(OSError):  # some file systems cannot sync
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class WorkDir:
    """``<output>.partial``: the manifest and the finished parts of one run.

    Parameters
    ----------
    output : path-like
        The output catalog the run produces.
    """

    def __init__(self, output: str | os.PathLike[str]) -> None:
        output = Path(output)
        self.output = output
        self.path = output.with_name(output.name + ".partial")
        self.lock_path = output.with_name(f".{output.name}.galaxalign.lock")

    def __repr__(self) -> str:
        return f"<WorkDir {self.path}>"

    @property
    def manifest_path(self) -> Path:
        return self.path / _MANIFEST

    @property
    def cutouts(self) -> Path:
        """Default directory of fetched cutouts."""
        return self.path / "cutouts"

    @contextlib.contextmanager
    def lock(self) -> Iterator[LockFile]:
        """Hold the output's writer lock, or fail at once if another run holds it.

        Not re-entrant: a second run in the same thread is refused too.

        Raises
        ------
        OutputLockedError
            Another run on the same output holds it; the message names the output
            and that run.
        """
        what = f"output {self.output} (unfinished run {self.path.name})"
        with exclusive_lock(self.lock_path, what=what, reentrant=False) as held:
            yield held

    def exists(self) -> bool:
        """Whether an earlier run left this directory."""
        return self.path.exists()

    def create(self, manifest: Mapping[str, Any]) -> None:
        """Make the directory and write ``manifest``."""
        self.path.mkdir()
        self.write_manifest(manifest)

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        text = json.dumps(dict(manifest), indent=1, sort_keys=True, default=str) + "\n"
        _atomic_write(self.manifest_path, lambda fh: fh.write(text.encode()))

    def read_manifest(self) -> dict[str, Any]:
        """The manifest; `ValueError` when it is missing or unreadable."""
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            msg = f"{self.manifest_path}: cannot read the manifest of the unfinished run ({exc})"
            raise ValueError(msg) from None
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            msg = f"{self.manifest_path}: not a manifest this version of galaxalign-astro wrote"
            raise ValueError(msg)
        return data

    def part_path(self, chunk: int) -> Path:
        return self.path / f"chunk-{chunk:08d}.npz"

    def done_chunks(self) -> set[int]:
        """Indices of the chunks that have a finished part."""
        done = set()
        for path in self.path.glob("chunk-*.npz"):
            with contextlib.suppress(ValueError):
                done.add(int(path.stem.split("-", 1)[1]))
        return done

    def write_part(self, chunk: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Store the output columns of one chunk atomically."""
        # prefixed keys: a column may be called "file", savez's own argument
        named = {f"c_{name}": values for name, values in arrays.items()}
        _atomic_write(self.part_path(chunk), lambda fh: np.savez(fh, **named))  # type: ignore[arg-type]

    def read_part(self, chunk: int) -> dict[str, np.ndarray]:
        """The arrays of one finished part."""
        path = self.part_path(chunk)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name[2:]: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            msg = f"{path}: damaged part of the unfinished run ({exc}); delete it and resume"
            raise ValueError(msg) from None

    def remove(self) -> None:
        """Delete the directory and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)
