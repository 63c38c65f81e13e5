"""Evaluation: classification heads, calibration, linear probe, similarity-search mAP, reports."""

from .metrics import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    precision_recall_f1,
    reliability_bins,
    retrieval_metrics,
    top_k_accuracy,
)
from .probe import LinearProbe, fit_linear_probe
from .report import summary_markdown, write_report
from .run import REPORT_FILES, embed_images, evaluate_model, evaluate_to_dir

__all__ = [
    "REPORT_FILES",
    "LinearProbe",
    "average_precision",
    "classification_metrics",
    "confusion_matrix",
    "embed_images",
    "evaluate_model",
    "evaluate_to_dir",
    "expected_calibration_error",
    "fit_linear_probe",
    "precision_recall_f1",
    "reliability_bins",
    "retrieval_metrics",
    "summary_markdown",
    "top_k_accuracy",
    "write_report",
]
