"""Fixtures of the scale-out tests: a catalog with cutout files, a loaded model, a cluster."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from tests.cutout_factory import galaxy_cube, write_cube

#: rows of the test catalogs; row MISSING has no cutout file
N_ROWS = 60
MISSING = 7


@pytest.fixture(scope="session")
def scale_predictor(micro_model):
    """The micro model loaded once (loading costs seconds)."""
    from galaxalign_astro.inference import Predictor

    return Predictor(micro_model)


def sky_table(n: int = N_ROWS) -> Table:
    """Galaxies spread over a few degrees, so a HATS catalog of them has several pixels."""
    rng = np.random.default_rng(1)
    table = Table()
    table["objid"] = np.arange(1000, 1000 + n, dtype=np.int64)
    table["ra"] = rng.uniform(150.0, 156.0, n) * u.deg
    table["dec"] = rng.uniform(-2.0, 4.0, n) * u.deg
    table["mag"] = np.linspace(14.0, 18.0, n).astype(np.float32)
    table["file"] = [f"cut/obj{i:03d}.fits" for i in range(n)]
    return table


def cutout_cube(i: int) -> np.ndarray:
    return galaxy_cube(40, q=0.3 + 0.01 * i, angle=0.1 * i, seed=i)


@pytest.fixture(scope="module")
def sky_catalog(tmp_path_factory):
    """``(folder, table)``: a table whose FITS cutouts are in ``folder/cut`` (one missing)."""
    folder = tmp_path_factory.mktemp("sky")
    (folder / "cut").mkdir()
    table = sky_table()
    for i in range(len(table)):
        if i != MISSING:
            ra, dec = float(table["ra"][i]), float(table["dec"][i])
            write_cube(folder / table["file"][i], cutout_cube(i), ra=ra, dec=dec)
    return folder, table


@pytest.fixture(scope="module")
def thread_client():
    """A local Dask cluster of two in-process workers (threads start in milliseconds)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            # no dashboard, and the scheduler's HTTP server on a free port (a busy one warns)
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def hats_input(sky_catalog, tmp_path_factory):
    """A HATS catalog of the sky table with image columns (nested and flat); 13 partitions."""
    from galaxalign_astro.scale.hats import _import_lsdb

    _, table = sky_catalog
    frame = table.to_pandas()
    frame["image"] = [cutout_cube(i).tolist() for i in range(len(frame))]
    frame["flat"] = [cutout_cube(i).ravel().tolist() for i in range(len(frame))]
    path = tmp_path_factory.mktemp("hats") / "sky"
    catalog = _import_lsdb().from_dataframe(frame, partition_rows=12, margin_threshold=None)
    catalog.write_catalog(path, progress_bar=False)
    assert len(catalog.get_healpix_pixels()) == 13
    return path
