"""Chunking does not change the output; an interrupted run resumes to exactly the same catalog."""

from __future__ import annotations

import os
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
