"""Tests of galaxalign_astro.preprocess.sources on synthetic cutouts with known answers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from astropy import units as u
from astropy.modeling.models import Gaussian2D, Sersic2D

from galaxalign_astro.preprocess.sources import (
    MEASUREMENT_COLUMNS,
    SourceConfig,
    SourceFlag,
    SourceMeasurements,
    process_sources,
)

SIGMA = 0.05  # sky noise per pixel (nanomaggies), the same in every band
BANDS = ("g", "r", "z")
SED = (0.6, 1.0, 1.4)  # flux ratio of the galaxies in g, r, z


def _model(shape, galaxies):
    """Sum of Sersic galaxies given as dicts of Sersic2D parameters (x_0/y_0 in pixels)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    for params in galaxies:
        image += Sersic2D(**params)(xx, yy)
    return image


def _cube(model, *, seed=0, sky=None, sigma=SIGMA):
    """(3, H, W) float32 cube: the model times the SED plus sky and Gaussian noise."""
    rng = np.random.default_rng(seed)
    sky = np.zeros(model.shape) if sky is None else sky
    planes = [model * f + sky + rng.normal(0.0, sigma, model.shape) for f in SED]
    return np.stack(planes).astype(np.float32)


def _centre(n):
    return (n - 1) / 2.0


def _galaxy(dx=0.0, dy=0.0, *, n_pix=128, amplitude=1.0, r_eff=6.0, n=1.0, ellip=0.3, theta=0.4):
    c = _centre(n_pix)
    return dict(
        amplitude=amplitude, r_eff=r_eff, n=n, x_0=c + dx, y_0=c + dy, ellip=ellip, theta=theta
    )


# -- configuration --------------------------------------------------------------------


def test_config_round_trips_through_json():
    config = SourceConfig(
        background="always",
        detection_bands=("r", "z"),
        nsigma=3.0,
        recenter=True,
        mask_neighbours="zero",
        crop="petrosian",
        crop_factor=2.0,
        seed=7,
    )
    text = json.dumps(config.to_dict())
    again = SourceConfig.from_dict(json.loads(text))
    assert again == config
    assert again.detection_bands == ("r", "z")
    assert SourceConfig.from_dict(SourceConfig().to_dict()) == SourceConfig()
    assert SourceConfig.from_dict({}) == SourceConfig()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"background": "sometimes"}, "background"),
        ({"mask_neighbours": "blur"}, "mask_neighbours"),
        ({"crop": "half-light"}, "crop"),
        ({"nsigma": 0}, "nsigma"),
        ({"npixels": -3}, "npixels"),
        ({"npixels": 10.5}, "npixels"),
        ({"seed": -1}, "seed"),
        ({"deblend_contrast": 1.5}, "deblend_contrast"),
        ({"detect": False, "recenter": True}, "detect=True"),
        ({"detection_bands": ()}, "detection_bands"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SourceConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="nsgima"):
        SourceConfig.from_dict({"nsgima": 3.0})


def test_measurement_columns_describe_every_field():
    fields = [f.name for f in dataclasses.fields(SourceMeasurements)]
    assert [c.name for c in MEASUREMENT_COLUMNS] == fields
    for column in MEASUREMENT_COLUMNS:
        assert column.description
        if column.unit not in ("", "flux"):
            u.Unit(column.unit)  # a unit a FITS writer can use
    cube = _cube(_model((64, 64), [_galaxy(n_pix=64)]))
    _, meas = process_sources(cube, SourceConfig())
    row = meas.to_dict()
    assert list(row) == fields
    assert len(row["crop_box"]) == 4
    assert len(row["background_level"]) == len(row["noise_sigma"]) == cube.shape[0]
    json.dumps(row)  # plain JSON-able values


# -- background -----------------------------------------------------------------------


def test_auto_background_subtracts_a_constant_sky():
    model = _model((128, 128), [_galaxy()])
    clean = _cube(model)
    cube = clean + np.float32(5.0)  # a 100-sigma pedestal: not background-subtracted
    out, meas = process_sources(cube, SourceConfig(background="auto"))
    assert meas.flags & SourceFlag.BACKGROUND_SUBTRACTED
    np.testing.assert_allclose(meas.background_level, 5.0, atol=0.01)
    residual = out - clean
    assert abs(float(np.median(residual))) < 0.1 * SIGMA
    assert float(np.abs(residual).max()) < 0.5 * SIGMA


