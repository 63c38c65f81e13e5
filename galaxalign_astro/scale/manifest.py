"""The run record of `~galaxalign_astro.scale.annotate_hats`: manifest, digest, lock.

The output directory of an ``annotate-hats`` run holds, beside the HATS files,
``galaxalign_annotate.json`` (ours, `MANIFEST_NAME`): the input and its content
digest (`input_digest`), the model, the settings and their SHA-256, the start date
and whether the run finished. `prepare_output` decides what an existing output
directory means (replace it, resume it, or refuse), `check_resumable` refuses a
resume whose input, model or settings differ, and `holding_output_lock` keeps a
second run off the same output.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "check_resumable",
    "holding_output_lock",
    "input_digest",
    "now",
    "prepare_output",
    "read_manifest",
    "write_manifest",
]

log = logging.getLogger(__name__)

#: file in the output catalog recording the run (ours)
MANIFEST_NAME = "galaxalign_annotate.json"
MANIFEST_FORMAT = "galaxalign-astro annotate-hats"


def now() -> str:
    """The current UTC time, to the second, as ISO 8601 text."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The manifest in the output directory ``output``, or None when it has none."""
    path = output / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        msg = f"cannot read {path}: {exc}"
        raise ValueError(msg) from exc


def write_manifest(output: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest`` into ``output`` atomically (a temporary file, then renamed)."""
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / f".{MANIFEST_NAME}.partial"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, output / MANIFEST_NAME)


def prepare_output(output: Path, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Clear or keep ``output``; return the manifest of the run to resume, if any."""
    from ..errors import OutputExistsError

    if not output.exists() or not any(output.iterdir()):
        return None
    old = read_manifest(output)
    if overwrite:
        log.info("removing %s (overwrite)", output)
        shutil.rmtree(output)
        return None
    if resume and old is not None and old.get("format") == MANIFEST_FORMAT:
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


def check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], output: Path) -> None:
    """Refuse (``ValueError``) to resume ``old`` when the input, model or settings differ."""
    from ..annotate.workdir import run_differences

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
    problems += run_differences(old, new)
    if problems:
        msg = (
            f"cannot resume the run in {output}: " + "; ".join(problems) + ". Start again "
            "with overwrite=True (--overwrite)."
        )
        raise ValueError(msg)


def holding_output_lock(func: Callable[..., Any]) -> Callable[..., Any]:
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
