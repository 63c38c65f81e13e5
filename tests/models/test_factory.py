"""The open_clip factory: what it reports about the weights a model starts from."""

from __future__ import annotations

import logging

from galaxalign_astro.models.checkpoint import load_model
from galaxalign_astro.models.factory import create_clip

RANDOM = "random initialisation (no pretrained weights)"


def test_loading_a_trained_model_does_not_report_random_initialisation(caplog):
    caplog.set_level(logging.INFO, logger="galaxalign_astro")
    loaded = load_model("default")
    assert loaded.spec.name
    assert RANDOM not in caplog.text


def test_a_model_left_random_is_reported(caplog):
    caplog.set_level(logging.INFO, logger="galaxalign_astro")
    create_clip("gxa-micro")
    assert f"gxa-micro: {RANDOM}" in caplog.text
