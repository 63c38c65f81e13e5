"""Chunking does not change the output; an interrupted run resumes to exactly the same catalog."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.annotate import WorkDir, annotate_file
from galaxalign_astro.errors import OutputExistsError

from .conftest import N_ROWS, catalog_table

#: columns whose float values come from the model: batches of other sizes may change the
#: last bits (CPU matrix kernels), so chunk-size comparisons use a tolerance for them
MODEL_FLOATS = ("gxa_class_prob", "gxa_probs", "gxa_embedding")


def _same_tables(a: Table, b: Table, *, exact: bool = True) -> None:
    assert a.colnames == b.colnames and len(a) == len(b)
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if not exact and name in MODEL_FLOATS:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def _run(path, out, predictor, tmp_path, **kwargs):
    return annotate_file(
        path, out, model=predictor, path_col="file", base_dir=tmp_path, batch_size=4, **kwargs
    )


def test_chunk_size_does_not_change_the_output(catalog, micro_predictor, tmp_path):
    path, _ = catalog
    small, large = tmp_path / "c3.fits", tmp_path / "c1000.fits"
    _run(path, small, micro_predictor, tmp_path, chunk_size=3)
    _run(path, large, micro_predictor, tmp_path, chunk_size=1000)
    opts = {"mask_invalid": False}
    _same_tables(Table.read(small, **opts), Table.read(large, **opts), exact=False)


class _Crash(Exception):
    pass


def test_crash_then_resume_gives_the_uninterrupted_catalog(
    catalog, micro_predictor, tmp_path, monkeypatch
):
    path, _ = catalog
    reference = tmp_path / "reference.hdf5"
    _run(path, reference, micro_predictor, tmp_path, chunk_size=3)

    out = tmp_path / "out.hdf5"
    real_write = WorkDir.write_part
    calls = []

    def crash_after_two(self, chunk, arrays):
        if len(calls) == 2:
            raise _Crash
        calls.append(chunk)
        real_write(self, chunk, arrays)

    monkeypatch.setattr(WorkDir, "write_part", crash_after_two)
    with pytest.raises(_Crash):
        _run(path, out, micro_predictor, tmp_path, chunk_size=3)
    monkeypatch.undo()
    work = WorkDir(out)
    assert not out.exists() and work.done_chunks() == {0, 1}

    # an unfinished run is never silently overwritten or mixed with a new one
    with pytest.raises(OutputExistsError, match="resume"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=3)
    summary = _run(path, out, micro_predictor, tmp_path, chunk_size=3, resume=True)
    assert summary.rows_resumed == 6 and summary.n_rows == N_ROWS
    assert not work.exists()
    _same_tables(Table.read(out), Table.read(reference))


def test_resume_refuses_a_changed_input_or_setting(catalog, micro_predictor, tmp_path, monkeypatch):
    path, _ = catalog
    out = tmp_path / "out.fits"
    monkeypatch.setattr(WorkDir, "write_part", lambda *a: (_ for _ in ()).throw(_Crash()))
    with pytest.raises(_Crash):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4)
    monkeypatch.undo()

    with pytest.raises(ValueError, match=r"settings differ.*prefix"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True, prefix="x_")
    with pytest.raises(ValueError, match="chunk_size"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=5, resume=True)

    changed = catalog_table()
    changed["mag"][0] += 1
    changed.write(path, overwrite=True)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(ValueError, match="changed since the interrupted run"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True)
    assert WorkDir(out).exists()  # refusing keeps the unfinished run
    summary = _run(path, out, micro_predictor, tmp_path, chunk_size=4, restart=True)
    assert summary.rows_resumed == 0 and out.exists()


def _crash_midway(path, out, predictor, tmp_path, **kwargs):
    """Run annotate until it has stored its first chunk, then crash."""
    real_write = WorkDir.write_part

    def crash_after_one(self, chunk, arrays):
        if chunk > 0:
            raise _Crash
        real_write(self, chunk, arrays)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WorkDir, "write_part", crash_after_one)
        with pytest.raises(_Crash):
            _run(path, out, predictor, tmp_path, **kwargs)
    assert WorkDir(out).done_chunks() == {0}


def test_resume_refuses_changed_content_with_restored_size_and_mtime(
    catalog, micro_predictor, tmp_path
):
    # the resume is keyed on the input's content, not on its size and modification time,
    # which `cp -p`, `rsync -t` or `touch -r` restore
    path, _ = catalog
    out = tmp_path / "out.fits"
    _crash_midway(path, out, micro_predictor, tmp_path, chunk_size=4)
    before = path.stat()
    changed = catalog_table()
    changed["mag"][0] += 1
    changed.write(path, overwrite=True)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ValueError, match="changed since the interrupted run") as info:
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True)
    message = str(info.value)
    assert "\n" not in message and "SHA-256" in message and "--restart" in message
    assert WorkDir(out).done_chunks() == {0}  # refusing keeps the unfinished run


def test_resume_accepts_an_input_touched_but_unchanged(catalog, micro_predictor, tmp_path):
    path, _ = catalog
    reference = tmp_path / "reference.fits"
    _run(path, reference, micro_predictor, tmp_path, chunk_size=4)
    out = tmp_path / "out.fits"
    _crash_midway(path, out, micro_predictor, tmp_path, chunk_size=4)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # copied, or touched
    summary = _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True)
    assert summary.rows_resumed == 4
    _same_tables(Table.read(out), Table.read(reference))


def test_resume_refuses_a_manifest_without_the_input_hash(catalog, micro_predictor, tmp_path):
    path, _ = catalog
    out = tmp_path / "out.fits"
    _crash_midway(path, out, micro_predictor, tmp_path, chunk_size=4)
    work = WorkDir(out)
    manifest = work.read_manifest()
    del manifest["input"]["sha256"]  # as an earlier version wrote it
    work.write_manifest(manifest)
    with pytest.raises(ValueError, match=r"recorded no content SHA-256.*--restart"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True)


@pytest.mark.parametrize("how", ["resume", "restart", "fresh"])
def test_a_second_run_on_the_same_output_fails_while_the_first_runs(
    catalog, micro_predictor, tmp_path, how
):
    from galaxalign_astro.errors import OutputLockedError

    path, _ = catalog
    reference = tmp_path / "reference.hdf5"
    _run(path, reference, micro_predictor, tmp_path, chunk_size=3)
    out = tmp_path / "out.hdf5"
    options = {"resume": how == "resume", "restart": how == "restart", "overwrite": True}
    real_write = WorkDir.write_part
    refused, started = [], []

    def second_run():
        try:
            _run(path, out, micro_predictor, tmp_path, chunk_size=3, **options)
        except OutputLockedError as exc:
            refused.append(str(exc))

    def write_and_start_another(self, chunk, arrays):
        real_write(self, chunk, arrays)
        if chunk == 1 and not started:
            started.append(chunk)
            second_run()  # from this thread ...
            other = threading.Thread(target=second_run)  # ... and from another one
            other.start()
            other.join()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WorkDir, "write_part", write_and_start_another)
        summary = _run(path, out, micro_predictor, tmp_path, chunk_size=3)
    assert len(refused) == 2, refused
    for message in refused:
        assert "\n" not in message
        assert message.startswith(f"output {out} (unfinished run out.hdf5.partial) is being")
        assert f"pid {os.getpid()} on " in message
    # the first run was left alone: its parts, its manifest and its output
    assert summary.rows_resumed == 0 and not WorkDir(out).exists()
    _same_tables(Table.read(out), Table.read(reference))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
