"""The linear probe: learns separable classes, deterministic, proper probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from galaxalign_astro.evaluate import fit_linear_probe
from galaxalign_astro.evaluate.probe import L2_GRID


def blobs(n_per_class: int, seed: int, noise_seed: int | None = None):
    """Three overlapping Gaussian classes in 16 dimensions (about 98 % separable)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16))
    labels = np.repeat(np.arange(3), n_per_class)
    noise = np.random.default_rng(noise_seed) if noise_seed is not None else rng
    return centres[labels] + noise.normal(size=(len(labels), 16)), labels


def test_probe_learns_the_classes_deterministically():
    x, y = blobs(40, 0)
    probe = fit_linear_probe(x, y, n_classes=3)
    assert probe.l2 in L2_GRID
    x_test, y_test = blobs(40, 0, noise_seed=5)
    p = probe.predict_proba(x_test)
    assert p.shape == (120, 3)
    assert np.allclose(p.sum(axis=1), 1)
    assert np.mean(p.argmax(1) == y_test) > 0.9
    again = fit_linear_probe(x, y, n_classes=3)
    assert np.array_equal(again.weight, probe.weight)


def test_fixed_l2_and_extra_classes():
    x, y = blobs(10, 2)
    strong = fit_linear_probe(x, y, n_classes=5, l2=10.0)
    weak = fit_linear_probe(x, y, n_classes=5, l2=1e-2)
    assert strong.l2 == 10.0
    assert np.linalg.norm(strong.weight) < np.linalg.norm(weak.weight)
    assert strong.predict_proba(x)[:, 3:].max() < 0.2  # classes never seen stay unlikely


def test_probe_input_checks():
    with pytest.raises(ValueError, match="at least two classes"):
        fit_linear_probe(np.ones((4, 2)), np.zeros(4), n_classes=2)
    with pytest.raises(ValueError, match="features"):
        fit_linear_probe(np.ones((4, 2)), np.zeros(3), n_classes=2)
