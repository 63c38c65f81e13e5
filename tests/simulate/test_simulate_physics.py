"""Physical sanity of simulated cutouts: fluxes, shapes, colours, PSF and noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from galaxalign_astro.simulate import SimulationConfig, simulate_cutout
from galaxalign_astro.simulate.psf import moffat_psf
from galaxalign_astro.taxonomy import GALAXY10_DECALS

# no stars, background galaxies or neighbours: the target alone on the sky
ISOLATED = SimulationConfig(
    star_density=(1e-9, 1e-9),
    background_density=(1e-9, 1e-9),
    neighbour_probability=0.0,
    bright_star_probability=0.0,
)
SIZE = 128
SCALE = 0.524  # 2x2-binned DECaLS pixels: the whole galaxy fits a small cutout


def _label(key: str) -> int:
    return GALAXY10_DECALS.keys.index(key)


def _cutouts(key: str, n: int, seed: int = 3):
    return [
        simulate_cutout(
            i, seed=seed, label=_label(key), size=SIZE, pixel_scale=SCALE, config=ISOLATED
        )
        for i in range(n)
    ]


def _segment(cut) -> np.ndarray:
    """Pixels of the connected region above 3 sky sigma holding the centre (r band)."""
    image = cut.cube[1]
    smooth = ndimage.gaussian_filter(image, 1.0)
    mask = smooth > 3.0 * cut.truth["sky_sigma_r"] / 2.0
    labels, _ = ndimage.label(mask)
    c = SIZE // 2
    centre = labels[c - 2 : c + 2, c - 2 : c + 2].max()
    assert centre > 0
    return labels == centre


def _moment_axis_ratio(cut) -> float:
    seg = _segment(cut)
    y, x = np.nonzero(seg)
    w = np.clip(cut.cube[1][seg], 0, None)
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    cov = np.cov(np.vstack([x - xm, y - ym]), aweights=w)
    lo, hi = np.linalg.eigvalsh(cov)
    return math.sqrt(lo / hi)


@pytest.mark.parametrize("key", ["round_smooth", "unbarred_tight_spiral", "edge_on_bulge"])
def test_total_flux_matches_truth_magnitude(key):
    for cut in _cutouts(key, 3):
        expected = 10 ** (-0.4 * (cut.truth["mag_r"] - 22.5)) * cut.truth["calibration_r"]
        measured = float(cut.cube[1].sum())
        assert measured == pytest.approx(expected, rel=0.2)


def test_edge_on_and_cigar_are_elongated_round_is_not():
    q = {
        key: np.median([_moment_axis_ratio(c) for c in _cutouts(key, 5)])
        for key in ("edge_on_no_bulge", "edge_on_bulge", "round_smooth")
    }
    assert q["edge_on_no_bulge"] < 0.35
    assert q["edge_on_bulge"] < 0.5
    assert q["round_smooth"] > 0.75


def test_smooth_classes_rank_by_axis_ratio():
    q = [
        np.median([_moment_axis_ratio(c) for c in _cutouts(key, 6)])
        for key in ("round_smooth", "in_between_smooth", "cigar_smooth")
    ]
    assert q[0] > q[1] > q[2]
    truth = [c.truth["axis_ratio"] for c in _cutouts("cigar_smooth", 4)]
    assert max(truth) <= 0.42


def test_ellipticals_are_redder_than_irregulars():
    def g_minus_r(cut):
        seg = _segment(cut)
        return -2.5 * math.log10(cut.cube[0][seg].sum() / cut.cube[1][seg].sum())

    red = np.median([g_minus_r(c) for c in _cutouts("round_smooth", 4)])
    blue = np.median([g_minus_r(c) for c in _cutouts("unbarred_loose_spiral", 4)])
    assert red > blue + 0.15


def test_merging_has_several_galaxies_and_tidal_light():
    for cut in _cutouts("merging", 4):
        assert cut.truth["n_galaxies"] >= 2
        assert cut.truth["tidal_fraction"] > 0.02
    spirals = _cutouts("unbarred_loose_spiral", 2)
    assert all(c.truth["n_galaxies"] == 1 and c.truth["n_arms"] >= 1 for c in spirals)


def test_sky_noise_matches_truth():
    cut = _cutouts("cigar_smooth", 1)[0]
    for b, band in enumerate("grz"):
        corner = cut.cube[b, :30, :30]
        mad = 1.4826 * np.median(np.abs(corner - np.median(corner)))
        assert mad == pytest.approx(cut.truth[f"sky_sigma_{band}"], rel=0.2)


@pytest.mark.parametrize("fwhm", [3.5, 5.0, 6.5])
def test_psf_is_normalised_with_the_requested_fwhm(fwhm):
    import scipy.fft

    psf = moffat_psf(fwhm, 3.0, 96)
    image = np.fft.fftshift(scipy.fft.irfft2(psf.transform.astype(np.float64), s=(96, 96)))
    assert image.sum() == pytest.approx(1.0, abs=1e-4)
    assert psf.fwhm_px == pytest.approx(fwhm, rel=0.011)
    # half maximum along the row through the centre, linearly interpolated
    row = image[48, 48:] / image[48, 48]
    k = int(np.argmax(row < 0.5))
    half = (k - 1) + (row[k - 1] - 0.5) / (row[k - 1] - row[k])
    # pixel integration widens a sampled PSF a little
    assert 2 * half == pytest.approx(psf.fwhm_px, rel=0.06)


def test_saturated_star_is_clipped():
    config = SimulationConfig(
        star_density=(1e-9, 1e-9),
        background_density=(1e-9, 1e-9),
        neighbour_probability=0.0,
        bright_star_probability=1.0,
        saturation_nmgy=(5.0, 5.0),
    )
    plateaus = []
    for index in range(4):
        cut = simulate_cutout(index, seed=4, size=128, config=config)
        assert cut.truth["n_bright_stars"] == 1
        # r < 15 puts > 8 nanomaggies in the peak pixel: a flat core at the 5 nmgy level
        r = cut.cube[1] / cut.truth["calibration_r"]
        plateaus.append(int((np.abs(r - 5.0) < 0.15).sum()))
        assert r.max() < 5.5
    assert max(plateaus) >= 9
