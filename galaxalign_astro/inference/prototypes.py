"""Class prototypes: re-exported from :mod:`galaxalign_astro.models.prototypes`.

Prototypes are part of a model (stored beside its weights and mixed when it is
loaded), so they live in ``models/``; this old import path stays for its callers.
"""

from __future__ import annotations

from ..models.prototypes import (
    class_probabilities,
    encode_symbol_images,
    encode_texts,
    mix_prototypes,
    prototypes_for_classes,
)

__all__ = [
    "class_probabilities",
    "encode_symbol_images",
    "encode_texts",
    "mix_prototypes",
    "prototypes_for_classes",
]
