"""The common cutout layout: writing, reading, and checks of service answers."""

from __future__ import annotations

import bz2
import io
import signal
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from galaxalign_astro.errors import CutoutError
from galaxalign_astro.fetch import make_cube_hdu, read_cutout_cube
from galaxalign_astro.fetch.exceptions import InvalidResponseError, TruncatedResponseError
from galaxalign_astro.fetch.grid import tan_wcs
from galaxalign_astro.fetch.validate import parse_fits_bytes

from .fake_services import DATA, legacy_cube


def test_make_and_read_round_trip(tmp_path):
    wcs = tan_wcs(150.0, 2.0, size=20, pixscale=0.262)
    data = np.random.default_rng(1).normal(size=(3, 20, 20))
    hdu = make_cube_hdu(
        data,
        wcs,
        bands="grz",
        survey="sdss",
        layer="dr17",
        ra=150.0,
        dec=2.0,
        pixscale=0.262,
        bunit="nanomaggy",
        extra={"RUN": (1904, "run")},
    )
    path = tmp_path / "c.fits"
    hdu.writeto(path)
    cube = read_cutout_cube(path)
    assert cube.data.dtype == np.float32 and cube.data.shape == (3, 20, 20)
    np.testing.assert_allclose(cube.data, data.astype(np.float32))
    assert cube.bands == "grz"
    assert cube.header["RUN"] == 1904 and cube.header["SURVEY"] == "sdss"
    assert cube.pixscale == pytest.approx(0.262)
    assert "WCSAXES" not in cube.header
    with fits.open(path) as hdul:
        assert hdul.verify("exception") is None


def test_reads_a_legacy_survey_service_file(tmp_path):
    path = tmp_path / "ls.fits"
    path.write_bytes(legacy_cube(10.0, -5.0, size=32, pixscale=0.262, bands="griz"))
    cube = read_cutout_cube(path)
    assert cube.bands == "griz"
    assert cube.data.shape == (4, 32, 32)
    assert cube.wcs.wcs.crval == pytest.approx([10.0, -5.0])


def test_make_cube_rejects_band_mismatch():
    with pytest.raises(ValueError, match="bands=2"):
        make_cube_hdu(
            np.zeros((3, 4, 4)),
            tan_wcs(0, 0, size=4, pixscale=1),
            bands="gr",
            survey="x",
            layer="y",
            ra=0,
            dec=0,
            pixscale=1,
        )


def test_read_rejects_files_without_band_names_or_wcs(tmp_path):
    path = tmp_path / "bad.fits"
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(path)
    with pytest.raises(CutoutError, match="names bands"):
        read_cutout_cube(path)
    header = fits.Header({"BANDS": "gr"})
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32), header=header).writeto(path, overwrite=True)
    with pytest.raises(CutoutError, match="no celestial WCS"):
        read_cutout_cube(path)
    path.write_text("not fits")
    with pytest.raises(CutoutError, match="cannot read cutout file"):
        read_cutout_cube(path)


def test_parse_fits_bytes_detects_html_truncation_and_compression():
    body = legacy_cube(1.0, 1.0, size=16, pixscale=0.262, bands="g")
    assert parse_fits_bytes(body, source="u")[0].data.shape == (1, 16, 16)
    assert parse_fits_bytes(bz2.compress(body), source="u")[0].data.shape == (1, 16, 16)
    with pytest.raises(TruncatedResponseError, match="incomplete FITS"):
        parse_fits_bytes(body[:3000], source="u")
    with pytest.raises(TruncatedResponseError, match="bzip2"):
        parse_fits_bytes(bz2.compress(body)[:200], source="u")
    page = (DATA / "legacysurvey_error.html").read_bytes()
    with pytest.raises(InvalidResponseError, match="Legacy Survey viewer: server error") as info:
        parse_fits_bytes(page, source="u")
    assert not isinstance(info.value, TruncatedResponseError)


def test_parse_fits_bytes_on_header_only_damage():
    buf = io.BytesIO()
    fits.PrimaryHDU(np.ones((4, 4), np.float32)).writeto(buf)
    damaged = buf.getvalue().replace(
        b"NAXIS1  =                    4", b"NAXIS1  =                 4000"
    )
    with pytest.raises(TruncatedResponseError):
        parse_fits_bytes(damaged, source="u")


def test_atomic_write_honours_umask(tmp_path):
    import os
    import stat

    from galaxalign_astro.fetch.storage import atomic_write_bytes

    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(b"x" * 10, tmp_path / "sub" / "f.bin")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"x" * 10
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_writer_leaves_no_partial_file(tmp_path):
    target = tmp_path / "cutout.fits"
    child = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from galaxalign_astro.fetch.storage import _atomic_target\n"
        "with _atomic_target(Path(sys.argv[1])) as handle:\n"
        "    handle.write(b'SIMPLE  = half written')\n"
        "    handle.flush()\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".cutout.fits.")
    assert list(tmp_path.glob("*.fits")) == []


def test_parse_fits_bytes_leaves_the_process_warning_filters_alone(monkeypatch):
    """Fetches run in Dask worker threads beside other work: the filters are process-wide,
    so a parse that turned warnings into errors made other threads' warnings errors too."""
    import warnings

    seen = []
    real = fits.HDUList.fromstring

    def spy(data):
        seen.append(list(warnings.filters))
        return real(data)

    monkeypatch.setattr(fits.HDUList, "fromstring", spy)
    before = list(warnings.filters)
    body = legacy_cube(1.0, 1.0, size=16, pixscale=0.262, bands="g")
    parse_fits_bytes(body, source="u")
    assert seen == [before]
    assert list(warnings.filters) == before
