"""Simulated Legacy-Surveys-like g,r,z galaxy cutouts with Galaxy10 DECaLS labels.

See ``docs/simulator.md`` for the physics, the class definitions and the output
formats.
"""

from __future__ import annotations

from .config import BANDS, DEFAULT_CONFIG, ZERO_POINT, SimulationConfig
from .cutout import (
    TRUTH_COLUMNS,
    SimulatedBatch,
    SimulatedCutout,
    balanced_label,
    cutout_header,
    simulate_batch,
    simulate_cutout,
)
from .io import GALAXY10_TO_MNIST, LABELS_FILE, cutout_filename, write_simulated
from .memory import tune_allocator
from .montage import preview_montage

__all__ = [
    "BANDS",
    "DEFAULT_CONFIG",
    "GALAXY10_TO_MNIST",
    "LABELS_FILE",
    "TRUTH_COLUMNS",
    "ZERO_POINT",
    "SimulatedBatch",
    "SimulatedCutout",
    "SimulationConfig",
    "balanced_label",
    "cutout_filename",
    "cutout_header",
    "preview_montage",
    "simulate_batch",
    "simulate_cutout",
    "tune_allocator",
    "write_simulated",
]
