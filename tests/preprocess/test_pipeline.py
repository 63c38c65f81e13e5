import numpy as np
import pytest

from galaxalign_astro.errors import CutoutError
from galaxalign_astro.io import Cutout, read_cutout
from galaxalign_astro.preprocess import PreprocessConfig, dr2_rgb, prepare
from tests.cutout_factory import galaxy_cube, write_cube, write_extensions


def test_dr2_rgb_matches_formula():
    rng = np.random.default_rng(0)
    cube = rng.normal(0.05, 0.05, (3, 8, 8)).astype(np.float32)
    out = dr2_rgb(cube, ("g", "r", "z"))
    scale = np.array([6.0, 3.4, 2.2])[:, None, None]
    scaled = cube * scale + 0.03
    intensity = np.maximum(scaled, 0).mean(0)
    f = np.arcsinh(20 * intensity) / np.sqrt(20)
    expected = np.clip(scaled * f / intensity, 0, 1)[::-1]  # z -> R, r -> G, g -> B
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32


def test_output_shape_and_range(tmp_path):
    c = read_cutout(write_cube(tmp_path / "a.fits", galaxy_cube(100)))
    img = prepare(c, PreprocessConfig(size=32, fov_arcsec=None)).image
    assert img.shape == (3, 32, 32) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1


def test_band_order_from_headers_not_position(tmp_path):
    cube = galaxy_cube(32, seed=3)
    cfg = PreprocessConfig(size=32, fov_arcsec=None)
    a = prepare(read_cutout(write_cube(tmp_path / "a.fits", cube, bands="grz")), cfg).image
    shuffled = cube[[2, 0, 1]]
    b = prepare(read_cutout(write_cube(tmp_path / "b.fits", shuffled, bands="zgr")), cfg).image
    np.testing.assert_allclose(a, b)
    c = prepare(read_cutout(write_extensions(tmp_path / "c.fits", cube, bands="grz")), cfg).image
    np.testing.assert_allclose(a, c)


def test_missing_band_is_error(tmp_path):
    path = write_cube(tmp_path / "gri.fits", galaxy_cube(16), bands="gri")
    with pytest.raises(CutoutError, match=r"missing band z"):
        prepare(read_cutout(path), PreprocessConfig(size=16))


def test_single_band_is_grey(tmp_path):
    cube = galaxy_cube(32, bands=1)
    img = prepare(Cutout(cube, ("r",), "flux", None, "x"), PreprocessConfig(size=32)).image
    np.testing.assert_allclose(img[0], img[1])
    np.testing.assert_allclose(img[1], img[2])


def test_unnamed_cube_assumed_in_model_order():
    cube = galaxy_cube(16)
    cfg = PreprocessConfig(size=16)
    a = prepare(Cutout(cube, (None, None, None), "flux", None, "x"), cfg).image
    b = prepare(Cutout(cube, ("g", "r", "z"), "flux", None, "x"), cfg).image
    np.testing.assert_allclose(a, b)
    with pytest.raises(CutoutError, match="without band names"):
        prepare(Cutout(cube[:2], (None, None), "flux", None, "x"), cfg)


@pytest.mark.parametrize(
    ("fill", "why"), [(np.nan, "NaN"), (np.inf, "NaN or infinite"), (0.0, "zero")]
)
def test_no_signal(fill, why):
    cube = np.full((3, 16, 16), fill, dtype=np.float32)
    with pytest.raises(CutoutError, match="no usable signal"):
        prepare(Cutout(cube, ("g", "r", "z"), "flux", None, "x"), PreprocessConfig(size=16))


def test_nan_pixels_are_cleaned():
    cube = galaxy_cube(16)
    cube[:, :4, :4] = np.nan
    img = prepare(Cutout(cube, ("g", "r", "z"), "flux", None, "x"), PreprocessConfig(size=16)).image
    assert np.isfinite(img).all()


def test_field_of_view_matches_across_pixel_scales(tmp_path):
    """Same sky at two pixel scales gives (nearly) the same model input."""
    from astropy.io import fits

    from tests.cutout_factory import wcs_header

    fine = galaxy_cube(128, noise=0.0)
    coarse = fine.reshape(3, 64, 2, 64, 2).sum(axis=(2, 4))
    h1 = wcs_header(128, scale=0.262)
    h1["BANDS"] = "grz"
    fits.PrimaryHDU(fine, h1).writeto(tmp_path / "f.fits")
    # the coarse cutout covers twice the field; the FoV crop must undo that
    big = np.zeros((3, 128, 128), np.float32)
    big[:, 32:96, 32:96] = coarse
    h2 = wcs_header(128, scale=0.524)
    h2["BANDS"] = "grz"
    fits.PrimaryHDU(big, h2).writeto(tmp_path / "c.fits")
    cfg = PreprocessConfig(size=32, fov_arcsec=128 * 0.262, stretch="asinh")
    a = prepare(read_cutout(tmp_path / "f.fits"), cfg).image
    b = prepare(read_cutout(tmp_path / "c.fits"), cfg).image
    assert np.abs(a - b).mean() < 0.03


def test_config_round_trip():
    cfg = PreprocessConfig(bands=("g", "r", "i"), stretch="lupton", size=48, fov_arcsec=None)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown stretch"):
        PreprocessConfig(stretch="sqrt")
    with pytest.raises(ValueError, match="unknown preprocessing"):
        PreprocessConfig.from_dict({"bogus": 1})


def test_source_steps_run_inside_prepare():
    """With photutils steps configured, prepare measures the target and reports it."""
    from galaxalign_astro.preprocess.sources import SourceConfig

    cube = galaxy_cube(64, q=0.5, flux=20.0, noise=0.01)
    cfg = PreprocessConfig(size=32, sources=SourceConfig(recenter=True).to_dict())
    prepared = prepare(Cutout(cube, ("g", "r", "z"), "flux", None, "x"), cfg)
    assert prepared.image.shape == (3, 32, 32)
    assert abs(prepared.measurements["x_offset"]) < 1.5
    assert 0.3 < prepared.measurements["ellipticity"] < 0.7
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
