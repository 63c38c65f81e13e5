"""The in-place dr2_rgb gives the textbook form's values exactly."""

import numpy as np
import pytest

from galaxalign_astro.preprocess.stretch import dr2_rgb

SCALES = {"g": 6.0, "r": 3.4, "i": 2.5, "z": 2.2}


def textbook_dr2_rgb(cube, bands, *, scales=None, m=0.03, Q=20.0):
    """dr2_rgb written as DATA.md states it, one whole-array expression per step."""
    cube = np.asarray(cube, dtype=np.float32)
    table = dict(SCALES if scales is None else scales)
    scale = np.array([table.get(b, table.get("r", 3.4)) for b in bands], dtype=np.float32)
    scaled = cube * scale.reshape(-1, 1, 1) + np.float32(m)
    intensity = np.maximum(scaled, 0.0).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.arcsinh(float(Q) * intensity) / (float(np.sqrt(Q)) * intensity)
    factor[~(intensity > 0)] = 0.0
    n = len(bands)
    order = [1, 1, 0] if n == 2 else [n - 1, n // 2, 0]
    return np.clip(scaled[order] * factor, 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize(
    ("bands", "params"),
    [
        (("g", "r", "z"), {}),
        (("g", "r", "i", "z"), {}),
        (("g", "r"), {}),
        (("r", "r", "r"), {"Q": 8.0, "m": 0.0}),
        (("g", "r", "z"), {"scales": {"g": 1.0, "r": 2.0, "z": 3.0}}),
    ],
)
def test_dr2_rgb_equals_the_textbook_form(bands, params):
    rng = np.random.default_rng(3)
    cube = rng.normal(0.0, 0.3, (len(bands), 40, 33)).astype(np.float32)
    cube[:, :3] = -0.1  # a dark corner: intensity exactly 0 where every band is below -m
    cube[:, -3:, -3:] = 5.0  # saturated core
    got = dr2_rgb(cube, bands, **params)
    want = textbook_dr2_rgb(cube, bands, **params)
    assert got.dtype == np.float32 and got.shape == (3, 40, 33)
    np.testing.assert_array_equal(got, want)
    assert got.min() == 0.0 and got.max() == 1.0


def test_dr2_rgb_leaves_its_input_alone():
    cube = np.full((3, 8, 8), 0.2, dtype=np.float32)
    dr2_rgb(cube, ("g", "r", "z"))
    assert np.all(cube == np.float32(0.2))