def test_auto_background_leaves_subtracted_data_alone():
    cube = _cube(_model((128, 128), [_galaxy()]))
    out, meas = process_sources(cube, SourceConfig())
    assert not meas.flags & SourceFlag.BACKGROUND_SUBTRACTED
    assert meas.background_level == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(out, cube)  # the default config only measures
    np.testing.assert_allclose(meas.noise_sigma, SIGMA, rtol=0.1)


def test_always_background_removes_a_gradient():
    yy, xx = np.mgrid[:128, :128]
    sky = 0.3 + 0.004 * xx - 0.002 * yy  # 0.5 (10 sigma) change across the cutout
    model = _model((128, 128), [_galaxy()])
    clean = _cube(model)
    cube = _cube(model, sky=sky)
    out, meas = process_sources(cube, SourceConfig(background="always", background_box_size=32))
    assert meas.flags & SourceFlag.BACKGROUND_SUBTRACTED
    np.testing.assert_allclose(meas.background_level, np.median(sky), atol=0.02)
    residual = out - clean
    assert abs(float(np.median(residual))) < 0.1 * SIGMA
    # Against the 10-sigma gradient, what is left is a fraction of the noise, also
    # within half a box of the edges (where the mesh is extrapolated).
    assert float(np.sqrt(np.mean(residual**2))) < 0.25 * SIGMA
    edges = residual.copy()
    edges[:, 16:-16, 16:-16] = 0
    assert float(np.abs(edges).max()) < SIGMA


def test_no_background_step_keeps_the_pedestal():
    cube = _cube(_model((64, 64), [_galaxy(n_pix=64)])) + np.float32(2.0)
    out, meas = process_sources(cube, SourceConfig(background="none"))
    np.testing.assert_array_equal(out, cube)
    assert np.isnan(meas.background_level).all()
    # Detection still works relative to the sky level.
    assert not meas.flags & SourceFlag.NO_SOURCE
    assert abs(meas.x_offset) < 1 and abs(meas.y_offset) < 1


# -- target selection -----------------------------------------------------------------


def test_target_is_the_central_galaxy_among_several():
    galaxies = [
        _galaxy(1.5, -1.0, r_eff=5.0),
        _galaxy(-40, 35, amplitude=4.0, r_eff=4.0),  # brighter neighbours
        _galaxy(42, 30, amplitude=3.0, r_eff=3.0),
        _galaxy(30, -45, amplitude=2.0, r_eff=6.0),
    ]
    _, meas = process_sources(_cube(_model((128, 128), galaxies)), SourceConfig())
    assert meas.n_sources >= 4
    assert not meas.flags & (SourceFlag.NO_SOURCE | SourceFlag.TARGET_OFFSET)
    assert meas.x_offset == pytest.approx(1.5, abs=0.5)
    assert meas.y_offset == pytest.approx(-1.0, abs=0.5)


def test_target_is_the_nearest_galaxy_when_the_centre_is_empty():
    galaxies = [_galaxy(15, 0, r_eff=3.0), _galaxy(-40, 40, r_eff=4.0, amplitude=3.0)]
    cube = _cube(_model((128, 128), galaxies))
    _, meas = process_sources(cube, SourceConfig())
    assert meas.flags & SourceFlag.TARGET_OFFSET
    assert not meas.flags & SourceFlag.NO_SOURCE
    assert meas.x_offset == pytest.approx(15, abs=0.5)
    assert meas.y_offset == pytest.approx(0, abs=0.5)

    # Beyond the allowed distance (5% of 128 px = 6.4 px) nothing is taken.
    config = SourceConfig(max_target_distance=0.05, recenter=True, crop="kron")
    out, meas = process_sources(cube, config)
    assert meas.flags & SourceFlag.NO_SOURCE
    assert np.isnan(meas.x_offset)
    np.testing.assert_array_equal(out, cube)  # no recentring or cropping without a target


def test_position_selects_another_galaxy():
    c = _centre(128)
    galaxies = [_galaxy(), _galaxy(-40, 30, r_eff=4.0)]
    _, meas = process_sources(_cube(_model((128, 128), galaxies)), position=(c - 40, c + 30))
    assert meas.x_offset == pytest.approx(-40, abs=0.5)
    assert meas.y_offset == pytest.approx(30, abs=0.5)


def test_deblending_separates_a_close_pair():
    galaxies = [_galaxy(0, 0, r_eff=3.0, ellip=0.0), _galaxy(11, 3, r_eff=3.0, ellip=0.0)]
    cube = _cube(_model((128, 128), galaxies))
    _, blended = process_sources(cube, SourceConfig(deblend=False))
    _, deblended = process_sources(cube, SourceConfig(deblend=True))
    assert not blended.flags & SourceFlag.DEBLENDED
    assert blended.x_offset == pytest.approx(5.5, abs=1.0)  # the pair's common centroid
    assert deblended.flags & SourceFlag.DEBLENDED
    assert deblended.x_offset == pytest.approx(0, abs=1.0)
    assert deblended.area < 0.7 * blended.area


