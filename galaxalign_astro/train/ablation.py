"""The ablation grid of PAPER.md, run as variations of one base configuration.

Variants (each a change of the base :class:`~.config.TrainConfig`, never other code):

``clip_image_text``
    plain CLIP-style fine-tune: image-text loss only, no symbols, one stage of
    the same total length;
``stage1_only``
    images, symbols and text with the shared visual tower for the whole run;
``two_stage``
    GalaxAlign: stage 1 shared, stage 2 with the symbol tower copied;
``two_stage_shared``
    two stages with the same schedule, but the symbol tower stays shared;
``fixed_temperature``
    ``two_stage`` with the temperature frozen at its initial value;
``label_1pct``, ``label_10pct``
    ``two_stage`` on 1% and 10% of the training labels (stratified, nested).

Every variant trains on the same images with the same seed, and is evaluated on
the same held-out images: :func:`galaxalign_astro.evaluate.ablation.run_ablations`
runs the grid (evaluation is a layer above training, see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..models.loss import LossWeights
from .config import StageConfig, TrainConfig

__all__ = ["VARIANTS", "variant_config"]


def _total_epochs(config: TrainConfig) -> int:
    return sum(s.epochs for s in config.stages)


def _first(config: TrainConfig) -> StageConfig:
    return config.stages[0]


def _clip(config: TrainConfig) -> TrainConfig:
    stage = replace(
        _first(config),
        name="image_text",
        epochs=_total_epochs(config),
        symbol_tower="shared",
        loss_weights=LossWeights(1.0, 0.0, 0.0),
    )
    return replace(config, stages=[stage])


def _stage1_only(config: TrainConfig) -> TrainConfig:
    stage = replace(_first(config), epochs=_total_epochs(config), symbol_tower="shared")
    return replace(config, stages=[stage])


def _two_stage_shared(config: TrainConfig) -> TrainConfig:
    return replace(config, stages=[replace(s, symbol_tower="shared") for s in config.stages])


def _fixed_temperature(config: TrainConfig) -> TrainConfig:
    return replace(config, stages=[replace(s, learn_temperature=False) for s in config.stages])


#: variant name -> (change of the base config, fraction of training labels)
VARIANTS: dict[str, tuple[Callable[[TrainConfig], TrainConfig], float]] = {
    "clip_image_text": (_clip, 1.0),
    "stage1_only": (_stage1_only, 1.0),
    "two_stage": (lambda c: c, 1.0),
    "two_stage_shared": (_two_stage_shared, 1.0),
    "fixed_temperature": (_fixed_temperature, 1.0),
    "label_10pct": (lambda c: c, 0.1),
    "label_1pct": (lambda c: c, 0.01),
}


def variant_config(base: TrainConfig, name: str) -> tuple[TrainConfig, float]:
    """The configuration and label fraction of variant ``name``."""
    try:
        change, fraction = VARIANTS[name]
    except KeyError:
        msg = f"unknown ablation variant {name!r}; known: {', '.join(VARIANTS)}"
        raise ValueError(msg) from None
    return replace(change(base), name=f"{base.name}-{name}"), fraction
