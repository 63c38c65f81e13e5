"""Framing by the galaxy's own size: Galaxy Zoo framing and fixed fields look alike."""

from __future__ import annotations

import numpy as np
import pytest

from galaxalign_astro.io.cutouts import Cutout
from galaxalign_astro.preprocess import PreprocessConfig, prepare
from galaxalign_astro.preprocess.framing import frame_galaxy, galaxy_region


def disk(size: int, radius: float, *, centre=None, q: float = 1.0, seed: int = 0) -> np.ndarray:
    """(3, size, size) display image: a uniform ellipse of semi-major ``radius`` on dark sky."""
    rng = np.random.default_rng(seed)
    cy, cx = centre if centre is not None else ((size - 1) / 2, (size - 1) / 2)
    y, x = np.mgrid[:size, :size]
    inside = ((x - cx) / radius) ** 2 + ((y - cy) / (radius * q)) ** 2 <= 1
    img = np.where(inside, 0.8, 0.0) + rng.uniform(0, 0.01, (size, size))
    return np.repeat(img[None], 3, axis=0).astype(np.float32)


def test_semi_major_axis_of_an_ellipse():
    y, x, a = galaxy_region(disk(100, 20, q=0.5)[0])
    assert (y, x) == pytest.approx((49.5, 49.5), abs=0.5)
    assert a == pytest.approx(20, rel=0.05)


def test_small_and_large_framings_of_one_galaxy_give_the_same_input():
    """The same galaxy filling 1/10 of a 400 px frame or 2/3 of a 60 px one."""
    config = PreprocessConfig(size=32, frame=1.5)
    small = disk(400, 20)
    large = disk(60, 20)
    a = prepare(Cutout(small, ("R", "G", "B"), "rgb", None, "small.png"), config).image
    b = prepare(Cutout(large, ("R", "G", "B"), "rgb", None, "large.png"), config).image
    assert np.abs(a - b).mean() < 0.05
    unframed = PreprocessConfig(size=32)
    c = prepare(Cutout(small, ("R", "G", "B"), "rgb", None, "small.png"), unframed).image
    assert np.abs(c - b).mean() > 0.2  # without framing the two differ


def test_an_off_centre_galaxy_is_recentred_and_sky_pads_the_edge():
    framed, (y0, x0, side) = frame_galaxy(disk(200, 30, centre=(40, 150)), frame=1.5)
    assert side == pytest.approx(1.5 * 60, abs=3)
    assert (y0 + side / 2, x0 + side / 2) == pytest.approx((40, 150), abs=2)
    assert framed.shape == (3, side, side)
    assert framed[:, 0, :].max() == 0  # rows above the image are dark sky


def test_nothing_detected_keeps_the_whole_field():
    flat = np.full((3, 50, 50), 0.1, dtype=np.float32)
    framed, box = frame_galaxy(flat, frame=1.5)
    assert box == [0, 0, 50]
    np.testing.assert_array_equal(framed, flat)


def test_frame_is_stored_with_the_preprocessing_and_validated():
    config = PreprocessConfig(size=32, frame=1.5)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="frame must be between"):
        PreprocessConfig(frame=0.5)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 16384, 16385])
def test_median_is_numpys_median(n):
    from galaxalign_astro.preprocess.framing import median

    rng = np.random.default_rng(n)
    for values in (
        rng.normal(size=n).astype(np.float32),
        rng.integers(0, 3, n).astype(np.float32),  # many ties
        np.abs(rng.normal(size=(n, 1))).astype(np.float64),
    ):
        original = values.copy()
        assert median(values) == float(np.median(values))
        np.testing.assert_array_equal(values, original)  # the input is left alone