def test_edge_flag_for_a_galaxy_filling_the_cutout():
    cube = _cube(_model((64, 64), [_galaxy(n_pix=64, amplitude=2.0, r_eff=25.0)]))
    _, meas = process_sources(cube, SourceConfig())
    assert meas.flags & SourceFlag.EDGE


# -- recentring, masking, cropping ------------------------------------------------------


def test_recentring_moves_an_offset_galaxy_to_the_centre():
    cube = _cube(_model((128, 128), [_galaxy(7, -4, r_eff=5.0)]))
    out, meas = process_sources(cube, SourceConfig(recenter=True))
    assert meas.flags & SourceFlag.RECENTRED
    assert meas.shift_x == pytest.approx(-7, abs=0.3)
    assert meas.shift_y == pytest.approx(4, abs=0.3)
    assert np.isfinite(out).all()
    _, again = process_sources(out, SourceConfig())
    assert abs(again.x_offset) < 0.5 and abs(again.y_offset) < 0.5
    # The shift keeps the galaxy's flux (in a 30 px aperture) and the noise level.
    yy, xx = np.mgrid[:128, :128]
    c = _centre(128)
    before = np.hypot(xx - c - 7, yy - c + 4) < 30
    after = np.hypot(xx - c, yy - c) < 30
    assert out[1][after].sum() == pytest.approx(cube[1][before].sum(), rel=0.01)
    assert np.std(out[1, :20, 30:100]) == pytest.approx(SIGMA, rel=0.1)


def test_subpixel_recentring_is_accurate_and_keeps_the_noise():
    cube = _cube(_model((128, 128), [_galaxy(6.5, -3.5, r_eff=5.0, amplitude=3.0)]))
    out, meas = process_sources(cube, SourceConfig(recenter=True))
    assert (meas.shift_x, meas.shift_y) == pytest.approx((-6.5, 3.5), abs=0.1)
    _, again = process_sources(out, SourceConfig())
    assert abs(again.x_offset) < 0.1 and abs(again.y_offset) < 0.1
    # A half-pixel shift by interpolation would lower the noise variance by 40-75%.
    sky = np.s_[:, 5:30, 5:123]
    assert np.std(out[sky]) == pytest.approx(np.std(cube[sky]), rel=0.05)


def test_whole_pixel_recentring_copies_pixels():
    cube = _cube(_model((128, 128), [_galaxy(7.3, -4.2, r_eff=5.0)]))
    out, meas = process_sources(cube, SourceConfig(recenter=True, recenter_subpixel=False))
    assert (meas.shift_x, meas.shift_y) == (-7.0, 4.0)
    np.testing.assert_array_equal(out[:, 4:, :-7], cube[:, :-4, 7:])
    assert meas.crop_box == (6.5, 134.5, -4.5, 123.5)


def _pair():
    """A target at the centre and a 5x brighter neighbour 40 px away."""
    target = _galaxy(r_eff=6.0)
    neighbour = _galaxy(-30, 27, amplitude=5.0, r_eff=3.0, ellip=0.0)
    return target, neighbour


@pytest.mark.parametrize("mode", ["noise", "zero"])
def test_masking_removes_a_bright_neighbour_and_keeps_the_target(mode):
    target, neighbour = _pair()
    target_img = _model((128, 128), [target])
    neighbour_img = _model((128, 128), [neighbour])
    cube = _cube(target_img + neighbour_img)
    out, meas = process_sources(cube, SourceConfig(mask_neighbours=mode))
    assert meas.flags & SourceFlag.NEIGHBOURS_MASKED
    assert meas.n_neighbours_masked == 1

    footprint = neighbour_img > 2 * SIGMA
    n_pix = int(footprint.sum())
    for b in range(3):
        before = float(cube[b][footprint].sum())
        after = float(out[b][footprint].sum())
        assert before > 50 * SIGMA * np.sqrt(n_pix)  # it was bright
        assert abs(after) < 4 * SIGMA * np.sqrt(n_pix)  # now at the noise level
        if mode == "zero":
            assert (out[b][footprint] == 0).all()
        else:
            assert np.std(out[b][footprint]) == pytest.approx(SIGMA, rel=0.2)

    core = target_img > 0.1  # the target's bright part
    for b in range(3):
        assert out[b][core].sum() == pytest.approx(cube[b][core].sum(), rel=0.01)


