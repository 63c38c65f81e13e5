import gzip
import shutil
import struct
import zlib

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from galaxalign_astro.errors import CutoutError
from galaxalign_astro.io import expand_inputs, normalise_band, read_cutout
from tests.cutout_factory import galaxy_cube, wcs_header, write_cube, write_extensions


def test_legacy_cube_bands_and_wcs(tmp_path):
    cube = galaxy_cube(32)
    c = read_cutout(write_cube(tmp_path / "a.fits", cube, ra=10.0, dec=-5.0))
    assert c.bands == ("g", "r", "z")
    assert c.kind == "flux"
    np.testing.assert_allclose(c.data, cube)
    ra, dec = c.centre_radec()
    assert ra == pytest.approx(10.0) and dec == pytest.approx(-5.0)
    assert c.pixel_scale_arcsec() == pytest.approx(0.262)


def test_band_i_keywords(tmp_path):
    c = read_cutout(
        write_cube(tmp_path / "a.fits", galaxy_cube(16), bands="zrg", band_keys="BANDi")
    )
    assert c.bands == ("z", "r", "g")


@pytest.mark.parametrize("keyword", ["FILTER", "BAND"])
def test_one_band_per_extension(tmp_path, keyword):
    cube = galaxy_cube(16)
    c = read_cutout(write_extensions(tmp_path / "e.fits", cube, bands="gri", keyword=keyword))
    assert c.bands == ("g", "r", "i")
    np.testing.assert_allclose(c.data[2], cube[2])


def test_2d_in_first_extension_and_gzip(tmp_path):
    plane = galaxy_cube(16, bands=1)[0]
    path = tmp_path / "x.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(plane, header=wcs_header(16))]).writeto(path)
    gz = tmp_path / "x.fits.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    c = read_cutout(gz)
    assert c.data.shape == (1, 16, 16)
    np.testing.assert_allclose(c.data[0], plane)


def test_tile_compressed(tmp_path):
    cube = galaxy_cube(32, bands=1)[0]
    path = tmp_path / "c.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cube, compression_type="RICE_1")]).writeto(
        path
    )
    c = read_cutout(path)
    assert c.data.shape == (1, 32, 32)
    assert np.abs(c.data[0] - cube).max() < 0.01 * np.abs(cube).max()


def test_scaled_integers_and_blank(tmp_path):
    raw = np.arange(64, dtype=np.int16).reshape(8, 8)
    raw[0, 0] = -32768
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 10.0, -32768
    path = tmp_path / "i.fits"
    hdu.writeto(path)
    c = read_cutout(path)
    assert np.isnan(c.data[0, 0, 0])
    assert c.data[0, 0, 1] == pytest.approx(10.5)


def test_png_is_rgb(tmp_path):
    rgb = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    c = read_cutout(tmp_path / "a.png")
    assert c.kind == "rgb" and c.data.shape == (3, 20, 30)
    np.testing.assert_allclose(c.data[0], rgb[..., 0] / 255.0, atol=1e-6)


def _ramp(dtype, top):
    """A (16, 16) ramp from 0 to ``top`` of ``dtype``."""
    return (np.linspace(0.0, 1.0, 256).reshape(16, 16) * top).astype(dtype)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_is_scaled_by_its_depth_not_clipped(tmp_path, suffix):
    grey = _ramp(np.uint16, 65535)
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(grey).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"
    c = read_cutout(path)
    assert c.kind == "rgb" and c.data.shape == (3, 16, 16)
    for plane in c.data:
        np.testing.assert_allclose(plane, grey / 65535.0, atol=1e-6)
    assert np.mean(c.data == 1.0) < 0.01


def test_32_bit_integer_tiff_is_scaled_by_its_depth(tmp_path):
    grey = _ramp(np.int32, 2**31 - 1)
    path = tmp_path / "i32.tif"
    Image.fromarray(grey).save(path)
    with Image.open(path) as img:
        assert img.mode == "I"
    c = read_cutout(path)
    np.testing.assert_allclose(c.data[0], grey / (2.0**32 - 1), atol=1e-6)


def test_float_tiff_in_unit_range_is_kept_and_other_ranges_mapped(tmp_path):
    unit = _ramp(np.float32, 1.0)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    np.testing.assert_allclose(read_cutout(tmp_path / "unit.tif").data[1], unit, atol=1e-6)
    Image.fromarray(unit * 4000.0 - 1000.0).save(tmp_path / "wide.tif")
    np.testing.assert_allclose(read_cutout(tmp_path / "wide.tif").data[1], unit, atol=1e-5)


