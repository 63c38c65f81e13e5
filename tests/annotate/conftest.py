"""Fixtures of the annotate tests: a catalog with cutouts, a loaded model, a fake survey."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from tests.cutout_factory import galaxy_cube, write_cube
from tests.fetch.fake_services import hermetic_fetch, serve_fake_surveys

#: rows of the test catalog; row MISSING has no cutout file
N_ROWS = 14
MISSING = 5


@pytest.fixture(scope="session")
def micro_predictor(micro_model):
    """The micro model loaded once (loading costs seconds)."""
    from galaxalign_astro.inference import Predictor

    return Predictor(micro_model)


def catalog_table(n: int = N_ROWS) -> Table:
    """A catalog with units, descriptions, metadata, a vector and a masked column."""
    table = Table()
    table["name"] = [f"GAL{i:03d}" for i in range(n)]
    table["RAJ2000"] = (150.0 + 0.01 * np.arange(n)) * u.deg
    table["RAJ2000"].description = "Right ascension (J2000)"
    table["DEJ2000"] = np.full(n, 2.0) * u.deg
    table["mag"] = np.linspace(14.0, 17.0, n).astype(np.float32) * u.mag
    table["flux_vec"] = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    table["file"] = [f"cut/GAL{i:03d}.fits" for i in range(n)]
    table.meta["ORIGIN"] = "galaxalign-astro tests"
    table.meta["comments"] = ["a test catalog"]
    return table


@pytest.fixture
def catalog(tmp_path):
    """``(catalog path, table)``: a FITS catalog whose cutouts are in ``tmp_path/cut``."""
    folder = tmp_path / "cut"
    folder.mkdir()
    table = catalog_table()
    for i, name in enumerate(table["name"]):
        if i != MISSING:
            cube = galaxy_cube(48, q=0.3 + 0.05 * i, angle=0.2 * i, seed=i)
            write_cube(folder / f"{name}.fits", cube, ra=float(table["RAJ2000"][i]), dec=2.0)
    path = tmp_path / "catalog.fits"
    table.write(path)
    return path, table


@pytest.fixture
def survey_server():
    """The local fake survey services of tests/fetch (one per test)."""
    with serve_fake_surveys() as state:
        yield state


@pytest.fixture(autouse=True)
def _hermetic_fetch(tmp_path, monkeypatch):
    """No service URL from the environment, no cache in the home directory."""
    with hermetic_fetch(tmp_path / "default-cache", monkeypatch):
        yield


@pytest.fixture
def fetch_options(survey_server, tmp_path):
    """Fast client options pointing at the fake server; small cutouts."""
    return {
        "base_url": survey_server.url,
        "size": 48,
        "timeout": 2.0,
        "max_retries": 1,
        "backoff_factor": 0.01,
        "max_backoff": 0.05,
        "rate_limit": 0,
        "cache_dir": str(tmp_path / "cache"),
    }
