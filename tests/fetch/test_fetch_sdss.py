"""SDSS client: field lookup through SkyServer, frames from the SAS, cutting and alignment."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs.utils import proj_plane_pixel_scales

from galaxalign_astro.fetch import (
    OutsideFootprintError,
    SDSSClient,
    ServiceError,
    get_client,
    read_cutout_cube,
)

from .fake_services import frame_wcs

COORD = SkyCoord(180.0123 * u.deg, 10.0217 * u.deg)


def sdss(server, fast, **options):
    return get_client("sdss", **{"base_url": server.url, **fast, **options})


def peak(plane):
    return np.array(np.unravel_index(np.argmax(plane), plane.shape), dtype=float)


def test_dry_run_builds_skyserver_query_without_network(survey_server, fast):
    client = sdss(survey_server, fast)
    plan = client.get_cutout(COORD, size=32, get_query_payload=True)
    assert survey_server.count() == 0
    assert len(plan) == 1
    spec = plan[0]
    assert spec["url"] == survey_server.url + "/dr17/en/tools/search/x_results.aspx"
    assert spec["params"]["format"] == "csv"
    assert spec["params"]["searchtool"] == "SQL"
    assert "fGetNearbyObjEq(180.0123000, 10.0217000, 0.5)" in spec["params"]["cmd"]
    assert "PhotoPrimary" in spec["params"]["cmd"]


def test_defaults_follow_astroquery_sdss_conf():
    from astroquery.sdss import conf as sdss_conf

    with (
        sdss_conf.set_temp("skyserver_baseurl", "http://sky.example"),
        sdss_conf.set_temp("sas_baseurl", "http://sas.example/sas"),
    ):
        client = SDSSClient()
    assert client.skyserver_url == "http://sky.example"
    assert client.frame_url(run=1904, rerun=301, camcol=3, field=163, band="r") == (
        "http://sas.example/sas/dr17/eboss/photoObj/frames/301/1904/3/frame-r-001904-3-0163.fits.bz2"
    )


def test_native_cutout_on_r_band_grid_with_bands_aligned(survey_server, fast):
    client = sdss(survey_server, fast)
    hdul = client.get_cutout(COORD, size=40, bands="gri")
    cube = read_cutout_cube(hdul)
    assert cube.data.shape == (3, 40, 40)
    assert cube.bands == "gri"
    header = hdul[0].header
    assert header["REFBAND"] == "r"
    assert (header["RUN"], header["CAMCOL"]) == (1904, 3)
    # the grid is the r frame's, rotated by 30 degrees like the fake frames
    r_frame = frame_wcs(COORD.ra.deg, COORD.dec.deg, "r")
    np.testing.assert_allclose(cube.wcs.pixel_scale_matrix, r_frame.pixel_scale_matrix, rtol=1e-9)
    x, y = cube.wcs.world_to_pixel(COORD)
    assert abs(float(x) - 19.5) <= 0.5 and abs(float(y) - 19.5) <= 0.5
    # g and i frames are shifted by ~1-2 pixels; after reprojection the galaxy coincides
    ref = peak(cube.data[1])
    for plane in (cube.data[0], cube.data[2]):
        assert np.abs(peak(plane) - ref).max() <= 1
    g_shifted = np.abs(cube.data[0] - cube.data[1]).sum() / np.abs(cube.data[1]).sum()
    assert g_shifted < 0.05
    kinds = [r.kind for r in survey_server.requests]
    assert kinds == ["sql", "frame", "frame", "frame"]
    assert sorted(r.path.split("/")[-1][:7] for r in survey_server.requests[1:]) == [
        "frame-g",
        "frame-i",
        "frame-r",
    ]


def test_first_band_is_reference_without_r(survey_server, fast):
    hdul = sdss(survey_server, fast).get_cutout(COORD, size=24, bands="iz")
    assert hdul[0].header["REFBAND"] == "i"
    assert hdul[0].data.shape == (2, 24, 24)


def test_resampled_cutout_is_north_up_and_conserves_flux(survey_server, fast):
    client = sdss(survey_server, fast)
    native = read_cutout_cube(client.get_cutout(COORD, size=80, bands="r"))
    fine = read_cutout_cube(client.get_cutout(COORD, size=120, pixscale=0.262, bands="r"))
    assert fine.data.shape == (1, 120, 120)
    assert "REFBAND" not in fine.header
    np.testing.assert_allclose(proj_plane_pixel_scales(fine.wcs) * 3600, [0.262, 0.262])
    assert fine.wcs.wcs.cdelt[0] < 0 < fine.wcs.wcs.cdelt[1]
    np.testing.assert_allclose(fine.wcs.wcs.crval, [COORD.ra.deg, COORD.dec.deg])
    assert np.abs(peak(fine.data[0]) - 59.5).max() <= 1
    # same sky area (31"): same total flux in nanomaggies within a few percent
    assert fine.data.sum() == pytest.approx(native.data.sum(), rel=0.05)


def test_frames_are_cached_and_shared(survey_server, fast):
    client = sdss(survey_server, fast)
    client.get_cutout(COORD, size=20, bands="gr")
    client.get_cutout(COORD, size=30, bands="gr")
    kinds = [r.kind for r in survey_server.requests]
    assert kinds == ["sql", "frame", "frame", "sql"]
    frames = list((fast["cache_dir"] / "sdss-frames").iterdir())
    assert len(frames) == 2 and all(p.name.endswith(".fits.bz2") for p in frames)


def test_no_nearby_object_is_outside_footprint(survey_server, fast):
    client = sdss(survey_server, fast)
    with pytest.raises(OutsideFootprintError, match="outside the SDSS imaging footprint"):
        client.get_cutout(SkyCoord(10 * u.deg, 85 * u.deg), size=20)
    assert survey_server.count("frame") == 0


def test_frame_download_retries(survey_server, fast):
    survey_server.inject("frame", ("status", 502), "truncated")
    hdul = sdss(survey_server, fast).get_cutout(COORD, size=20, bands="r")
    assert hdul[0].data.shape == (1, 20, 20)
    assert survey_server.count("frame") == 3


def test_skyserver_html_page_with_status_200_is_retried(survey_server, fast):
    survey_server.inject("sql", "html")
    hdul = sdss(survey_server, fast).get_cutout(COORD, size=20, bands="r")
    assert hdul[0].data.shape == (1, 20, 20)
    assert survey_server.count("sql") == 2


def test_skyserver_error_page(survey_server, fast):
    survey_server.inject("sql", ("status", 500), ("status", 500), ("status", 500))
    with pytest.raises(ServiceError, match=r"x_results\.aspx failed after 3 attempt"):
        sdss(survey_server, fast).get_cutout(COORD, size=20)


def test_env_var_base_url(survey_server, fast, monkeypatch):
    monkeypatch.setenv("GALAXALIGN_ASTRO_SDSS_URL", survey_server.url)
    client = get_client("sdss", **fast)
    assert client.sas_url == survey_server.url + "/sas"
    client.get_cutout(COORD, size=16, bands="r")
    assert survey_server.count("frame") == 1


@pytest.mark.parametrize(("layer", "match"), [("dr7", "from DR8 on"), ("sdss", "data release")])
def test_bad_layer(layer, match):
    with pytest.raises(ValueError, match=match):
        SDSSClient(layer=layer)


def test_older_release_paths():
    client = SDSSClient(layer="dr12", base_url="http://mirror.example/x")
    assert client.frame_url(run=1, rerun=301, camcol=1, field=11, band="g").startswith(
        "http://mirror.example/x/sas/dr12/boss/photoObj/frames/301/1/1/frame-g-000001-1-0011"
    )
    plan = client.get_cutout(COORD, get_query_payload=True)
    assert plan[0]["url"] == "http://mirror.example/x/dr12/en/tools/search/x_results.aspx"
