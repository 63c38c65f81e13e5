"""Classification, calibration and retrieval metrics (numpy only).

Conventions (ours where the paper is silent; every report states them):

* per-class precision, recall and F1 are 0 where undefined (no predictions,
  no support); **macro-F1** is the mean F1 over the classes present in the
  true labels, so a class absent from the test set does not count;
* **expected calibration error** uses the top-class confidence in equal-width
  bins ``(k/B, (k+1)/B]`` (the first bin also takes 0) and is
  ``sum_b n_b / N * |accuracy_b - confidence_b|``;
* **retrieval** (PAPER.md "mAP (ours)"): every image is a query against all
  *other* images; candidates are ranked by cosine similarity (ties by row
  order); relevant = same class; AP = mean over the relevant candidates of the
  precision at their rank, over the full ranking. mAP is the mean AP over the
  queries that have at least one relevant candidate. AP@k sums the precision at
  the relevant ranks within the top k and divides by ``min(k, R)`` (R: number
  of relevant candidates), so a perfect ranking scores 1. Per-class AP is the
  mean AP of the queries of that class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "average_precision",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "precision_recall_f1",
    "reliability_bins",
    "retrieval_metrics",
    "top_k_accuracy",
]


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        msg = f"labels must be one-dimensional, got shape {y.shape}"
        raise ValueError(msg)
    return y.astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of images of true class i predicted as j, (n_classes, n_classes)."""
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    if y_true.shape != y_pred.shape:
        msg = f"{len(y_true)} true labels but {len(y_pred)} predictions"
        raise ValueError(msg)
    for name, y in (("true", y_true), ("predicted", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            msg = f"{name} label outside 0..{n_classes - 1}"
            raise ValueError(msg)
    return np.bincount(n_classes * y_true + y_pred, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def precision_recall_f1(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.astype(np.int64),
    }


def top_k_accuracy(probs: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Fraction of images whose true class is among the k most probable."""
    probs, y_true = np.asarray(probs), _labels(y_true)
    k = min(k, probs.shape[1])
    # stable sort on -p: among equal scores the lower class index ranks first
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == y_true[:, None]).any(axis=1))) if len(y_true) else float("nan")


def reliability_bins(
    probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15
) -> dict[str, np.ndarray]:
    """Per-bin count, mean confidence and accuracy of the top-class predictions.

    Bins are ``(k/n_bins, (k+1)/n_bins]``; a confidence of exactly 0 goes in bin 0.
    Empty bins have NaN confidence and accuracy.
    """
    probs, y_true = np.asarray(probs, dtype=np.float64), _labels(y_true)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(index, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"edges": edges, "count": count, "confidence": conf, "accuracy": acc}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """``sum_b n_b / N * |accuracy_b - confidence_b|`` over equal-width confidence bins."""
    bins = reliability_bins(probs, y_true, n_bins)
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    used = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] / total * gaps))


def classification_metrics(
    probs: np.ndarray,
    y_true: np.ndarray,
    *,
    class_names: Sequence[str],
    n_bins: int = 15,
) -> dict[str, Any]:
    """All classification numbers of one classifier, JSON-ready.

    Parameters
    ----------
    probs : ndarray
        (n, n_classes) class probabilities.
    y_true : ndarray
        (n,) true class indices.
    class_names : sequence of str
        Name of each column of ``probs``.
    """
    probs, y_true = np.asarray(probs, dtype=np.float64), _labels(y_true)
    n_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (len(y_true), n_classes):
        msg = f"probabilities of shape {probs.shape}; expected ({len(y_true)}, {n_classes})"
        raise ValueError(msg)
    # stable: ties go to the lower class index, as in top_k_accuracy
    y_pred = np.argsort(-probs, axis=1, kind="stable")[:, 0]
    cm = confusion_matrix(y_true, y_pred, n_classes)
    per = precision_recall_f1(cm)
    present = per["support"] > 0
    bins = reliability_bins(probs, y_true, n_bins)
    return {
        "n": len(y_true),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": float(per["f1"][present].mean()) if present.any() else float("nan"),
        "macro_recall": float(per["recall"][present].mean()) if present.any() else float("nan"),
        "top2_accuracy": top_k_accuracy(probs, y_true, 2),
        "ece": expected_calibration_error(probs, y_true, n_bins),
        "ece_bins": n_bins,
        "per_class": {
            name: {
                "precision": float(per["precision"][i]),
                "recall": float(per["recall"][i]),
                "f1": float(per["f1"][i]),
                "support": int(per["support"][i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "reliability": {
            "count": bins["count"].tolist(),
            "confidence": [None if np.isnan(v) else float(v) for v in bins["confidence"]],
            "accuracy": [None if np.isnan(v) else float(v) for v in bins["accuracy"]],
        },
    }


def average_precision(relevant: np.ndarray, k: int | None = None) -> float:
    """AP of one ranking given as booleans (relevant or not), best-ranked first.

    ``k`` truncates the ranking: AP@k = sum over relevant ranks r <= k of P@r,
    divided by ``min(k, R)``. NaN when nothing is relevant.
    """
    rel = np.asarray(relevant, dtype=bool)
    n_relevant = int(rel.sum())
    if n_relevant == 0:
        return float("nan")
    ranks = np.flatnonzero(rel) + 1
    precision = np.arange(1, n_relevant + 1) / ranks
    if k is None:
        return float(precision.mean())
    return float(precision[ranks <= k].sum() / min(k, n_relevant))


def _chunk_ap(
    rel: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Full-ranking AP and AP@k of many rankings at once (rows of ``rel``)."""
    rank = np.arange(1, rel.shape[1] + 1)
    hits = np.cumsum(rel, axis=1)
    prec = np.where(rel, hits / rank, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = prec.sum(axis=1) / n_relevant
        at_k = {k: prec[:, :k].sum(axis=1) / np.minimum(k, n_relevant) for k in ks}
    return ap, at_k


def retrieval_metrics(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    ks: Sequence[int] = (10, 100),
    chunk: int = 512,
) -> dict[str, Any]:
    """Leave-one-out similarity-search metrics (protocol in the module doc).

    Parameters
    ----------
    embeddings : ndarray
        (n, dim); normalised here, so cosine similarity ranks the candidates.
    labels : ndarray
        (n,) class of each image.
    class_names : sequence of str, optional
        Names for the per-class AP (default: the class indices).
    ks : sequence of int
        Cut-offs of mAP@k.
    chunk : int
        Queries ranked at a time (memory: chunk x n).
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    labels = _labels(labels)
    n = len(labels)
    if emb.ndim != 2 or emb.shape[0] != n:
        msg = f"embeddings of shape {emb.shape} for {n} labels"
        raise ValueError(msg)
    if n < 2:
        msg = "similarity search needs at least two images"
        raise ValueError(msg)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    counts = np.bincount(labels)
    ap = np.empty(n)
    ap_k = {k: np.empty(n) for k in ks}
    prec_k = {k: np.empty(n) for k in ks}
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sim = emb[start:stop] @ emb.T
        rows = np.arange(stop - start)
        sim[rows, np.arange(start, stop)] = -np.inf  # the query is not its own candidate
        order = np.argsort(-sim, axis=1, kind="stable")[:, : n - 1]
        rel = labels[order] == labels[start:stop, None]
        n_relevant = counts[labels[start:stop]] - 1
        ap[start:stop], chunk_k = _chunk_ap(rel, n_relevant, ks)
        for k in ks:
            ap_k[k][start:stop] = chunk_k[k]
            prec_k[k][start:stop] = rel[:, :k].mean(axis=1)
    valid = counts[labels] > 1
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(counts))]
    per_class = {}
    for c in np.unique(labels[valid]):
        per_class[names[c]] = float(ap[valid & (labels == c)].mean())
    return {
        "protocol": (
            "leave-one-out: every image queries all others by cosine similarity; relevant = "
            "same class; AP over the full ranking; mAP = mean over queries with a relevant "
            "candidate; AP@k normalised by min(k, R)"
        ),
        "n_queries": int(valid.sum()),
        "map": float(ap[valid].mean()) if valid.any() else float("nan"),
        **{f"map@{k}": float(ap_k[k][valid].mean()) if valid.any() else float("nan") for k in ks},
        **{
            f"precision@{k}": float(prec_k[k][valid].mean()) if valid.any() else float("nan")
            for k in ks
        },
        "per_class_ap": per_class,
    }