def test_noise_fill_is_deterministic_per_cutout():
    target, neighbour = _pair()
    cube = _cube(_model((128, 128), [target, neighbour]))
    config = SourceConfig(mask_neighbours="noise")
    first, _ = process_sources(cube, config)
    second, _ = process_sources(cube.copy(), config)
    np.testing.assert_array_equal(first, second)
    other_seed, _ = process_sources(cube, dataclasses.replace(config, seed=1))
    assert not np.array_equal(first, other_seed)
    other_cutout, _ = process_sources(
        _cube(_model((128, 128), [target, neighbour]), seed=5), config
    )
    changed = first != cube
    assert not np.array_equal(first[changed], other_cutout[changed])


def test_mask_siblings_false_keeps_a_merging_companion():
    galaxies = [_galaxy(0, 0, r_eff=3.0, ellip=0.0), _galaxy(11, 3, r_eff=3.0, ellip=0.0)]
    cube = _cube(_model((128, 128), galaxies))
    kept, meas_kept = process_sources(
        cube, SourceConfig(mask_neighbours="zero", mask_siblings=False)
    )
    masked, meas_masked = process_sources(cube, SourceConfig(mask_neighbours="zero"))
    c = round(_centre(128))
    assert meas_kept.n_neighbours_masked == 0
    assert kept[1, c + 3, c + 11] == cube[1, c + 3, c + 11]
    assert meas_masked.n_neighbours_masked >= 1
    assert masked[1, c + 3, c + 11] == 0


@pytest.mark.parametrize("crop", ["kron", "petrosian"])
def test_crop_box_scales_with_galaxy_size(crop):
    sides = []
    for r_eff in (4.0, 8.0):
        cube = _cube(_model((192, 192), [_galaxy(3, -2, n_pix=192, r_eff=r_eff, amplitude=2.0)]))
        out, meas = process_sources(cube, SourceConfig(crop=crop, crop_min_size=8))
        assert meas.flags & SourceFlag.CROPPED
        side = out.shape[1]
        assert out.shape == (3, side, side)
        x_min, x_max, y_min, y_max = meas.crop_box
        assert x_max - x_min == y_max - y_min == side
        # The box is centred on the galaxy, in input pixel coordinates.
        assert (x_min + x_max) / 2 == pytest.approx(_centre(192) + 3, abs=1.0)
        assert (y_min + y_max) / 2 == pytest.approx(_centre(192) - 2, abs=1.0)
        sides.append(side)
    assert sides[1] / sides[0] == pytest.approx(2.0, rel=0.25)


def test_crop_after_recentring_and_padding():
    cube = _cube(_model((96, 96), [_galaxy(5, 3, n_pix=96, r_eff=8.0, amplitude=2.0)]))
    config = SourceConfig(recenter=True, crop="kron", crop_factor=3.0)
    out, meas = process_sources(cube, config)
    assert meas.flags & SourceFlag.CROPPED
    assert meas.flags & SourceFlag.CROP_PADDED  # 3x the Kron ellipse exceeds 96 px
    assert out.shape[1] > 96
    assert np.isfinite(out).all()
    x_min, x_max, y_min, y_max = meas.crop_box
    assert (x_min + x_max) / 2 == pytest.approx(_centre(96) + 5, abs=1.0)
    assert (y_min + y_max) / 2 == pytest.approx(_centre(96) + 3, abs=1.0)


# -- measurements -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_std", "y_std", "theta_deg"), [(9.0, 4.5, 30.0), (8.0, 2.0, -60.0), (5.0, 5.0, 0.0)]
)
def test_ellipticity_and_orientation_of_an_elongated_galaxy(x_std, y_std, theta_deg):
    yy, xx = np.mgrid[:128, :128]
    c = _centre(128)
    gauss = Gaussian2D(3.0, c, c, x_std, y_std, theta=np.deg2rad(theta_deg))
    _, meas = process_sources(_cube(gauss(xx, yy)), SourceConfig())
    assert meas.ellipticity == pytest.approx(1 - y_std / x_std, abs=0.05)
    if x_std != y_std:
        assert meas.orientation == pytest.approx(theta_deg, abs=3.0)
    assert -90 <= meas.orientation < 90
    assert meas.semimajor_sigma > meas.semiminor_sigma > 0


