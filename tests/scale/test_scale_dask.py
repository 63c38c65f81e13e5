"""Annotating a catalog file on a Dask cluster gives the single-process catalog."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.annotate import WorkDir, annotate_file
from galaxalign_astro.scale import cached_models, clear_predictors, dask_client

from .conftest import MISSING, N_ROWS

#: columns whose float values come from the model (batches may change the last bits)
MODEL_FLOATS = ("gxa_class_prob", "gxa_probs", "gxa_embedding")


def same_tables(a: Table, b: Table) -> None:
    assert a.colnames == b.colnames and len(a) == len(b)
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def run(folder, out, model, **kwargs):
    return annotate_file(
        folder / "catalog.fits",
        out,
        model=model,
        path_col="file",
        base_dir=folder,
        chunk_size=16,
        batch_size=8,
        **kwargs,
    )


@pytest.fixture(scope="module")
def reference(sky_catalog, scale_predictor):
    """The catalog written by a single-process run."""
    folder, table = sky_catalog
    table.write(folder / "catalog.fits", overwrite=True)
    out = folder / "reference.fits"
    summary = run(folder, out, scale_predictor)
    assert summary.n_failed == 1
    return Table.read(out, mask_invalid=False)


def test_cluster_run_gives_the_single_process_catalog(
    sky_catalog, reference, micro_model, thread_client, tmp_path
):
    folder, _ = sky_catalog
    clear_predictors()
    out = tmp_path / "dask.fits"
    summary = run(folder, out, micro_model, scheduler=thread_client)
    assert (summary.n_rows, summary.n_ok, summary.n_failed) == (N_ROWS, N_ROWS - 1, 1)
    result = Table.read(out, mask_invalid=False)
    same_tables(result, reference)
    assert result["gxa_status"][MISSING] == "error"
    assert "obj007.fits" in result["gxa_message"][MISSING]
    # four chunks on two in-process workers: the model was loaded once, not per chunk
    assert len(cached_models()) == 1


def test_zero_shot_classes_on_a_cluster(
    sky_catalog, reference, scale_predictor, thread_client, tmp_path
):
    # (the reference fixture writes the input catalog)
    folder, _ = sky_catalog
    classes = tmp_path / "classes.toml"
    classes.write_text(
        '[[classes]]\nname = "Disk"\ndescriptions = ["a thin edge-on disk galaxy"]\n'
        '[[classes]]\nname = "Ball"\nsymbols = ["round_smooth"]\n'
    )
    single, dask = tmp_path / "single.fits", tmp_path / "dask.fits"
    run(folder, single, scale_predictor, classes=classes)
    run(folder, dask, scale_predictor, classes=classes, scheduler=thread_client)
    result = Table.read(dask, mask_invalid=False)
    same_tables(result, Table.read(single, mask_invalid=False))
    ok = result["gxa_status"] == "ok"
    assert set(result["gxa_class_name"][ok]) <= {"Disk", "Ball"}
    assert result["gxa_probs"].shape == (N_ROWS, 2)


def test_local_worker_processes(sky_catalog, reference, micro_model, tmp_path):
    folder, _ = sky_catalog
    out = tmp_path / "procs.fits"
    with dask_client(n_workers=2) as client:
        run(folder, out, micro_model, scheduler=client)
        loads = client.run(cached_models)
    same_tables(Table.read(out, mask_invalid=False), reference)
    # each worker process loaded the model at most once for its chunks
    assert len(loads) == 2
    assert all(len(v) <= 1 for v in loads.values()) and sum(len(v) for v in loads.values()) >= 1


class _Crash(Exception):
    pass


def test_a_cluster_run_resumes_in_a_single_process(
    sky_catalog, reference, micro_model, scale_predictor, thread_client, tmp_path, monkeypatch
):
    folder, _ = sky_catalog
    out = tmp_path / "resumed.fits"
    real_write = WorkDir.write_part
    written = []

    def crash_after_two(self, index, arrays):
        if len(written) == 2:
            raise _Crash
        real_write(self, index, arrays)
        written.append(index)

    monkeypatch.setattr(WorkDir, "write_part", crash_after_two)
    with pytest.raises(_Crash):
        run(folder, out, micro_model, scheduler=thread_client)
    monkeypatch.setattr(WorkDir, "write_part", real_write)
    summary = run(folder, out, scale_predictor, resume=True)
    assert summary.rows_resumed == 32
    same_tables(Table.read(out, mask_invalid=False), reference)


def test_fetch_client_objects_cannot_go_to_a_cluster(sky_catalog, micro_model, tmp_path):
    from galaxalign_astro.fetch import get_client

    folder, _ = sky_catalog
    client = get_client("legacysurvey", base_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="survey name"):
        annotate_file(
            folder / "catalog.fits",
            tmp_path / "x.fits",
            model=micro_model,
            fetch=client,
            dask_workers=1,
        )


@pytest.mark.parametrize(("root", "expected"), [(30, 30), (20, 30), (10, 20)])
def test_dask_info_lines_are_kept_quiet_below_debug(monkeypatch, root, expected):
    import logging

    from galaxalign_astro.scale.cluster import quiet_dask_logs

    monkeypatch.setattr(logging.getLogger(), "level", root)
    dask_logger = logging.getLogger("distributed")
    monkeypatch.setattr(dask_logger, "level", logging.INFO)  # as distributed configures it
    quiet_dask_logs()
    assert dask_logger.level == expected
