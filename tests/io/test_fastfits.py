"""The plain-FITS fast path of read_cutout gives exactly the cutout astropy's path gives."""

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from galaxalign_astro.io import cutouts, fastfits
from tests.cutout_factory import galaxy_cube, wcs_header, write_cube, write_extensions


def _primary(path, data, **cards):
    header = wcs_header(data.shape[-1])
    for key, value in cards.items():
        if value is None:
            del header[key]
        else:
            header[key] = value
    fits.PrimaryHDU(data, header=header).writeto(path)


def _cube(path):
    write_cube(path, galaxy_cube(24))


def _band_i(path):
    write_cube(path, galaxy_cube(24), bands="zrg", band_keys="BANDi")


def _plane(path, dtype=np.float32, **cards):
    _primary(path, (galaxy_cube(24, bands=1)[0] * 1000).astype(dtype), **cards)


def _bitpix8(path):
    plane = galaxy_cube(24, bands=1)[0]
    _primary(path, (plane / plane.max() * 250).astype(np.uint8))


def _cube4d(path):
    _primary(path, galaxy_cube(24)[None], BANDS="grz")


def _cdelt(path, **extra):
    cards = {k: None for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")}
    cards.update({"CDELT1": -0.262 / 3600, "CDELT2": 0.262 / 3600, **extra})
    _plane(path, **cards)


def _long_header(path):
    header = wcs_header(24)
    header["BANDS"] = "grz"
    for i in range(80):
        header.add_history(f"step {i} of a long reduction log")
    fits.PrimaryHDU(galaxy_cube(24), header=header).writeto(path)


def _continue_card(path):
    header = wcs_header(24)
    header["BANDS"] = "grz"
    header["NOTES"] = "a long note " * 12
    fits.PrimaryHDU(galaxy_cube(24), header=header).writeto(path)


def _raw_header(path, extra_cards):
    """A header written card by card (values astropy itself would not write)."""
    _primary(path, galaxy_cube(24), BANDS="grz")
    with open(path, "rb") as fh:
        raw = bytearray(fh.read())
    end = raw.index(b"END" + b" " * 77)
    cards = b"".join(c.ljust(80).encode() for c in extra_cards)
    assert raw[end + 80 : end + 80 + len(cards)].strip() == b""  # room left in the block
    raw[end : end + len(cards)] = cards
    raw[end + len(cards) : end + len(cards) + 80] = b"END" + b" " * 77
    with open(path, "wb") as fh:
        fh.write(bytes(raw))


def _gzip(path):
    _cube(path.with_suffix(".raw"))
    with open(path.with_suffix(".raw"), "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)


# name -> (writer, file name, takes the fast path, keyword WCS)
LAYOUTS = {
    "legacy cube": (_cube, "a.fits", True, True),
    "BANDi cube": (_band_i, "a.fits", True, True),
    "float32 plane with BAND": (lambda p: _plane(p, BAND="r"), "a.fits", True, True),
    "float64 plane": (lambda p: _plane(p, np.float64), "a.fits", True, True),
    "int16 plane": (lambda p: _plane(p, np.int16), "a.fits", True, True),
    "int32 plane": (lambda p: _plane(p, np.int32), "a.fits", True, True),
    "uint8 plane": (_bitpix8, "a.fits", True, True),
    "4-D cube": (_cube4d, "a.fits", True, True),
    "CDELT only": (_cdelt, "a.fits", True, True),
    "CDELT with rotated PC": (
        lambda p: _cdelt(p, PC1_1=0.8, PC1_2=-0.6, PC2_1=0.6, PC2_2=0.8),
        "a.fits",
        True,
        True,
    ),
    "rotated CD": (
        lambda p: _plane(p, CD1_2=1e-5, CD2_1=1.2e-5, CD1_1=-6e-5),
        "a.fits",
        True,
        True,
    ),
    "off-centre CRPIX": (lambda p: _plane(p, CRPIX1=3.25, CRPIX2=30.0), "a.fits", True, True),
    "near the pole": (lambda p: _plane(p, CRVAL2=89.99, CRVAL1=359.9), "a.fits", True, True),
    "RADESYS and EQUINOX": (
        lambda p: _plane(p, RADESYS="FK5", EQUINOX=2000.0),
        "a.fits",
        True,
        True,
    ),
    "quoted band name": (lambda p: _plane(p, FILTER="g DECam 'SDSS'"), "a.fits", True, True),
    "long header": (_long_header, "a.fits", True, True),
    "D exponents and duplicates": (
        lambda p: _raw_header(p, ["CRVAL1  =  1.5D+02", "CRVAL1  = 151.0", "DATASUM = '0'"]),
        "a.fits",
        True,
        False,
    ),
    "D exponent": (lambda p: _raw_header(p, ["EXPTIME =  9.0D+01"]), "a.fits", True, True),
    "no WCS": (lambda p: write_cube(p, galaxy_cube(24), wcs=False), "a.fits", True, False),
    "SIN projection": (
        lambda p: _plane(p, CTYPE1="RA---SIN", CTYPE2="DEC--SIN"),
        "a.fits",
        True,
        False,
    ),
    "galactic axes": (
        lambda p: _plane(p, CTYPE1="GLON-TAN", CTYPE2="GLAT-TAN"),
        "a.fits",
        True,
        False,
    ),
    "TAN-SIP": (
        lambda p: _plane(
            p, CTYPE1="RA---TAN-SIP", CTYPE2="DEC--TAN-SIP", A_ORDER=2, B_ORDER=2, A_2_0=1e-6
        ),
        "a.fits",
        True,
        False,
    ),
    "CROTA2": (lambda p: _cdelt(p, CROTA2=30.0), "a.fits", True, False),
    "CUNIT arcsec": (
        lambda p: _cdelt(p, CUNIT1="arcsec", CUNIT2="arcsec", CDELT1=-0.262, CDELT2=0.262),
        "a.fits",
        True,
        False,
    ),
    "scaled integers": (
        lambda p: _plane(p, np.int16, BSCALE=0.5, BZERO=10.0, BLANK=-32768),
        "a.fits",
        False,
        False,
    ),
    "band extensions": (lambda p: write_extensions(p, galaxy_cube(24)), "a.fits", False, False),
    "cube plus extension": (
        lambda p: fits.HDUList(
            [fits.PrimaryHDU(galaxy_cube(24)), fits.ImageHDU(galaxy_cube(24)[0])]
        ).writeto(p),
        "a.fits",
        False,
        False,
    ),
    "CONTINUE card": (_continue_card, "a.fits", False, False),
    "unquoted string value": (
        lambda p: _raw_header(p, ["OBSERVER= Hubble"]),
        "a.fits",
        False,
        False,
    ),
    "gzip": (_gzip, "a.fits.gz", False, False),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_fast_path_gives_the_astropy_cutout(tmp_path, name):
    write, filename, fast, keyword_wcs = LAYOUTS[name]
    path = tmp_path / filename
    write(path)
    plain = None if filename.endswith(".gz") else fastfits.read_plain_fits(str(path))
    assert (plain is not None) == fast
    if plain is not None:
        assert (fastfits.plain_tan_wcs(plain) is not None) == keyword_wcs

    got = cutouts.read_cutout(path)
    want = cutouts.read_cutout(path, fast=False)
    assert got.data.dtype == want.data.dtype == np.float32
    assert np.array_equal(got.data, want.data, equal_nan=True)
    assert got.bands == want.bands
    assert got.kind == want.kind
    assert (got.wcs is None) == (want.wcs is None)
    assert got.centre_radec() == pytest.approx(want.centre_radec(), abs=1e-12, nan_ok=True)
    scale = want.pixel_scale_arcsec()
    assert got.pixel_scale_arcsec() == (None if scale is None else pytest.approx(scale, rel=1e-12))
    if got.wcs is not None:
        for x, y in [(0.0, 0.0), (23.0, 5.5), (-3.0, 40.0)]:
            np.testing.assert_allclose(
                got.wcs.pixel_to_world_values(x, y),
                want.wcs.pixel_to_world_values(x, y),
                rtol=0,
                atol=1e-12,
            )


def test_truncated_plain_file_is_left_to_astropy_and_named(tmp_path):
    path = tmp_path / "t.fits"
    _cube(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])
    assert fastfits.read_plain_fits(str(path)) is None
    with pytest.raises(cutouts.CutoutError, match=r"t\.fits"):
        cutouts.read_cutout(path)


def test_a_header_claiming_a_huge_image_reads_nothing_big(tmp_path):
    path = tmp_path / "h.fits"
    _cube(path)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"NAXIS3  =")
    raw[at : at + 80] = b"NAXIS3  =            100000000".ljust(80)
    path.write_bytes(bytes(raw))
    assert fastfits.read_plain_fits(str(path)) is None  # sizes disagree: no allocation
