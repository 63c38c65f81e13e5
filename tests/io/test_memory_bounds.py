"""Files that claim far more pixels than they hold are read by section or refused, never whole."""

import gzip
import shutil
import tracemalloc

import numpy as np
import pytest
from astropy.io import fits

from galaxalign_astro.errors import CutoutError
from galaxalign_astro.io.cutouts import read_cutout
from galaxalign_astro.preprocess import PreprocessConfig, prepare
from tests.cutout_factory import wcs_header

LIMIT = 2**20  # 1 MiB: the files below declare 16-48 MiB of float32 pixels


def _peak_mib(func):
    tracemalloc.start()
    try:
        result = func()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak / 2**20


def _error_and_peak(func, *args, **kwargs):
    """The CutoutError ``func`` raises, and the peak MiB traced while it ran."""

    def run():
        with pytest.raises(CutoutError) as error:
            func(*args, **kwargs)
        return error

    return _peak_mib(run)


def _gzip(path):
    gz = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()
    return gz


def _big_frame(path, side=2048, *, with_wcs=True, compressed=False, bands=1):
    """A mostly empty frame with a galaxy at its centre."""
    shape = (bands, side, side) if bands > 1 else (side, side)
    data = np.zeros(shape, dtype=np.int16 if compressed else np.float32)
    c = side // 2
    data[..., c - 5 : c + 5, c - 5 : c + 5] = 100
    header = wcs_header(side) if with_wcs else fits.Header()
    if bands > 1:
        header["BANDS"] = "grz"
    if compressed:
        hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header)])
    else:
        hdus = fits.HDUList([fits.PrimaryHDU(data, header=header)])
    hdus.writeto(path)
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _big_frame(p, 4096, compressed=True),  # tile-compressed survey frame
        lambda p: _big_frame(p, bands=3),  # plain cube (the fast path steps aside)
    ],
    ids=["tile-compressed frame", "plain cube"],
)
def test_large_image_is_read_by_its_field_of_view_section(tmp_path, make):
    path = make(tmp_path / "big.fits")
    read_cutout(path, fov_arcsec=67.072, max_bytes=LIMIT)  # imports and caches, once
    cutout, peak = _peak_mib(lambda: read_cutout(path, fov_arcsec=67.072, max_bytes=LIMIT))
    assert cutout.shape == (256, 256)  # 67.072" at 0.262"/px: the part classify keeps
    assert peak < 6, f"{peak:.1f} MiB traced to read a 256x256 section of 48-64 MiB"
    # the section's WCS is the frame's, shifted: its centre is the frame's centre
    ra, dec = cutout.centre_radec()
    assert ra == pytest.approx(150.0, abs=1e-4) and dec == pytest.approx(2.0, abs=1e-4)
    assert cutout.data.max() == 100  # the galaxy at the centre is in the section
    # and read whole under a limit it fits, preprocessing gives the same image
    whole = read_cutout(path, fov_arcsec=67.072, max_bytes=2**30)
    config = PreprocessConfig(size=32)
    np.testing.assert_allclose(prepare(cutout, config).image, prepare(whole, config).image)


@pytest.mark.parametrize("with_wcs", [False, True])
def test_large_gzip_or_wcs_less_image_is_refused_in_one_line(tmp_path, with_wcs):
    """No field of view to cut, or gzip (no section reads): refused, nothing decompressed."""
    path = _big_frame(tmp_path / "big.fits", with_wcs=with_wcs, bands=3)
    for target in [_gzip(path)] if with_wcs else [path]:
        error, peak = _error_and_peak(
            read_cutout, target, fov_arcsec=67.072 if with_wcs else None, max_bytes=LIMIT
        )
        message = str(error.value)
        assert target.name in message and "decode limit" in message and "\n" not in message
        assert "GALAXALIGN_ASTRO_MAX_DECODED_MB" in message
        assert peak < 8


def test_limit_comes_from_the_environment(tmp_path, monkeypatch):
    path = _big_frame(tmp_path / "f.fits", with_wcs=False, side=1024)  # 4 MiB of float32
    monkeypatch.setenv("GALAXALIGN_ASTRO_MAX_DECODED_MB", "2")
    with pytest.raises(CutoutError, match="decode limit of 2 MiB"):
        read_cutout(path)
    monkeypatch.setenv("GALAXALIGN_ASTRO_MAX_DECODED_MB", "8")
    assert read_cutout(path).shape == (1024, 1024)
    monkeypatch.setenv("GALAXALIGN_ASTRO_MAX_DECODED_MB", "lots")
    with pytest.raises(ValueError, match="positive number"):
        read_cutout(path)


def test_a_wcs_that_pads_the_field_to_a_huge_canvas_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXALIGN_ASTRO_MAX_DECODED_MB", "1")
    header = wcs_header(64, scale=0.001)  # 67" would be 67,000 pixels a side
    header["BANDS"] = "grz"
    data = np.random.default_rng(0).normal(0, 1, (3, 64, 64)).astype(np.float32)
    path = tmp_path / "tiny_pixels.fits"
    fits.PrimaryHDU(data, header=header).writeto(path)
    cutout = read_cutout(path)
    error, peak = _error_and_peak(prepare, cutout, PreprocessConfig(size=32))
    assert "tiny_pixels.fits" in str(error.value) and "is the WCS right" in str(error.value)
    assert peak < 8
