"""Rendering of the built-in symbol families and the symbol bank."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from galaxalign_astro.symbols import (
    SYMBOL_FAMILIES,
    SymbolConfig,
    register_symbol_family,
    render_symbol,
    symbol_bank,
    symbol_params,
)
from galaxalign_astro.taxonomy import GALAXY10_DECALS, GALAXY_MNIST

KEYS = GALAXY10_DECALS.keys


def _axis_ratio(img: np.ndarray) -> float:
    """sqrt(minor / major eigenvalue) of the intensity-weighted second moments."""
    grey = img[..., 0].astype(float)
    y, x = np.mgrid[: grey.shape[0], : grey.shape[1]]
    cov = np.cov(np.stack([x.ravel(), y.ravel()]), aweights=grey.ravel())
    lo, hi = np.linalg.eigvalsh(cov)
    return float(np.sqrt(lo / hi))


def _centroid(img: np.ndarray) -> np.ndarray:
    grey = img[..., 0].astype(float)
    y, x = np.mgrid[: grey.shape[0], : grey.shape[1]]
    return np.array([(grey * x).sum(), (grey * y).sum()]) / grey.sum()


def test_every_taxonomy_class_has_a_family():
    assert set(GALAXY10_DECALS.keys) <= set(SYMBOL_FAMILIES)
    assert set(GALAXY_MNIST.keys) <= set(SYMBOL_FAMILIES)


@pytest.mark.parametrize("size", [16, 64, 224])
@pytest.mark.parametrize("key", KEYS)
def test_render_every_class_at_several_sizes(key, size):
    img = render_symbol(key, size=size)
    assert img.shape == (size, size, 3)
    assert img.dtype == np.uint8
    # grey drawing: the three channels are equal
    assert np.array_equal(img[..., 0], img[..., 1])
    assert np.array_equal(img[..., 0], img[..., 2])
    assert img.max() > 150, "drawing too faint"
    # light on black, nothing touching the border (strokes are >= 1 px wide, so
    # the thin ends of tails may touch the edge of a 16 px symbol)
    limit = 2 if size >= 64 else 40
    assert img[[0, -1]].max() <= limit and img[:, [0, -1]].max() <= limit
    # centred within 8% of the image side
    assert np.all(np.abs(_centroid(img) - (size - 1) / 2) < 0.08 * size)


def test_canonical_is_deterministic_and_seeded_variants_reproduce():
    for key in KEYS:
        assert np.array_equal(render_symbol(key, size=48), render_symbol(key, size=48))
        a = render_symbol(key, size=48, rng=7)
        b = render_symbol(key, size=48, rng=np.random.default_rng(7))
        assert np.array_equal(a, b)
        assert not np.array_equal(a, render_symbol(key, size=48, rng=8))


def test_bank_shape_determinism_and_canonical_variant_zero():
    config = SymbolConfig(variants=4, seed=3)
    bank = symbol_bank(KEYS, size=32, config=config)
    assert bank.shape == (len(KEYS), 4, 32, 32, 3)
    assert bank.dtype == np.uint8
    assert np.array_equal(bank, symbol_bank(KEYS, size=32, config=config))
    for i, key in enumerate(KEYS):
        assert np.array_equal(bank[i, 0], render_symbol(key, size=32))
    other = symbol_bank(KEYS, size=32, config=SymbolConfig(variants=4, seed=4))
    assert np.array_equal(other[:, 0], bank[:, 0])
    assert not np.array_equal(other[:, 1:], bank[:, 1:])


def test_bank_variants_depend_on_key_not_on_the_other_keys():
    config = SymbolConfig(variants=3, seed=11)
    full = symbol_bank(KEYS, size=32, config=config)
    sub = symbol_bank(GALAXY_MNIST.keys, size=32, config=config)
    for j, key in enumerate(GALAXY_MNIST.keys):
        assert np.array_equal(sub[j], full[KEYS.index(key)])


def test_variants_differ_from_each_other():
    bank = symbol_bank(KEYS, size=64, config=SymbolConfig(variants=6)).astype(float)
    for i, key in enumerate(KEYS):
        for a, b in itertools.combinations(range(6), 2):
            diff = np.abs(bank[i, a] - bank[i, b]).mean()
            assert diff > 1.0, f"{key} variants {a} and {b} nearly identical ({diff:.2f})"


def test_classes_differ_from_each_other():
    icons = np.stack([render_symbol(k, size=64) for k in KEYS]).astype(float)
    diffs = [
        np.abs(icons[i] - icons[j]).mean() for i, j in itertools.combinations(range(len(KEYS)), 2)
    ]
    # measured: mean 21.9, smallest 4.8 (edge-on with vs without bulge), grey levels
    assert np.mean(diffs) > 15
    assert min(diffs) > 3


def test_elongation_orders_the_smooth_and_edge_on_classes():
    q = {k: _axis_ratio(render_symbol(k, size=128)) for k in KEYS}
    assert q["round_smooth"] > 0.98
    assert 0.5 < q["in_between_smooth"] < 0.7
    assert 0.15 < q["cigar_smooth"] < 0.35
    assert q["edge_on_no_bulge"] < 0.1
    assert q["round_smooth"] / q["edge_on_no_bulge"] > 10
    # the bulge makes an edge-on disk rounder
    assert q["edge_on_bulge"] > 2 * q["edge_on_no_bulge"]


def test_round_symbol_is_symmetric():
    img = render_symbol("round_smooth", size=96).astype(int)
    assert np.abs(img - img[::-1]).max() <= 1
    assert np.abs(img - img[:, ::-1]).max() <= 1
    assert np.abs(img - img.transpose(1, 0, 2)).max() <= 1
    for _ in range(3):
        q = _axis_ratio(render_symbol("round_smooth", size=96, rng=_))
        assert q > 0.92


def test_edge_on_bulge_has_light_above_the_disk():
    size = 96
    centre = slice(size // 2 - 4, size // 2 + 4)
    # the disk is 2.4 px thick either side, the bulge 11.5 px in radius
    above = slice(size // 2 - 9, size // 2 - 4)
    with_bulge = render_symbol("edge_on_bulge", size=size)[above, centre, 0]
    without = render_symbol("edge_on_no_bulge", size=size)[above, centre, 0]
    assert with_bulge.mean() > 100
    assert without.mean() < 5


def _arm_crossings(img: np.ndarray, r_from: float, r_to: float) -> int:
    """Count bright runs along the ray from the centre to the right."""
    size = img.shape[0]
    row = img[size // 2, :, 0].astype(float)
    ray = row[int(size / 2 * (1 + r_from)) : int(size / 2 * (1 + r_to))]
    lit = ray > 0.5 * ray.max()
    return int(np.count_nonzero(lit[1:] & ~lit[:-1]) + lit[0])


def test_tight_spiral_winds_more_than_loose():
    tight = render_symbol("unbarred_tight_spiral", size=224, variant_params={"disc": 0.0})
    loose = render_symbol("unbarred_loose_spiral", size=224, variant_params={"disc": 0.0})
    n_tight = _arm_crossings(tight, 0.2, 0.95)
    n_loose = _arm_crossings(loose, 0.2, 0.95)
    assert n_tight >= 3
    assert n_tight > n_loose


def test_variant_params_override_and_mirror():
    base = render_symbol("unbarred_loose_spiral", size=64)
    three = render_symbol("unbarred_loose_spiral", size=64, variant_params={"n_arms": 3})
    assert not np.array_equal(base, three)
    assert symbol_params("unbarred_loose_spiral", variant_params={"n_arms": 3})["n_arms"] == 3
    mirrored = render_symbol("unbarred_loose_spiral", size=64, variant_params={"mirror": True})
    assert np.abs(mirrored.astype(int) - base[:, ::-1].astype(int)).max() <= 1
    assert not np.array_equal(mirrored, base)


def test_arm_count_follows_config():
    config = SymbolConfig(arm_counts=(4,))
    for seed in range(3):
        assert symbol_params("barred_spiral", rng=seed, config=config)["n_arms"] == 4


def test_unknown_key_and_parameter_raise():
    with pytest.raises(ValueError, match=r"known: .*round_smooth"):
        render_symbol("lenticular", size=32)
    with pytest.raises(ValueError, match="lenticular"):
        symbol_bank(["round_smooth", "lenticular"], size=32)
    with pytest.raises(ValueError, match=r"unknown symbol parameters \['arms'\]"):
        render_symbol("barred_spiral", size=32, variant_params={"arms": 3})


def test_user_can_register_a_family(monkeypatch):
    monkeypatch.setattr(
        "galaxalign_astro.symbols.registry.SYMBOL_FAMILIES", dict(SYMBOL_FAMILIES), raising=True
    )
    from galaxalign_astro.symbols import registry

    def sample(rng, config):
        return {"radius": float(rng.uniform(0.4, 0.7))}

    @register_symbol_family("ring", canonical={"radius": 0.6}, sample=sample)
    def draw_ring(canvas, p):
        r = p["radius"]
        canvas.ellipse(0.0, 0.0, r, r, profile="flat")
        canvas.ellipse(0.0, 0.0, r - 0.1, r - 0.1, profile="flat", value=0.0, over=True)

    assert "ring" in registry.SYMBOL_FAMILIES
    img = render_symbol("ring", size=64)
    assert img[32, 32, 0] == 0  # hollow centre
    assert img[32, 32 + int(0.55 * 32), 0] == 255  # on the ring
    bank = symbol_bank(["ring", "round_smooth"], size=32, config=SymbolConfig(variants=3))
    assert bank.shape == (2, 3, 32, 32, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_symbol_family("ring")(draw_ring)


def test_random_variants_stay_inside_the_image_and_visible():
    bank = symbol_bank(KEYS, size=48, config=SymbolConfig(variants=12, seed=5))
    border = np.concatenate([bank[:, :, [0, -1]].ravel(), bank[:, :, :, [0, -1]].ravel()])
    assert border.max() <= 5
    assert bank.reshape(len(KEYS) * 12, -1).max(axis=1).min() > 120