def _write_png16(path, samples):
    """Write a 16-bit PNG (grey, grey+alpha, RGB or RGBA), which Pillow cannot write."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width, channels = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_16_bit_rgb_png_is_not_clipped(tmp_path):
    rgb = np.stack([_ramp(np.uint16, 65535), _ramp(np.uint16, 30000), _ramp(np.uint16, 600)], -1)
    c = read_cutout(_write_png16(tmp_path / "rgb16.png", rgb))
    assert c.data.shape == (3, 16, 16)
    # Pillow keeps the high byte of each 16-bit sample: 8-bit precision, full range
    np.testing.assert_allclose(c.data, np.moveaxis(rgb, -1, 0) / 65535.0, atol=1 / 255)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"SIMPLE  =                    T" + b" " * 50, "not a readable FITS")],
)
def test_bad_files_one_line_error(tmp_path, content, reason):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(CutoutError) as err:
        read_cutout(path)
    assert str(path) in str(err.value) and reason in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_fits(tmp_path):
    path = write_cube(tmp_path / "t.fits", galaxy_cube(64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CutoutError, match=r"t\.fits"):
        read_cutout(path)


def test_table_only_fits(tmp_path):
    path = tmp_path / "tab.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(3))]),
        ]
    ).writeto(path)
    with pytest.raises(CutoutError, match="no image HDU"):
        read_cutout(path)


def test_wrong_shape(tmp_path):
    path = tmp_path / "w.fits"
    fits.PrimaryHDU(np.zeros((2, 3, 4, 5), dtype=np.float32)).writeto(path)
    with pytest.raises(CutoutError, match="shape"):
        read_cutout(path)


@pytest.mark.parametrize("side", [1, 2, 7])
def test_tiny_images_are_refused(tmp_path, side):
    fits.PrimaryHDU(galaxy_cube(side)).writeto(tmp_path / "tiny.fits")
    rgb = (np.random.default_rng(0).random((side, side, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "tiny.png")
    for name in ("tiny.fits", "tiny.png"):
        with pytest.raises(CutoutError) as err:
            read_cutout(tmp_path / name)
        assert str(err.value) == (
            f"{tmp_path / name}: image is {side}x{side} pixels; at least 8x8 needed"
        )


def test_constant_images_are_refused(tmp_path):
    fits.PrimaryHDU(np.full((3, 16, 16), 7.5, np.float32)).writeto(tmp_path / "flat.fits")
    with pytest.raises(CutoutError, match=r"flat\.fits: constant image: no signal.*7\.5"):
        read_cutout(tmp_path / "flat.fits")
    # one colour everywhere, blank (NaN) pixels aside, is no signal either
    flat = np.full((16, 16, 3), (200, 40, 10), np.uint8)
    Image.fromarray(flat).save(tmp_path / "flat.png")
    with pytest.raises(CutoutError, match=r"flat\.png: constant image: no signal"):
        read_cutout(tmp_path / "flat.png")
    blanks = np.full((16, 16), 3.0, np.float32)
    blanks[:4] = np.nan
    fits.PrimaryHDU(blanks).writeto(tmp_path / "blanks.fits")
    with pytest.raises(CutoutError, match="constant image"):
        read_cutout(tmp_path / "blanks.fits")


def test_one_constant_band_is_not_a_constant_image(tmp_path):
    cube = galaxy_cube(16)
    cube[1] = 0.0
    path = write_cube(tmp_path / "c.fits", cube)
    np.testing.assert_allclose(read_cutout(path).data, cube)


def test_missing_file():
    with pytest.raises(CutoutError, match="no such file"):
        read_cutout("/nonexistent/x.fits")


def test_normalise_band():
    assert normalise_band("g DECam SDSS c0001 4720.0 1520.0") == "g"
    assert normalise_band("SDSS_r") == "r"
    assert normalise_band("Z") == "z"
    assert normalise_band("") is None


def test_expand_inputs(tmp_path):
    for name in ("b.fits", "a.fits.gz", "c.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_inputs([tmp_path]) == [
        str(tmp_path / n) for n in ("a.fits.gz", "b.fits", "c.png")
    ]
    assert expand_inputs([str(tmp_path / "*.fits")]) == [str(tmp_path / "b.fits")]
    assert expand_inputs(["missing.fits"]) == ["missing.fits"]


def _tree(top):
    """top/a.fits, top/sub/b.fits, top/sub/deeper/c.png, top/.hidden/d.fits."""
    for name in ("a.fits", "sub/b.fits", "sub/deeper/c.png", ".hidden/d.fits"):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(b"x")
    return [str(top / n) for n in ("a.fits", "sub/b.fits", "sub/deeper/c.png")]


def test_double_star_glob_matches_every_level(tmp_path):
    a, b, _ = _tree(tmp_path)
    assert expand_inputs([str(tmp_path / "**" / "*.fits")]) == [a, b]


def test_glob_matches_no_folders(tmp_path):
    a, _, _ = _tree(tmp_path)
    assert expand_inputs([str(tmp_path / "*")]) == [a]


def test_recursive_takes_the_sub_folders(tmp_path):
    files = _tree(tmp_path)
    assert expand_inputs([tmp_path]) == files[:1]
    assert expand_inputs([tmp_path], recursive=True) == files


def test_recursive_ends_on_symlink_loops(tmp_path):
    files = _tree(tmp_path)
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert expand_inputs([tmp_path], recursive=True) == files


def test_folder_with_only_sub_folders_suggests_recursive(tmp_path):
    _tree(tmp_path / "survey")
    (tmp_path / "survey" / "a.fits").unlink()
    with pytest.raises(
        ValueError,
        match=r"survey: no cutout files at the top level, only "
        r"sub-folders \(sub\); pass --recursive",
    ):
        expand_inputs([tmp_path / "survey"])
    assert len(expand_inputs([tmp_path / "survey"], recursive=True)) == 2


def test_dangling_symlinks_are_failed_inputs(tmp_path):
    (tmp_path / "good.fits").write_bytes(b"x")
    (tmp_path / "gone.fits").symlink_to(tmp_path / "deleted.fits")
    assert expand_inputs([tmp_path]) == [str(tmp_path / "gone.fits"), str(tmp_path / "good.fits")]
    with pytest.raises(CutoutError, match=r"gone\.fits: broken symbolic link \(to .*deleted"):
        read_cutout(tmp_path / "gone.fits")
