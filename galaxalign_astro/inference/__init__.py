"""Inference: streaming classification, zero-shot heads and catalog columns."""

from .run import (
    ClassifySummary,
    Predictor,
    add_morphology_columns,
    classify,
    classify_to_file,
    iter_classify,
)

__all__ = [
    "ClassifySummary",
    "Predictor",
    "add_morphology_columns",
    "classify",
    "classify_to_file",
    "iter_classify",
]
