"""hips2fits client: astroquery-built requests, per-band HiPS ids, stacking and errors."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from galaxalign_astro.fetch import (
    Hips2FitsClient,
    OutsideFootprintError,
    ServiceError,
    get_client,
    read_cutout_cube,
)

from .fake_services import json_error

COORD = SkyCoord(35.7 * u.deg, -4.81 * u.deg)


def hips(server, fast, **options):
    return get_client("hips", **{"base_url": server.url, **fast, **options})


def test_dry_run_one_request_per_band(survey_server, fast):
    client = hips(survey_server, fast)
    plan = client.get_cutout(COORD, size=64, pixscale=0.5, bands="gz", get_query_payload=True)
    assert survey_server.count() == 0
    assert [spec["band"] for spec in plan] == ["g", "z"]
    assert [spec["params"]["hips"] for spec in plan] == [
        "CDS/P/DESI-Legacy-Surveys/DR10/g",
        "CDS/P/DESI-Legacy-Surveys/DR10/z",
    ]
    params = plan[0]["params"]
    assert plan[0]["url"] == survey_server.url + "/hips-image-services/hips2fits"
    assert (params["width"], params["height"], params["projection"]) == (64, 64, "TAN")
    assert params["format"] == "fits"
    assert params["ra"] == pytest.approx(35.7) and params["dec"] == pytest.approx(-4.81)
    assert params["fov"] == pytest.approx(64 * 0.5 / 3600)
    assert type(params["fov"]) is float


def test_default_service_url():
    plan = Hips2FitsClient().get_cutout(COORD, get_query_payload=True)
    assert plan[0]["url"] == "https://alasky.cds.unistra.fr/hips-image-services/hips2fits"


@pytest.mark.parametrize(
    ("options", "bands", "expected"),
    [
        ({"layer": "sdss9"}, "ui", ["CDS/P/SDSS9/u", "CDS/P/SDSS9/i"]),
        (
            {"layer": "CDS/P/PanSTARRS/DR1/{band}"},
            "gy",
            ["CDS/P/PanSTARRS/DR1/g", "CDS/P/PanSTARRS/DR1/y"],
        ),
        (
            {"hips_ids": {"g": "CDS/P/X/g", "r": "CDS/P/Y/r"}, "layer": "custom"},
            "rg",
            ["CDS/P/Y/r", "CDS/P/X/g"],
        ),
        (
            {"hips_ids": {"z": "CDS/P/Mine/z"}},
            "gz",
            ["CDS/P/DESI-Legacy-Surveys/DR10/g", "CDS/P/Mine/z"],
        ),
    ],
)
def test_hips_ids_are_configurable(options, bands, expected):
    client = Hips2FitsClient(**options)
    plan = client.get_cutout(COORD, size=8, bands=bands, get_query_payload=True)
    assert [spec["params"]["hips"] for spec in plan] == expected


def test_unknown_layer_or_band():
    with pytest.raises(ValueError, match="neither a preset"):
        Hips2FitsClient(layer="CDS/P/SDSS9/g")
    with pytest.raises(ValueError, match="not available in hips sdss9"):
        Hips2FitsClient(layer="sdss9").get_cutout(COORD, bands="y", get_query_payload=True)


def test_cube_in_common_layout(survey_server, fast):
    hdul = hips(survey_server, fast).get_cutout(COORD, size=40, pixscale=0.3, bands="grz")
    cube = read_cutout_cube(hdul)
    assert cube.data.shape == (3, 40, 40)
    assert cube.pixscale == pytest.approx(0.3)
    x, y = cube.wcs.world_to_pixel(COORD)
    assert (float(x), float(y)) == pytest.approx((19.5, 19.5), abs=1e-6)
    assert hdul[0].header["HIPS2"] == "CDS/P/DESI-Legacy-Surveys/DR10/z"
    assert survey_server.count("hips") == 3
    assert [r.params["hips"][-1] for r in survey_server.requests] == ["g", "r", "z"]


def test_service_json_error_is_reported(survey_server, fast):
    survey_server.inject("hips", "json_error")
    with pytest.raises(ServiceError, match="HTTP 400") as info:
        hips(survey_server, fast).get_cutout(COORD, size=16)
    error = json_error()
    assert f"{error['title']}: {error['description']}" in str(info.value)
    assert survey_server.count("hips") == 1


def test_blank_hips_is_outside_footprint(survey_server, fast):
    with pytest.raises(OutsideFootprintError):
        hips(survey_server, fast).get_cutout(SkyCoord(1 * u.deg, 86 * u.deg), size=16)


def test_partly_blank_band_becomes_zero(survey_server, fast):
    survey_server.inject("hips", None, "zeros")
    hdul = hips(survey_server, fast).get_cutout(COORD, size=16, bands="gr")
    assert np.all(hdul[0].data[1] == 0) and np.any(hdul[0].data[0] != 0)
    assert hdul[0].header["ZEROFRAC"] == pytest.approx(0.5)


def test_env_var_base_url(survey_server, fast, monkeypatch):
    monkeypatch.setenv("GALAXALIGN_ASTRO_HIPS2FITS_URL", survey_server.url)
    get_client("hips", **fast).get_cutout(COORD, size=16, bands="r")
    assert survey_server.requests[0].path == "/hips-image-services/hips2fits"
