"""Cutout shapes, header/WCS, labels and determinism of the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from galaxalign_astro.simulate import (
    SimulationConfig,
    balanced_label,
    simulate_batch,
    simulate_cutout,
)
from galaxalign_astro.taxonomy import GALAXY10_DECALS


def test_cutout_shape_dtype_and_truth():
    cut = simulate_cutout(3, seed=1, size=64)
    assert cut.cube.shape == (3, 64, 64)
    assert cut.cube.dtype == np.float32
    assert np.isfinite(cut.cube).all()
    assert cut.label == balanced_label(1, 3)
    assert cut.class_name == GALAXY10_DECALS.names[cut.label]
    for key in ("mag_r", "half_light_radius", "axis_ratio", "psf_fwhm_r", "pixel_scale"):
        assert key in cut.truth
    assert 1.0 * 0.9 <= cut.truth["psf_fwhm_r"] <= 1.6 * 1.1
    assert -20.5 <= cut.dec <= 34.5 and 0 <= cut.ra < 360


def test_header_keywords():
    cut = simulate_cutout(0, seed=2, label=5, size=64)
    h = cut.header
    assert h["BANDS"].strip() == "grz"
    assert [h[f"BAND{i}"] for i in range(3)] == ["g", "r", "z"]
    assert h["SURVEY"] and h["VERSION"]
    assert h["CTYPE1"] == "RA---TAN" and h["CTYPE2"] == "DEC--TAN"
    assert h["SIMULATD"] is True
    assert h["LABEL"] == 5 and h["CLASSNAM"] == "Barred Spiral"
    assert h["CRVAL1"] == pytest.approx(cut.ra) and h["CRVAL2"] == pytest.approx(cut.dec)
    assert h["CD1_1"] == pytest.approx(-cut.truth["pixel_scale"] / 3600)
    assert h["CD2_2"] == pytest.approx(cut.truth["pixel_scale"] / 3600)


def test_wcs_round_trip():
    size = 64
    cut = simulate_cutout(4, seed=2, size=size)
    wcs = WCS(cut.header, naxis=2)
    centre = (size - 1) / 2.0
    ra, dec = wcs.pixel_to_world_values(centre, centre)
    assert ra == pytest.approx(cut.ra, abs=1e-9)
    assert dec == pytest.approx(cut.dec, abs=1e-9)
    a = SkyCoord(*wcs.pixel_to_world_values(centre, centre), unit="deg")
    b = SkyCoord(*wcs.pixel_to_world_values(centre + 10, centre), unit="deg")
    assert a.separation(b).arcsec == pytest.approx(10 * cut.truth["pixel_scale"], rel=1e-4)
    # east is to the left (+x is decreasing RA), north up
    assert b.ra.deg < a.ra.deg or abs(b.ra.deg - a.ra.deg) > 180


def test_labels_balanced_in_every_block_of_ten():
    labels = [balanced_label(7, i) for i in range(200)]
    for start in range(0, 200, 10):
        assert sorted(labels[start : start + 10]) == list(range(10))
    assert labels[:10] != [balanced_label(8, i) for i in range(10)]


def test_given_label_is_used_and_checked():
    assert simulate_cutout(0, seed=0, label=8, size=32).label == 8
    with pytest.raises(ValueError, match="label"):
        simulate_cutout(0, seed=0, label=10, size=32)
    with pytest.raises(ValueError, match="size"):
        simulate_cutout(0, seed=0, size=4)


def test_deterministic_per_seed_and_index():
    a = simulate_cutout(11, seed=5, size=48)
    b = simulate_cutout(11, seed=5, size=48)
    c = simulate_cutout(11, seed=6, size=48)
    d = simulate_cutout(12, seed=5, size=48)
    np.testing.assert_array_equal(a.cube, b.cube)
    assert a.truth == b.truth
    assert not np.array_equal(a.cube, c.cube)
    assert not np.array_equal(a.cube, d.cube)


def test_batch_same_whatever_workers_or_split():
    indices = list(range(20, 32))
    one = simulate_batch(indices, seed=9, size=48, workers=1)
    two = simulate_batch(indices, seed=9, size=48, workers=2)
    np.testing.assert_array_equal(one.cubes, two.cubes)
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.truth.colnames == two.truth.colnames
    parts = [
        simulate_batch(indices[:5], seed=9, size=48),
        simulate_batch(indices[5:], seed=9, size=48),
    ]
    np.testing.assert_array_equal(np.concatenate([p.cubes for p in parts]), one.cubes)
    single = simulate_cutout(27, seed=9, size=48)
    np.testing.assert_array_equal(single.cube, one.cubes[7])
    assert one.cubes.shape == (12, 3, 48, 48) and one.cubes.dtype == np.float32
    assert len(one.truth) == 12 and one.ra.shape == (12,)


def test_parallel_batch_leaves_no_shared_files():
    import glob

    batch = simulate_batch(range(4), seed=1, size=32, workers=2)
    batch.cubes[0] += 1.0  # an ordinary writable array
    assert not glob.glob("/dev/shm/galaxalign-sim-*")


def test_tune_allocator_is_idempotent():
    from galaxalign_astro.simulate import tune_allocator

    first = tune_allocator()
    assert isinstance(first, bool)
    assert tune_allocator() is first


def test_batch_labels_argument():
    batch = simulate_batch([0, 1, 2], seed=0, size=32, labels=[4, 4, 9])
    assert list(batch.labels) == [4, 4, 9]
    with pytest.raises(ValueError, match="labels"):
        simulate_batch([0, 1], seed=0, size=32, labels=[1])


def test_config_rejects_bad_ranges():
    with pytest.raises(ValueError, match="psf_fwhm_r"):
        SimulationConfig(psf_fwhm_r=(1.6, 1.0))
    with pytest.raises(ValueError, match="pixel_scale_jitter"):
        SimulationConfig(pixel_scale_jitter=0.9)