def test_petrosian_radius_of_an_exponential_disk():
    # For an exponential profile the Petrosian radius (eta = 0.2) is 3.55 scale
    # lengths, i.e. 2.11 r_eff (numerical integration of the SDSS definition).
    cube = _cube(_model((192, 192), [_galaxy(n_pix=192, r_eff=10.0, ellip=0.0, amplitude=3.0)]))
    _, meas = process_sources(cube, SourceConfig())
    assert meas.petrosian_radius == pytest.approx(21.1, rel=0.1)


# -- awkward inputs ---------------------------------------------------------------------


def test_nans_are_masked_and_filled():
    cube = _cube(_model((128, 128), [_galaxy(r_eff=5.0)]))
    cube[0, 10:30, 10:30] = np.nan
    cube[1, :, 100] = np.inf
    cube[2, 64, 64] = np.nan  # inside the galaxy
    original = cube.copy()
    out, meas = process_sources(cube, SourceConfig(mask_neighbours="noise"))
    np.testing.assert_array_equal(cube, original)  # input untouched
    assert meas.flags & SourceFlag.NONFINITE
    assert np.isfinite(out).all()
    assert abs(meas.x_offset) < 0.5 and abs(meas.y_offset) < 0.5
    assert np.std(out[0, 10:30, 10:30]) == pytest.approx(SIGMA, rel=0.2)
    good = np.isfinite(original)
    np.testing.assert_array_equal(out[good], original[good])


@pytest.mark.parametrize(
    "cube",
    [
        np.zeros((3, 64, 64), np.float32),
        np.full((3, 64, 64), np.nan, np.float32),
        np.random.default_rng(3).normal(0, SIGMA, (3, 64, 64)).astype(np.float32),
    ],
    ids=["zeros", "all-nan", "pure-noise"],
)
def test_empty_fields_are_flagged_not_raised(cube):
    config = SourceConfig(background="always", recenter=True, mask_neighbours="noise", crop="kron")
    out, meas = process_sources(cube, config)
    assert meas.flags & SourceFlag.NO_SOURCE
    assert out.shape == cube.shape
    assert np.isfinite(out).all()
    assert np.isnan(meas.area)


def test_all_nan_band_is_left_out_of_detection():
    cube = _cube(_model((64, 64), [_galaxy(n_pix=64)]))
    cube[0] = np.nan
    out, meas = process_sources(cube, SourceConfig())
    assert not meas.flags & SourceFlag.NO_SOURCE
    assert abs(meas.x_offset) < 0.5
    assert np.isfinite(out).all()


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 5, 7), (1, 12, 12), (2, 16, 9)])
def test_tiny_cutouts_do_not_raise(shape):
    rng = np.random.default_rng(0)
    cube = rng.normal(0, SIGMA, shape).astype(np.float32)
    cube[:, shape[1] // 2, shape[2] // 2] += 5.0
    config = SourceConfig(recenter=True, crop="kron", mask_neighbours="noise")
    out, meas = process_sources(cube, config)
    assert out.ndim == 3 and out.shape[0] == shape[0]
    if min(shape[1:]) < 8:
        assert meas.flags & SourceFlag.TOO_SMALL


def test_detection_band_selection():
    model = _model((96, 96), [_galaxy(n_pix=96)])
    rng = np.random.default_rng(0)
    noise = rng.normal(0, SIGMA, (3, 96, 96))
    cube = (noise + np.stack([0 * model, 0 * model, model])).astype(np.float32)  # z only
    _, by_g = process_sources(cube, SourceConfig(detection_bands=("g",)), bands=BANDS)
    _, by_z = process_sources(cube, SourceConfig(detection_bands=("z",)), bands=BANDS)
    _, by_index = process_sources(cube, SourceConfig(detection_bands=(2,)))
    assert by_g.flags & SourceFlag.NO_SOURCE
    assert not by_z.flags & SourceFlag.NO_SOURCE
    assert by_index == by_z


@pytest.mark.parametrize(
    ("cube", "kwargs", "match"),
    [
        (np.zeros((64, 64)), {}, "shape"),
        (np.zeros((3, 0, 64)), {}, "shape"),
        (np.zeros((1, 3, 64, 64)), {}, "shape"),
        (np.zeros((3, 64, 64)), {"bands": ("g", "r")}, "bands"),
        (np.zeros((3, 64, 64)), {"position": (np.nan, 3.0)}, "position"),
    ],
)
def test_wrong_inputs_raise_value_error(cube, kwargs, match):
    with pytest.raises(ValueError, match=match):
        process_sources(cube, SourceConfig(), **kwargs)


def test_detection_band_not_in_cube_raises():
    config = SourceConfig(detection_bands=("i",))
    with pytest.raises(ValueError, match="'i'"):
        process_sources(np.zeros((3, 64, 64)), config, bands=BANDS)
