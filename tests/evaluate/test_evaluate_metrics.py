"""Metric functions against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from galaxalign_astro.evaluate import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    precision_recall_f1,
    reliability_bins,
    retrieval_metrics,
    top_k_accuracy,
)


def test_average_precision_of_a_known_ranking():
    ranking = [1, 0, 1, 0, 0, 1]  # relevant at ranks 1, 3, 6
    assert average_precision(ranking) == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    assert average_precision(ranking, k=2) == pytest.approx(1 / 2)  # min(k, R) = 2
    assert average_precision(ranking, k=3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision([1, 1, 0], k=10) == 1.0
    assert np.isnan(average_precision([0, 0]))


def test_ece_of_known_bins():
    # four predictions at confidence 0.9 (three right), two at 0.6 (one right)
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 1])
    ece = expected_calibration_error(probs, labels, n_bins=15)
    assert ece == pytest.approx(4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(0.5 - 0.6))
    bins = reliability_bins(probs, labels, n_bins=15)
    assert bins["count"][13] == 4 and bins["count"][8] == 2  # (13/15, 14/15] and (8/15, 9/15]
    assert bins["count"].sum() == 6
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == 0.0


def test_macro_f1_and_per_class_scores():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    per = precision_recall_f1(cm)
    assert per["precision"] == pytest.approx([1 / 2, 2 / 3, 1])
    assert per["recall"] == pytest.approx([1 / 2, 1, 1 / 2])
    assert per["f1"] == pytest.approx([0.5, 0.8, 2 / 3])
    probs = np.eye(4)[y_pred]
    result = classification_metrics(probs, y_true, class_names=["a", "b", "c", "unused"])
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # "unused" has no support
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["per_class"]["unused"]["support"] == 0
    assert result["per_class"]["b"]["precision"] == pytest.approx(2 / 3)


def test_top_k_accuracy():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.35, 0.25]])
    labels = np.array([1, 0, 2])
    assert top_k_accuracy(probs, labels, 1) == 0
    assert top_k_accuracy(probs, labels, 2) == pytest.approx(1 / 3)
    assert top_k_accuracy(probs, labels, 3) == 1


def test_retrieval_on_a_hand_computed_example():
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    # query 0 ranks 1, 3, 2: relevant at 1 -> AP 1
    # query 1 ranks 0, 3, 2: relevant at 1 -> AP 1
    # query 2 ranks 3, 1, 0: relevant at 1 -> AP 1
    # query 3 ranks 1, 0, 2: relevant at 3 -> AP 1/3
    result = retrieval_metrics(emb, labels, class_names=["x", "y"], ks=(1, 2))
    assert result["map"] == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
    assert result["map@1"] == pytest.approx(3 / 4)
    assert result["per_class_ap"] == pytest.approx({"x": 1.0, "y": (1 + 1 / 3) / 2})
    assert result["n_queries"] == 4


def test_retrieval_matches_per_query_average_precision_and_ignores_chunking():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 90)
    emb = rng.normal(size=(90, 8)) + 2 * np.eye(8)[labels]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    expected = []
    for q in range(90):
        others = np.delete(np.arange(90), q)
        order = others[np.argsort(-(emb[others] @ emb[q]), kind="stable")]
        expected.append(average_precision(labels[order] == labels[q]))
    small = retrieval_metrics(emb, labels, chunk=7)
    assert small["map"] == pytest.approx(np.mean(expected))
    assert retrieval_metrics(emb, labels, chunk=512)["map"] == pytest.approx(small["map"])


def test_retrieval_skips_queries_without_a_relevant_candidate():
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    result = retrieval_metrics(emb, np.array([0, 0, 1]))
    assert result["n_queries"] == 2 and result["map"] == 1.0
    assert "1" not in result["per_class_ap"]


def test_input_checks():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="probabilities of shape"):
        classification_metrics(np.ones((2, 3)), np.array([0, 1]), class_names=["a", "b"])
    with pytest.raises(ValueError, match="at least two"):
        retrieval_metrics(np.ones((1, 2)), np.array([0]))


def test_precision_at_k_hand_computed():
    from galaxalign_astro.evaluate.metrics import retrieval_metrics

    # 1-D embeddings on a circle: each query's nearest neighbours are known
    angles = np.array([0.0, 0.1, 0.2, 3.0, 3.1])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 0, 0, 1, 1])
    out = retrieval_metrics(emb, labels, ks=(1, 2))
    # top-1 is same-class for every query; top-2 for the class-1 pair has one miss each
    assert out["precision@1"] == 1.0
    assert out["precision@2"] == np.mean([1, 1, 1, 0.5, 0.5])


def test_approximate_index_recall_in_report():
    from galaxalign_astro.evaluate.run import _approximate_index_recall

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    emb = centres[rng.integers(0, 20, 2000)] + 0.05 * rng.normal(size=(2000, 16))
    out = _approximate_index_recall(emb.astype(np.float32), k=10)
    assert out["recall"] is not None and out["recall"] >= 0.9
    assert _approximate_index_recall(emb[:100].astype(np.float32), k=10)["recall"] is None
