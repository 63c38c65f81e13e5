"""Preprocessing: from a read cutout to the (3, size, size) model input."""

from .pipeline import PreparedImage, PreprocessConfig, prepare, resize_planes
from .stretch import STRETCHES, apply_stretch, asinh_stretch, dr2_rgb, lupton_rgb

__all__ = [
    "STRETCHES",
    "PreparedImage",
    "PreprocessConfig",
    "apply_stretch",
    "asinh_stretch",
    "dr2_rgb",
    "lupton_rgb",
    "prepare",
    "resize_planes",
]
