"""Galaxy augmentations: configurable, reproducible, and doing what each one says."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from galaxalign_astro.datasets import AUGMENT_PRESETS, AugmentConfig, augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bar(n: int = 8, size: int = 32) -> torch.Tensor:
    """A bright horizontal bar off-centre, so every symmetry gives a different image."""
    images = torch.zeros(n, 3, size, size)
    images[:, :, 14:18, 6:26] = 0.8
    images[:, 0, 3, 3] = 1.0  # a marker in one corner
    return images


def centroid(images: torch.Tensor) -> torch.Tensor:
    weight = images.sum(dim=1)
    size = images.shape[-1]
    coords = torch.arange(size, dtype=images.dtype)
    total = weight.sum(dim=(1, 2))
    return torch.stack(
        [(weight.sum(2) * coords).sum(1) / total, (weight.sum(1) * coords).sum(1) / total], 1
    )


def test_config_round_trips_through_json_and_checks_values():
    config = AugmentConfig.preset("galaxy")
    again = AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.zoom == (0.9, 1.1)
    assert set(AUGMENT_PRESETS) == {"none", "flips", "galaxy", "real"}
    real = AugmentConfig.preset("real")
    assert AugmentConfig.from_dict(json.loads(json.dumps(real.to_dict()))) == real
    with pytest.raises(ValueError, match="gamma"):
        AugmentConfig(gamma=(1.2, 0.8))
    with pytest.raises(ValueError, match="colour"):
        AugmentConfig(colour=-0.1)
    with pytest.raises(ValueError, match="unknown augmentation parameters: spin"):
        AugmentConfig.from_dict({"spin": 1})
    with pytest.raises(ValueError, match="zoom"):
        AugmentConfig(zoom=(1.2, 0.8))
    with pytest.raises(ValueError, match="noise_std"):
        AugmentConfig(noise_std=-1)
    with pytest.raises(ValueError, match="padding"):
        AugmentConfig(padding="wrap")
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        AugmentConfig.preset("strong")


def test_seeded_generator_reproduces_a_batch():
    config = AugmentConfig.preset("galaxy")
    images = bar()
    a = augment(images, config, gen(3))
    assert torch.equal(a, augment(images, config, gen(3)))
    assert not torch.equal(a, augment(images, config, gen(4)))
    assert torch.equal(images, bar())  # input untouched


def test_none_is_identity():
    images = bar()
    assert torch.equal(augment(images, AugmentConfig.preset("none"), gen()), images)


def test_rotations_and_flips_are_lossless_symmetries_drawn_per_image():
    images = bar(64)
    out = augment(images, AugmentConfig(), gen(1))
    symmetries = [torch.rot90(images[0], k, (1, 2)) for k in range(4)]
    symmetries += [torch.flip(s, (2,)) for s in symmetries]
    seen = set()
    for image in out:
        matches = [i for i, s in enumerate(symmetries) if torch.equal(image, s)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 8


def test_shifts_move_the_galaxy_within_the_limit():
    images = torch.zeros(32, 3, 40, 40)
    images[:, :, 18:22, 18:22] = 1.0
    config = AugmentConfig(rot90=False, flip=False, shift_fraction=0.1)
    moved = centroid(augment(images, config, gen(2))) - centroid(images)
    assert moved.abs().max() <= 0.1 * 40 + 0.5
    assert (moved.abs().sum(1) > 0.5).float().mean() > 0.8


def test_zoom_changes_apparent_size():
    images = torch.zeros(4, 3, 40, 40)
    images[:, :, 15:25, 15:25] = 1.0
    bigger = augment(images, AugmentConfig(rot90=False, flip=False, zoom=(1.5, 1.5)), gen())
    smaller = augment(images, AugmentConfig(rot90=False, flip=False, zoom=(0.5, 0.5)), gen())
    area = images.sum(dim=(1, 2, 3))
    assert torch.allclose(bigger.sum(dim=(1, 2, 3)) / area, torch.full((4,), 2.25), rtol=0.1)
    assert torch.allclose(smaller.sum(dim=(1, 2, 3)) / area, torch.full((4,), 0.25), rtol=0.1)


def test_small_rotations_stay_within_the_angle():
    images = torch.zeros(16, 3, 41, 41)
    images[:, :, 19:22, 5:36] = 1.0  # horizontal bar through the centre
    out = augment(images, AugmentConfig(rot90=False, flip=False, rotate_degrees=20), gen(5))
    angles = []
    y, x = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
    for image in out[:, 0]:
        w = image / image.sum()
        dx, dy = x - (w * x).sum(), y - (w * y).sum()
        cxx, cyy, cxy = (w * dx * dx).sum(), (w * dy * dy).sum(), (w * dx * dy).sum()
        angles.append(0.5 * np.degrees(np.arctan2(2 * float(cxy), float(cxx - cyy))))
    angles = np.abs(angles)
    assert angles.max() <= 21
    assert np.ptp(angles) > 5  # each image draws its own angle


def test_noise_is_bounded_and_keeps_dtype_and_range():
    images = torch.full((8, 3, 16, 16), 0.5, dtype=torch.float64)
    out = augment(images, AugmentConfig(rot90=False, flip=False, noise_std=0.1), gen())
    assert out.dtype == torch.float64 and out.shape == images.shape
    assert 0 < float(out.std()) < 0.1
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="square"):
        augment(torch.zeros(2, 3, 8, 9), AugmentConfig(), gen())
    with pytest.raises(ValueError, match="floating"):
        augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), AugmentConfig(), gen())


def test_colour_gains_and_gamma_change_each_image_and_plane_within_bounds():
    images = torch.full((4, 3, 8, 8), 0.25)
    config = AugmentConfig(rot90=False, flip=False, colour=0.2, gamma=(0.8, 1.25))
    out = augment(images, config, gen(0))
    per_plane = out.mean(dim=(2, 3))
    # one value per plane of each image, all different; within gain and power bounds
    assert len(torch.unique(per_plane)) == 12
    low = 0.25**1.25 * math.exp(-0.2)
    high = 0.25**0.8 * math.exp(0.2)
    assert float(out.min()) >= low - 1e-6 and float(out.max()) <= high + 1e-6
    # off by default: no draws, the same images
    assert torch.equal(augment(images, AugmentConfig(rot90=False, flip=False), gen(0)), images)
