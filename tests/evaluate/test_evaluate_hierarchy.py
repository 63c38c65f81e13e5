"""Coarse and fine metrics on hierarchically labelled data, per source, with intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from galaxalign_astro.evaluate import evaluate_to_dir
from galaxalign_astro.evaluate.hierarchy import hierarchical_metrics
from galaxalign_astro.taxonomy import GALAXY10_DECALS as G10
from tests.datasets.test_datasets_catalog import catalog  # noqa: F401  (fixture)
from tests.evaluate.model_factory import save_untrained_model

SMOOTH, SPIRAL, EDGE, MERGER = (
    G10.group_label(g) for g in ("smooth", "spiral", "edge-on", "merger-irregular")
)


def one_hot(classes, n=10):
    probs = np.full((len(classes), n), 0.01)
    probs[np.arange(len(classes)), classes] = 0.91
    return probs


def test_hand_counted_coarse_balanced_and_fine_accuracy():
    # predicted classes: Round Smooth, Barred Spiral, Barred Spiral, Merging, Round Smooth
    probs = one_hot([2, 5, 5, 1, 2])
    # true: smooth, spiral, Unbarred Tight Spiral (fine), Merging (fine), spiral
    labels = np.array([SMOOTH, SPIRAL, 6, 1, SPIRAL])
    sources = np.array(["a", "a", "b", "b", "b"])
    m = hierarchical_metrics(probs, labels, G10, sources=sources)
    # coarse right: rows 0, 1, 2 (tight spiral -> spiral), 3; row 4 (spiral -> smooth) wrong
    assert m["coarse_accuracy"] == pytest.approx(4 / 5)
    # recalls: smooth 1/1, spiral 2/3, merger 1/1 -> balanced (1 + 2/3 + 1) / 3
    assert m["balanced_accuracy"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert m["per_group"]["spiral"]["recall"] == pytest.approx(2 / 3)
    # fine labels on rows 2 (tight, predicted barred: wrong) and 3 (merging: right)
    assert m["n_fine"] == 2 and m["fine_accuracy"] == pytest.approx(0.5)
    assert m["coarse_confusion_matrix"][1] == [1, 2, 0, 0]  # true spiral row
    lo, hi = m["ci95"]["coarse_accuracy"]
    assert lo <= 0.8 <= hi
    assert m["by_source"]["a"]["coarse_accuracy"] == pytest.approx(1.0)
    assert m["by_source"]["b"]["coarse_accuracy"] == pytest.approx(2 / 3)
    assert m["by_source"]["b"]["fine_accuracy"] == pytest.approx(0.5)


def test_group_probabilities_are_sums_of_their_classes():
    probs = np.zeros((1, 10))
    probs[0, [5, 6, 7]] = 0.2  # spiral 0.6 in total
    probs[0, 2] = 0.4  # the single most probable class is smooth
    m = hierarchical_metrics(probs, np.array([SPIRAL]), G10)
    assert m["coarse_accuracy"] == 1.0


def test_evaluate_a_label_catalog_split_per_source(tmp_path, catalog):  # noqa: F811
    model = save_untrained_model(tmp_path / "micro")
    result = evaluate_to_dir(model, catalog, tmp_path / "report", split="val")
    tree = result["hierarchical"]["mix"]
    assert tree["n"] == 2 and set(tree["by_source"]) == {"gz1", "gz2"}
    assert result["retrieval"]["level"] == "coarse"
    # the probe trains on the train split's coarse and fine labels, at the coarse level
    assert result["hierarchical"]["probe"]["level"] == "coarse"
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["data"]["coarse_only_counts"]["edge-on"] == 1
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Coarse classes" in text and "| gz1 |" in text
