"""Metrics for hierarchical labels: coarse groups and, where known, fine classes.

Real catalogs (Galaxy Zoo) label most galaxies only coarsely (smooth, spiral,
edge-on, merger-irregular). A model predicts fine classes; its coarse
probability of a group is the sum of its classes' probabilities (ours), and:

* **coarse accuracy**: the most probable group is the true one (every labelled row);
* **balanced accuracy**: mean recall over the groups present in the labels;
* **fine accuracy**: the most probable class is the true one, over the rows that
  have a fine label only;
* **ECE** of the coarse probabilities (top-group confidence, equal-width bins);
* **95% confidence intervals**: percentile bootstrap over the rows (ours:
  1,000 resamples, seeded, so a report is reproducible).

Every number is also given per ``source`` when the data says where rows come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import (
    confusion_matrix,
    expected_calibration_error,
    precision_recall_f1,
    reliability_bins,
)

__all__ = ["BOOTSTRAP_RESAMPLES", "coarse_probabilities", "hierarchical_metrics"]

#: bootstrap resamples of the confidence intervals
BOOTSTRAP_RESAMPLES = 1000


def coarse_probabilities(probs: np.ndarray, group_of_class: np.ndarray, n_groups: int):
    """(n, n_groups) sums of the class probabilities of each group."""
    out = np.zeros((len(probs), n_groups), dtype=np.float64)
    for g in range(n_groups):
        out[:, g] = probs[:, group_of_class == g].sum(axis=1)
    return out


def _balanced(true: np.ndarray, pred: np.ndarray, n: int) -> float:
    recall = precision_recall_f1(confusion_matrix(true, pred, n))["recall"]
    present = np.bincount(true, minlength=n) > 0
    return float(recall[present].mean()) if present.any() else float("nan")


def _interval(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def _block(
    coarse: np.ndarray,
    fine: np.ndarray | None,
    group: np.ndarray,
    fine_true: np.ndarray,
    names: Sequence[str],
    n_bins: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    n_groups = len(names)
    pred = coarse.argmax(axis=1)
    cm = confusion_matrix(group, pred, n_groups)
    per = precision_recall_f1(cm)
    has_fine = fine_true >= 0
    out: dict[str, Any] = {
        "n": len(group),
        "coarse_accuracy": float(np.mean(pred == group)) if len(group) else float("nan"),
        "balanced_accuracy": _balanced(group, pred, n_groups),
        "coarse_ece": expected_calibration_error(coarse, group, n_bins),
        "per_group": {
            name: {
                "recall": float(per["recall"][g]),
                "precision": float(per["precision"][g]),
                "support": int(per["support"][g]),
            }
            for g, name in enumerate(names)
        },
        "coarse_confusion_matrix": cm.tolist(),
        "reliability": {
            key: [None if np.isnan(v) else float(v) for v in bins[key]]
            if key != "count"
            else bins[key].tolist()
            for key in ("count", "confidence", "accuracy")
            for bins in [reliability_bins(coarse, group, n_bins)]
        },
        "n_fine": int(has_fine.sum()),
        "fine_accuracy": None,
    }
    fine_hit = None
    if fine is not None and has_fine.any():
        fine_hit = fine.argmax(axis=1)[has_fine] == fine_true[has_fine]
        out["fine_accuracy"] = float(fine_hit.mean())
    if len(group) > 1:
        boot_acc, boot_bal, boot_fine = [], [], []
        hit = pred == group
        fine_rows = np.flatnonzero(has_fine)
        for _ in range(BOOTSTRAP_RESAMPLES):
            pick = rng.integers(0, len(group), len(group))
            boot_acc.append(hit[pick].mean())
            boot_bal.append(_balanced(group[pick], pred[pick], n_groups))
            if fine_hit is not None and len(fine_rows) > 1:
                boot_fine.append(fine_hit[rng.integers(0, len(fine_rows), len(fine_rows))].mean())
        out["ci95"] = {
            "coarse_accuracy": _interval(np.asarray(boot_acc)),
            "balanced_accuracy": _interval(np.asarray(boot_bal)),
            "fine_accuracy": _interval(np.asarray(boot_fine)) if boot_fine else None,
        }
    return out


def hierarchical_metrics(
    probs: np.ndarray | None,
    labels: np.ndarray,
    taxonomy,
    *,
    coarse: np.ndarray | None = None,
    sources: np.ndarray | None = None,
    n_bins: int = 15,
    seed: int = 0,
) -> dict[str, Any]:
    """Coarse and fine metrics of one classifier, overall and per source (JSON-ready).

    Parameters
    ----------
    probs : ndarray or None
        (n, n_classes) class probabilities; None when only ``coarse`` is known
        (a classifier of the groups, e.g. a probe).
    labels : ndarray
        (n,) node labels: classes, or ``n_classes + g`` for group g.
    taxonomy : Taxonomy
        With coarse groups.
    coarse : ndarray, optional
        (n, n_groups) group probabilities; default: summed from ``probs``.
    sources : ndarray, optional
        (n,) origin of each row; adds ``by_source``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_classes, group_of_class = len(taxonomy), taxonomy.group_of_class()
    names = [g.name for g in taxonomy.groups]
    if coarse is None:
        if probs is None:
            msg = "hierarchical_metrics needs class or group probabilities"
            raise ValueError(msg)
        coarse = coarse_probabilities(probs, group_of_class, len(names))
    group = taxonomy.node_groups(labels)
    if np.any(group < 0):
        msg = "a fine label of a class in no coarse group cannot be scored coarsely"
        raise ValueError(msg)
    fine_true = np.where(labels < n_classes, labels, -1)
    rng = np.random.default_rng(seed)
    out = _block(coarse, probs, group, fine_true, names, n_bins, rng)
    out["groups"] = names
    if sources is not None:
        sources = np.asarray(sources).astype(str)
        by_source = {}
        for name in sorted(set(sources)):
            m = sources == name
            fine_m = None if probs is None else probs[m]
            by_source[name] = _block(coarse[m], fine_m, group[m], fine_true[m], names, n_bins, rng)
        out["by_source"] = by_source
    return out
