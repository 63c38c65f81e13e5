"""Batch fetching: fetch_cutouts tables, the iter_fetch stream, catalogue column handling."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, Table

from galaxalign_astro.fetch import (
    fetch_cutouts,
    find_coord_columns,
    get_client,
    iter_fetch,
    read_cutout_cube,
    read_targets,
)


def catalogue():
    # row 2 is outside the fake footprint (Dec > 80)
    return Table(
        {
            "name": ["NGC 1", "NGC/2", "far north", "NGC 4"],
            "RAJ2000": [10.0, 10.5, 11.0, 11.5] * u.deg,
            "DEJ2000": [1.0, 1.5, 85.0, 2.5] * u.deg,
        }
    )


def test_fetch_cutouts_reports_every_row_in_order(survey_server, fast, tmp_path):
    out = tmp_path / "cutouts"
    table = fetch_cutouts(
        catalogue(),
        survey="legacysurvey",
        out_dir=out,
        id_col="name",
        size=16,
        base_url=survey_server.url,
        progress=False,
        max_workers=3,
        **fast,
    )
    assert table.colnames == ["id", "ra", "dec", "path", "status", "source", "error"]
    assert list(table["id"]) == ["NGC_1", "NGC_2", "far_north", "NGC_4"]
    assert list(table["status"]) == ["ok", "ok", "error", "ok"]
    assert table["ra"].unit == u.deg
    assert "OutsideFootprintError" in table["error"][2]
    assert table["path"][2] == ""
    assert sorted(p.name for p in out.iterdir()) == ["NGC_1.fits", "NGC_2.fits", "NGC_4.fits"]
    cube = read_cutout_cube(table["path"][3])
    assert cube.header["OBJRA"] == pytest.approx(11.5)
    assert table.meta["survey"] == "legacysurvey"
    assert (table.meta["size"], table.meta["bands"], table.meta["n_error"]) == (16, "grz", 1)


def test_existing_files_are_kept_unless_overwrite(survey_server, fast, tmp_path):
    cat = catalogue()[:2]
    options = {"base_url": survey_server.url, "progress": False, "size": 16, **fast}
    fetch_cutouts(cat, out_dir=tmp_path, cache=False, **options)
    again = fetch_cutouts(cat, out_dir=tmp_path, cache=False, **options)
    assert list(again["source"]) == ["exists", "exists"]
    assert survey_server.count() == 2
    forced = fetch_cutouts(cat, out_dir=tmp_path, cache=False, overwrite=True, **options)
    assert list(forced["source"]) == ["network", "network"]
    assert survey_server.count() == 4


def test_cache_serves_a_second_output_directory(survey_server, fast, tmp_path):
    cat = catalogue()[:2]
    options = {"base_url": survey_server.url, "progress": False, "size": 16, **fast}
    fetch_cutouts(cat, out_dir=tmp_path / "a", **options)
    second = fetch_cutouts(cat, out_dir=tmp_path / "b", **options)
    assert list(second["source"]) == ["cache", "cache"]
    assert survey_server.count() == 2


def test_iter_fetch_streams_in_memory_cutouts(survey_server, fast):
    coords = SkyCoord([20.0, 20.1, 20.2] * u.deg, [5.0, 5.1, 5.2] * u.deg)
    results = list(iter_fetch(coords, size=12, bands="r", base_url=survey_server.url, **fast))
    assert sorted(r.index for r in results) == [0, 1, 2]
    for result in results:
        assert result.ok and result.path is None
        assert result.hdul[0].data.shape == (1, 12, 12)
        assert result.hdul[0].header["OBJRA"] == pytest.approx(coords[result.index].ra.deg)
    assert {r.id for r in results} == {"000000", "000001", "000002"}


def test_iter_fetch_validates_arguments_before_starting(survey_server, fast):
    coords = SkyCoord([20.0] * u.deg, [5.0] * u.deg)
    with pytest.raises(ValueError, match="exceeds the legacysurvey limit"):
        iter_fetch(coords, size=1000, base_url=survey_server.url, **fast)
    with pytest.raises(ValueError, match="unknown survey"):
        iter_fetch(coords, survey="euclid")
    assert survey_server.count() == 0


def test_iter_fetch_stops_early_when_closed(survey_server, fast):
    survey_server.delay = 0.05
    coords = SkyCoord(np.linspace(30, 31, 40) * u.deg, np.zeros(40) * u.deg)
    stream = iter_fetch(
        coords, size=8, bands="r", max_workers=2, base_url=survey_server.url, **fast
    )
    first = next(stream)
    stream.close()
    assert first.ok
    # only the bounded window of work was ever started
    assert survey_server.count() <= 6


def test_client_and_client_options_do_not_mix(fast):
    client = get_client("legacysurvey", **fast)
    with pytest.raises(ValueError, match="give them to get_client"):
        iter_fetch(SkyCoord(1 * u.deg, 1 * u.deg), client=client, layer="ls-dr9")


def test_failed_rows_do_not_raise(survey_server, fast, tmp_path):
    survey_server.inject("legacy", *[("status", 500)] * 3)
    cat = Table({"ra": [40.0, 41.0], "dec": MaskedColumn([1.0, 2.0], mask=[False, True])})
    table = fetch_cutouts(
        cat,
        out_dir=tmp_path,
        size=8,
        base_url=survey_server.url,
        progress=False,
        max_workers=1,
        **fast,
    )
    assert list(table["status"]) == ["error", "error"]
    assert "HTTP 500" in table["error"][0]
    assert "invalid position" in table["error"][1]


def test_rows_recover_from_html_error_pages(survey_server, fast, tmp_path):
    page = b"<html><title>Internal error, please retry</title></html>"
    survey_server.inject("legacy", *[("html", page)] * 2)
    cat = Table({"ra": [40.0], "dec": [1.0]})
    table = fetch_cutouts(
        cat, out_dir=tmp_path, size=8, base_url=survey_server.url, progress=False, **fast
    )
    assert list(table["status"]) == ["ok"]
    assert survey_server.count("legacy") == 3


def test_rows_failing_on_html_error_pages_name_the_cause(survey_server, fast, tmp_path):
    page = b"<html><title>Internal error, please retry</title></html>"
    survey_server.inject("legacy", *[("html", page)] * 3)
    cat = Table({"ra": [40.0], "dec": [1.0]})
    table = fetch_cutouts(
        cat, out_dir=tmp_path, size=8, base_url=survey_server.url, progress=False, **fast
    )
    assert list(table["status"]) == ["error"]
    assert "after 3 attempt(s)" in table["error"][0]
    assert "Internal error, please retry" in table["error"][0]
    assert survey_server.count("legacy") == 3


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["RA", "DEC"], ("RA", "DEC")),
        (["ra_deg", "dec_deg"], ("ra_deg", "dec_deg")),
        (["_RAJ2000", "_DEJ2000"], ("_RAJ2000", "_DEJ2000")),
        (["RA_ICRS", "DE_ICRS"], ("RA_ICRS", "DE_ICRS")),
        (["TARGET_RA", "TARGET_DEC"], ("TARGET_RA", "TARGET_DEC")),
    ],
)
def test_coordinate_columns_are_found(names, expected):
    table = Table([[1.0], [2.0], [3.0]], names=["x", *names])
    assert find_coord_columns(table) == expected


def test_missing_coordinate_column_names_the_option():
    with pytest.raises(ValueError, match=r"no right ascension column.*ra_col"):
        find_coord_columns(Table({"alpha": [1.0], "dec": [2.0]}))
    with pytest.raises(ValueError, match=r"'RA_X'.*not in the table"):
        find_coord_columns(Table({"ra": [1.0], "dec": [2.0]}), ra_col="RA_X")


def test_read_targets_units_and_sexagesimal():
    table = Table({"ra": [1.0] * u.hourangle, "dec": [2.0] * u.deg})
    _, ra, dec = read_targets(table)
    assert ra[0] == pytest.approx(15.0) and dec[0] == pytest.approx(2.0)
    table = Table({"RA": ["01:00:00"], "DEC": ["-02:30:00"]})
    _, ra, dec = read_targets(table)
    assert ra[0] == pytest.approx(15.0) and dec[0] == pytest.approx(-2.5)


def test_duplicate_ids_are_refused():
    table = Table({"id": ["a/b", "a_b"], "ra": [1.0, 2.0], "dec": [1.0, 2.0]})
    with pytest.raises(ValueError, match="duplicate"):
        read_targets(table, id_col="id")
