"""Text modality: plain-word class descriptions and prompt templates (ours)."""

from __future__ import annotations

from .descriptions import DESCRIPTIONS, TEMPLATES, TextConfig, class_texts

__all__ = ["DESCRIPTIONS", "TEMPLATES", "TextConfig", "class_texts"]
