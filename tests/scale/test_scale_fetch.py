"""Cutouts fetched on the Dask workers (local fake survey) give the single-process values."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.annotate import annotate, annotate_file
from galaxalign_astro.scale import annotate_hats
from galaxalign_astro.scale.hats import _import_lsdb
from tests.fetch.fake_services import hermetic_fetch, serve_fake_surveys

from .conftest import N_ROWS

ADDED = ("gxa_class_id", "gxa_class_prob", "gxa_probs", "gxa_embedding", "gxa_sep", "gxa_status")


@pytest.fixture
def survey_server():
    """The local fake survey services of tests/fetch (one per test)."""
    with serve_fake_surveys() as state:
        yield state


@pytest.fixture
def fetch_options(survey_server, tmp_path, monkeypatch):
    """Client options pointing at the fake server; no cache shared between runs."""
    with hermetic_fetch(tmp_path / "default-cache", monkeypatch):
        yield {
            "base_url": survey_server.url,
            "size": 48,
            "timeout": 2.0,
            "max_retries": 1,
            "rate_limit": 0,
            "cache": False,
        }


def same_values(got: Table, want: Table) -> None:
    for name in ADDED:
        x, y = np.asarray(got[name]), np.asarray(want[name])
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(x.astype(str), y.astype(str), err_msg=name)


@pytest.fixture
def fetched_reference(sky_catalog, scale_predictor, fetch_options):
    _, table = sky_catalog
    return annotate(table, model=scale_predictor, fetch="legacysurvey", fetch_options=fetch_options)


def test_annotate_file_fetches_on_the_workers(
    sky_catalog, fetched_reference, micro_model, thread_client, fetch_options, tmp_path
):
    _, table = sky_catalog
    table.write(tmp_path / "catalog.fits")
    summary = annotate_file(
        tmp_path / "catalog.fits",
        tmp_path / "out.fits",
        model=micro_model,
        fetch="legacysurvey",
        fetch_options=fetch_options,
        chunk_size=16,
        scheduler=thread_client,
    )
    assert summary.fetch_counts == {"network": N_ROWS}
    same_values(Table.read(tmp_path / "out.fits", mask_invalid=False), fetched_reference)


def test_annotate_hats_fetches_per_partition(
    hats_input, fetched_reference, micro_model, thread_client, fetch_options, tmp_path
):
    out, kept = tmp_path / "gxa", tmp_path / "fetched"
    summary = annotate_hats(
        hats_input,
        out,
        model=micro_model,
        fetch="legacysurvey",
        fetch_options=fetch_options,
        fetch_dir=kept,
        scheduler=thread_client,
    )
    assert summary.n_ok == N_ROWS
    frame = _import_lsdb().open_catalog(out).compute()
    rows = {int(v): i for i, v in enumerate(frame["objid"])}
    order = [rows[int(v)] for v in fetched_reference["objid"]]
    got = Table({n: np.stack(frame[n].to_numpy()[order]) for n in ADDED})
    same_values(got, fetched_reference)
    # one folder of cutouts per partition, so file names by row never collide
    assert len(list(kept.glob("Norder=*/Npix=*"))) == summary.n_partitions
    assert len(list(kept.rglob("*.fits"))) == N_ROWS
