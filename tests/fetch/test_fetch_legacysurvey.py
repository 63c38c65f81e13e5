"""Legacy Surveys client against the local fake service: requests, retries, cache, checks."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from galaxalign_astro.errors import CutoutError, OutputExistsError
from galaxalign_astro.fetch import (
    LegacySurveyClient,
    OutsideFootprintError,
    ServiceError,
    get_client,
    read_cutout_cube,
)

COORD = SkyCoord(150.1163213 * u.deg, 2.2058733 * u.deg)


def client_for(server, fast, **options):
    return get_client("legacysurvey", **{"base_url": server.url, **fast, **options})


def test_dry_run_returns_request_without_network(survey_server, fast):
    client = client_for(survey_server, fast)
    plan = client.get_cutout(
        COORD, size=64, pixscale=0.262 * u.arcsec, bands="grz", get_query_payload=True
    )
    assert survey_server.count() == 0
    assert len(plan) == 1
    spec = plan[0]
    assert spec["method"] == "GET"
    assert spec["url"] == survey_server.url + "/viewer/fits-cutout"
    assert spec["params"] == {
        "ra": "150.1163213",
        "dec": "2.2058733",
        "layer": "ls-dr10",
        "pixscale": "0.262",
        "bands": "grz",
        "size": "64",
    }
    query = {k: v[0] for k, v in parse_qs(urlsplit(spec["full_url"]).query).items()}
    assert query == spec["params"]


def test_default_service_url_and_layer():
    client = LegacySurveyClient()
    plan = client.get_cutout(COORD, get_query_payload=True)
    assert plan[0]["url"] == "https://www.legacysurvey.org/viewer/fits-cutout"
    assert plan[0]["params"]["layer"] == "ls-dr10"
    assert plan[0]["params"]["size"] == "256"
    assert plan[0]["params"]["bands"] == "grz"


def test_get_cutout_common_layout(survey_server, fast):
    client = client_for(survey_server, fast, layer="ls-dr9")
    hdul = client.get_cutout(COORD, size=48, pixscale=0.5 * u.arcsec / u.pix, bands="gz")
    hdu = hdul[0]
    assert hdu.data.shape == (2, 48, 48)
    assert hdu.data.dtype == np.float32
    assert hdu.header["BANDS"] == "gz"
    assert (hdu.header["BAND0"], hdu.header["BAND1"]) == ("g", "z")
    assert hdu.header["LAYER"] == "ls-dr9"
    assert hdu.header["BUNIT"] == "nanomaggy"
    cube = read_cutout_cube(hdul)
    assert cube.pixscale == pytest.approx(0.5)
    assert [c.endswith("TAN") for c in cube.wcs.wcs.ctype] == [True, True]
    x, y = cube.wcs.world_to_pixel(COORD)
    assert (float(x), float(y)) == pytest.approx((23.5, 23.5), abs=1e-6)
    assert np.unravel_index(np.argmax(cube.data[0]), (48, 48)) in {
        (23, 23),
        (23, 24),
        (24, 23),
        (24, 24),
    }
    assert survey_server.requests[0].params["layer"] == "ls-dr9"


def test_env_var_base_url_with_path_prefix(survey_server, fast, monkeypatch):
    monkeypatch.setenv("GALAXALIGN_ASTRO_LEGACYSURVEY_URL", survey_server.url + "/")
    client = get_client("legacysurvey", **fast)
    assert client.base_url == survey_server.url
    client.get_cutout(COORD, size=16)
    assert survey_server.requests[0].path == "/viewer/fits-cutout"


def test_explicit_base_url_beats_env_var(survey_server, fast, monkeypatch):
    monkeypatch.setenv("GALAXALIGN_ASTRO_LEGACYSURVEY_URL", "http://127.0.0.1:9/nothing")
    client = client_for(survey_server, fast)
    client.get_cutout(COORD, size=16)
    assert survey_server.count("legacy") == 1


def test_bad_base_url_is_rejected():
    with pytest.raises(ValueError, match="must start with http"):
        get_client("legacysurvey", base_url="www.legacysurvey.org")


def test_retry_after_500_then_success(survey_server, fast):
    survey_server.inject("legacy", ("status", 500))
    client = client_for(survey_server, fast)
    hdul = client.get_cutout(COORD, size=16)
    assert hdul[0].data.shape == (3, 16, 16)
    assert survey_server.count("legacy") == 2
    assert client.requests_sent == 2


def test_persistent_503_gives_up_after_retries(survey_server, fast):
    survey_server.inject("legacy", *[("status", 503)] * 5)
    client = client_for(survey_server, fast, max_retries=3)
    with pytest.raises(ServiceError, match=r"failed after 4 attempt\(s\).*HTTP 503"):
        client.get_cutout(COORD, size=16)
    assert survey_server.count("legacy") == 4


def test_client_error_is_not_retried(survey_server, fast):
    survey_server.inject("legacy", ("status", 404, b"<html><title>No such layer</title></html>"))
    client = client_for(survey_server, fast)
    with pytest.raises(ServiceError, match=r"HTTP 404.*No such layer") as info:
        client.get_cutout(COORD, size=16)
    assert info.value.status == 404
    assert survey_server.count("legacy") == 1


def test_429_retry_after_is_honoured(survey_server, fast):
    survey_server.inject("legacy", ("retry_after", 0.4))
    client = client_for(survey_server, fast)
    start = time.monotonic()
    client.get_cutout(COORD, size=16)
    elapsed = time.monotonic() - start
    assert survey_server.count("legacy") == 2
    # the back-off alone would be 0.01 s
    assert elapsed >= 0.4


def test_429_retry_after_too_long_fails_at_once(survey_server, fast):
    survey_server.inject("legacy", ("retry_after", 3600))
    client = client_for(survey_server, fast, max_retry_after=60)
    with pytest.raises(ServiceError, match="Retry-After"):
        client.get_cutout(COORD, size=16)
    assert survey_server.count("legacy") == 1


def test_timeout_is_retried(survey_server, fast):
    survey_server.inject("legacy", ("slow", 0.8))
    client = client_for(survey_server, fast, timeout=0.2)
    hdul = client.get_cutout(COORD, size=16)
    assert hdul[0].data.shape == (3, 16, 16)
    assert survey_server.count("legacy") == 2


def test_timeouts_exhaust_retries(survey_server, fast):
    survey_server.inject("legacy", *[("slow", 0.6)] * 2)
    client = client_for(survey_server, fast, timeout=0.2, max_retries=1)
    with pytest.raises(ServiceError, match="timed out"):
        client.get_cutout(COORD, size=16)
    assert survey_server.count("legacy") == 2


@pytest.mark.parametrize("fault", ["truncated", "truncated_nolength"])
def test_truncated_body_is_retried(survey_server, fast, fault):
    survey_server.inject("legacy", fault)
    client = client_for(survey_server, fast)
    hdul = client.get_cutout(COORD, size=32)
    assert hdul[0].data.shape == (3, 32, 32)
    assert survey_server.count("legacy") == 2


@pytest.mark.parametrize("fault", ["truncated", "truncated_nolength"])
def test_truncated_bodies_leave_no_partial_file(survey_server, fast, tmp_path, fault):
    survey_server.inject("legacy", *[fault] * 3)
    client = client_for(survey_server, fast)
    out = tmp_path / "out" / "galaxy.fits"
    with pytest.raises(ServiceError, match="failed after 3 attempt"):
        client.fetch_to_file(COORD, out, size=32)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    cache = fast["cache_dir"]
    assert not cache.exists() or list(cache.rglob("*")) == []


OVERLOADED = b"<html><head><title>Internal error, please retry</title></head><body></body></html>"


def test_html_page_with_status_200_is_retried(survey_server, fast):
    # the real viewer answers 200 with an HTML page when it is overloaded
    survey_server.inject("legacy", ("html", OVERLOADED), "html")
    client = client_for(survey_server, fast)
    hdul = client.get_cutout(COORD, size=16)
    assert hdul[0].data.shape == (3, 16, 16)
    assert survey_server.count("legacy") == 3


def test_html_pages_exhaust_retries_and_name_the_cause(survey_server, fast):
    survey_server.inject("legacy", *[("html", OVERLOADED)] * 5)
    client = client_for(survey_server, fast, max_retries=3)
    with pytest.raises(
        ServiceError,
        match=r"failed after 4 attempt\(s\).*no FITS file.*Internal error, please retry",
    ):
        client.get_cutout(COORD, size=16)
    assert survey_server.count("legacy") == 4


def test_all_zero_cube_is_outside_footprint(survey_server, fast):
    survey_server.inject("legacy", "zeros")
    client = client_for(survey_server, fast)
    with pytest.raises(OutsideFootprintError, match="outside the survey footprint") as info:
        client.get_cutout(COORD, size=16)
    # callers that handle bad cutouts generally catch CutoutError
    assert isinstance(info.value, CutoutError)
    assert "RA=150.116321" in str(info.value)


def test_second_fetch_comes_from_cache(survey_server, fast):
    client = client_for(survey_server, fast)
    first = client.get_cutout(COORD, size=24)
    again = client_for(survey_server, fast).get_cutout(COORD, size=24)
    assert survey_server.count("legacy") == 1
    np.testing.assert_array_equal(first[0].data, again[0].data)


def test_cache_can_be_disabled(survey_server, fast):
    client = client_for(survey_server, fast, cache=False)
    client.get_cutout(COORD, size=24)
    client.get_cutout(COORD, size=24)
    assert survey_server.count("legacy") == 2
    assert not fast["cache_dir"].exists()


@pytest.mark.parametrize(
    ("client_change", "request_change"),
    [
        ({}, {"size": 25}),
        ({}, {"pixscale": 0.3}),
        ({}, {"bands": "gr"}),
        ({}, {"coord": SkyCoord(150.1163214 * u.deg, 2.2058733 * u.deg)}),
        ({}, {"coord": SkyCoord(150.1163213 * u.deg, 2.2058734 * u.deg)}),
        ({"layer": "ls-dr9"}, {}),
        ({"base_url": "http://127.0.0.1:1/other"}, {}),
    ],
)
def test_cache_key_includes_every_parameter(survey_server, fast, client_change, request_change):
    base = {"coord": COORD, "size": 24, "pixscale": 0.262, "bands": "grz"}
    client = client_for(survey_server, fast)
    changed_client = client_for(survey_server, fast, **client_change)
    changed = {**base, **request_change}
    key = client.cache_key(client.make_request(base.pop("coord"), **base))
    other = changed_client.cache_key(changed_client.make_request(changed.pop("coord"), **changed))
    assert key != other


def test_changed_parameter_fetches_again(survey_server, fast):
    client = client_for(survey_server, fast)
    client.get_cutout(COORD, size=24)
    client.get_cutout(COORD, size=24, bands="gr")
    client.get_cutout(COORD, size=24)
    assert survey_server.count("legacy") == 2
    assert client.cache_hits == 1


def test_size_above_service_limit_is_refused_before_sending(survey_server, fast):
    client = client_for(survey_server, fast)
    with pytest.raises(ValueError, match="exceeds the legacysurvey limit of 512"):
        client.get_cutout(COORD, size=513)
    assert survey_server.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bands": "grzy"}, "not available in legacysurvey ls-dr10"),
        ({"bands": "gg"}, "distinct band letters"),
        ({"size": 0}, "positive whole number"),
        ({"pixscale": -1}, "positive angle"),
        ({"pixscale": 3 * u.m}, "must be an angle"),
    ],
)
def test_bad_arguments(fast, kwargs, match):
    client = get_client("legacysurvey", **fast)
    with pytest.raises(ValueError, match=match):
        client.get_cutout(COORD, get_query_payload=True, **kwargs)


def test_coord_must_be_scalar_skycoord(fast):
    client = get_client("legacysurvey", **fast)
    with pytest.raises(TypeError, match="SkyCoord"):
        client.get_cutout((150.0, 2.0))
    with pytest.raises(ValueError, match="single position"):
        client.get_cutout(SkyCoord([1, 2] * u.deg, [3, 4] * u.deg))


def test_fetch_to_file_writes_and_refuses_to_overwrite(survey_server, fast, tmp_path):
    client = client_for(survey_server, fast)
    out = tmp_path / "cutouts" / "g1.fits"
    assert client.fetch_to_file(COORD, out, size=20) == out
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == (3, 20, 20)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        client.fetch_to_file(COORD, out, size=20)
    client.fetch_to_file(COORD, out, size=22, overwrite=True)
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == (3, 22, 22)
    assert [p.name for p in out.parent.iterdir()] == ["g1.fits"]


def test_interrupted_write_leaves_old_file_and_no_temp(survey_server, fast, tmp_path, monkeypatch):
    client = client_for(survey_server, fast)
    client.get_cutout(COORD, size=20)  # served from the cache below: no server write is patched
    out = tmp_path / "g1.fits"
    out.write_bytes(b"previous")

    def explode(self, fileobj, *args, **kwargs):
        fileobj.write(b"SIMPLE  =  half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(fits.HDUList, "writeto", explode)
    with pytest.raises(KeyboardInterrupt):
        client.fetch_to_file(COORD, out, size=20, overwrite=True)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "g1.fits"]


def test_clear_cache(survey_server, fast):
    client = client_for(survey_server, fast)
    client.get_cutout(COORD, size=16)
    assert len(list(fast["cache_dir"].glob("legacysurvey-*.fits"))) == 1
    client.clear_cache()
    assert list(fast["cache_dir"].glob("legacysurvey-*.fits")) == []
    client.get_cutout(COORD, size=16)
    assert survey_server.count("legacy") == 2


def test_parallel_requests_are_bounded(survey_server, fast):
    from concurrent.futures import ThreadPoolExecutor

    survey_server.delay = 0.1
    client = client_for(survey_server, fast, max_workers=2, cache=False)
    coords = [SkyCoord((150 + i * 0.01) * u.deg, 2 * u.deg) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda c: client.get_cutout(c, size=8), coords))
    assert survey_server.count("legacy") == 6
    assert survey_server.max_active == 2


def test_rate_limit_spaces_requests(survey_server, fast):
    client = client_for(survey_server, fast, rate_limit=20, cache=False)
    start = time.monotonic()
    for i in range(5):
        client.get_cutout(SkyCoord((150 + i * 0.01) * u.deg, 2 * u.deg), size=8)
    assert time.monotonic() - start >= 4 / 20
