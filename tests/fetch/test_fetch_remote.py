"""Live checks against the real services (run with ``pytest --remote-data``)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from galaxalign_astro.fetch import OutsideFootprintError, get_client, read_cutout_cube

pytestmark = pytest.mark.remote_data

# NGC 3310, a bright spiral inside the Legacy Surveys, SDSS and the HiPS footprints
NGC3310 = SkyCoord(159.6910 * u.deg, 53.5034 * u.deg)
OPTIONS = {"timeout": 120, "max_retries": 2, "rate_limit": 1}


@pytest.mark.parametrize("layer", ["ls-dr10", "ls-dr9"])
def test_legacysurvey_cutout(tmp_path, layer):
    client = get_client("legacysurvey", layer=layer, cache_dir=tmp_path, **OPTIONS)
    cube = read_cutout_cube(client.get_cutout(NGC3310, size=64, bands="grz"))
    assert cube.data.shape == (3, 64, 64)
    assert cube.pixscale == pytest.approx(0.262, rel=1e-3)
    assert np.nanmax(cube.data[1]) > 1.0  # a bright galaxy, in nanomaggies per pixel


def test_legacysurvey_outside_footprint(tmp_path):
    client = get_client("legacysurvey", cache_dir=tmp_path, **OPTIONS)
    with pytest.raises(OutsideFootprintError):
        client.get_cutout(SkyCoord(0 * u.deg, -89.5 * u.deg), size=32)


def test_sdss_cutout(tmp_path):
    client = get_client("sdss", cache_dir=tmp_path, **OPTIONS)
    cube = read_cutout_cube(client.get_cutout(NGC3310, size=64, bands="gri"))
    assert cube.data.shape == (3, 64, 64)
    assert np.nanmax(cube.data[1]) > 1.0


def test_hips2fits_cutout(tmp_path):
    client = get_client("hips", layer="sdss9", cache_dir=tmp_path, **OPTIONS)
    cube = read_cutout_cube(client.get_cutout(NGC3310, size=64, bands="gr"))
    assert cube.data.shape == (2, 64, 64)
    assert np.any(cube.data != 0)
