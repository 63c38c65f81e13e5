"""Writers of one index folder never lose each other's rows: they take turns, or fail loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.catalog import write_table
from galaxalign_astro.cli.index import command as index_command
from galaxalign_astro.errors import OutputLockedError
from galaxalign_astro.search import EmbeddingIndex, IndexFileError, index_lock
from galaxalign_astro.search.index import INDEX_LOCK

from .test_search_cli import SAMPLES, catalog, run  # noqa: F401 (catalog is a fixture)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

ROOT = Path(__file__).resolve().parents[2]

#: ``index`` as a separate process, slowed so that two runs surely overlap: each
#: sleeps after reading what is already indexed (where the lock makes the other wait)
_SLOW_INDEX = """
import sys, time
import galaxalign_astro.inference.run as run
slow = run.classify_to_file
def classify_to_file(*args, **kwargs):
    time.sleep(float(sys.argv[1]))
    return slow(*args, **kwargs)
run.classify_to_file = classify_to_file
from galaxalign_astro.cli.index import command
command(sys.argv[2:], prog_name="galaxalign-astro index")
"""

_HOLD_LOCK = """
import sys
from galaxalign_astro.search import index_lock
with index_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _env(**extra):
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path, **extra}


def _index_process(*args, delay=0.0, **env):
    return subprocess.Popen(
        [sys.executable, "-c", _SLOW_INDEX, str(delay), *[str(a) for a in args]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
        cwd=ROOT,
    )


def _sources(index_dir):
    return sorted(Path(s).name for s in Table.read(index_dir / "catalog.fits")["source"])


def test_concurrent_cutout_adds_keep_every_row(micro_model, tmp_path):
    # two `index --cutouts --add` runs into one index at once: both used to exit 0
    # with one run's rows gone; now the second waits for the first and adds after it
    files = sorted(SAMPLES.glob("sim_*.fits"))
    base, first, second = files[:2], files[2:5], files[5:8]
    out = tmp_path / "idx"
    built = run(index_command, "--cutouts", *base, "-o", out, "--model", micro_model)
    assert built.exit_code == 0, built.output
    procs = [
        _index_process(
            "--cutouts",
            *batch,
            "-o",
            out,
            "--add",
            "-q",
            "--workers",
            0,
            delay=2,
            GALAXALIGN_ASTRO_LOCK_TIMEOUT="300",
        )
        for batch in (first, second)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    statuses = [status for status, _, _ in results]
    errors = "\n".join(err for _, _, err in results)
    if statuses == [0, 0]:
        expected = sorted(p.name for p in base + first + second)
        assert _sources(out) == expected
        index = EmbeddingIndex.load(out)
        assert len(index) == 8 and sorted(index.ids.tolist()) == list(range(8))
    else:  # never both done with one's rows dropped: a loser says so and changes nothing
        assert sorted(statuses) == [0, 1], errors
        assert "is being written by another writer" in errors
        assert len(EmbeddingIndex.load(out)) == 5
    assert sorted(p.name for p in out.iterdir()) == [
        "catalog.fits",
        "ids.npy",
        "index.json",
        "search.json",
        "vectors.npy",
    ]


def test_a_writer_waits_then_fails_naming_the_index_and_the_holder(catalog, tmp_path):  # noqa: F811
    table = Table.read(catalog, mask_invalid=False)
    table.meta.pop("EXTNAME", None)
    grown = tmp_path / "grown.parquet"
    write_table(table[:4], grown)
    out = tmp_path / "idx"
    assert run(index_command, grown, "-o", out).exit_code == 0
    write_table(table, grown, overwrite=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = _index_process(grown, "-o", out, "--add", "-q", GALAXALIGN_ASTRO_LOCK_TIMEOUT="0.5")
        status = proc.wait(timeout=120)
        stdout, stderr = proc.communicate()
    finally:
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    assert status == 1, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"Error: index {out} is being written by another writer (pid ")
    assert f"pid {holder.pid} on " in lines[0] and "after waiting 0.5 s" in lines[0]
    assert len(EmbeddingIndex.load(out)) == 4  # untouched
    # once the other writer is done, the same command adds the rows
    again = run(index_command, grown, "-o", out, "--add")
    assert again.exit_code == 0 and "Added 6 rows to 4" in again.output
    assert not (out / INDEX_LOCK).exists()


def test_saving_over_an_index_another_writer_saved_since_loading_fails(tmp_path):
    rng = np.random.default_rng(0)
    EmbeddingIndex(rng.standard_normal((10, 8)), catalog_rows=30).save(tmp_path)
    mine, theirs = EmbeddingIndex.load(tmp_path), EmbeddingIndex.load(tmp_path)
    theirs.add(rng.standard_normal((5, 8)), ids=np.arange(10, 15))
    theirs.save(tmp_path, overwrite=True)
    mine.add(rng.standard_normal((5, 8)), ids=np.arange(15, 20))
    with pytest.raises(IndexFileError, match="saved by another writer after this copy was loaded"):
        mine.save(tmp_path, overwrite=True)
    assert sorted(EmbeddingIndex.load(tmp_path).ids.tolist()) == list(range(15))
    # the writer that saved may save again; a fresh load sees its rows
    theirs.add(rng.standard_normal((1, 8)), ids=[20])
    theirs.save(tmp_path, overwrite=True)
    again = EmbeddingIndex.load(tmp_path)
    again.add(rng.standard_normal((5, 8)), ids=np.arange(15, 20))
    again.save(tmp_path, overwrite=True)
    assert len(EmbeddingIndex.load(tmp_path)) == 21
    # saving elsewhere, or replacing with an index built afresh, is not a lost update
    mine.save(tmp_path / "copy")
    EmbeddingIndex(rng.standard_normal((3, 8))).save(tmp_path, overwrite=True)
    assert len(EmbeddingIndex.load(tmp_path)) == 3


def test_temporary_names_are_unique_and_leftovers_of_killed_writers_go(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    index = EmbeddingIndex(rng.standard_normal((10, 8)))
    index.save(tmp_path)
    # a killed writer's files: the old fixed name and a unique one
    for name in (".vectors.npy.partial", ".ids.npy.1a2b3c4d5e6f.partial", ".search.json.x.partial"):
        (tmp_path / name).write_bytes(b"half")
    names = []
    real_replace = os.replace

    def replace(src, dst):
        names.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    index.save(tmp_path, overwrite=True)
    index.save(tmp_path, overwrite=True)
    assert len(names) == len(set(names)) == 6
    assert all(n.startswith(".") and n.endswith(".partial") and n.count(".") == 4 for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.npy", "index.json", "vectors.npy"]


def test_index_lock_is_held_by_save(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    index = EmbeddingIndex(rng.standard_normal((10, 8)))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("GALAXALIGN_ASTRO_LOCK_TIMEOUT", "0.2")
        with pytest.raises(OutputLockedError, match=f"index {tmp_path} is being written"):
            index.save(tmp_path)
        assert not (tmp_path / "index.json").exists()
    finally:
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    with index_lock(tmp_path):  # re-entrant: save inside the caller's lock
        index.save(tmp_path)
    assert len(EmbeddingIndex.load(tmp_path)) == 10
