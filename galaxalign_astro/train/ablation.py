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
the same held-out images with :func:`galaxalign_astro.evaluate.evaluate_model`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..models.loss import LossWeights
from .config import StageConfig, TrainConfig

__all__ = ["VARIANTS", "ablation_table", "run_ablations", "variant_config"]

log = logging.getLogger(__name__)


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


def run_ablations(
    base: TrainConfig,
    output: str | Path,
    *,
    test_data: str,
    variants: Sequence[str] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train and evaluate every variant; return one result row per variant.

    ``base.data.spec`` gives the training images (its ``train`` split),
    ``test_data`` the evaluation images (a data spec, all of it).
    """
    from ..datasets import load_dataset
    from ..datasets.splits import few_shot_indices
    from ..evaluate import evaluate_model
    from ..models.checkpoint import load_model
    from .api import load_training_data
    from .data import split_stratified
    from .trainer import Trainer

    if base.data.spec is None:
        msg = "the base configuration names no training data ([data] spec)"
        raise ValueError(msg)
    names = list(variants or VARIANTS)
    for name in names:
        variant_config(base, name)  # fail on an unknown name before any work
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    images = load_training_data(base)
    test = load_dataset(test_data, base.preprocess, split="all", workers=base.data.workers)
    train_idx, val_idx = split_stratified(images.labels, base.val_fraction, seed=base.seed)
    train_all, val = images.subset(train_idx), images.subset(val_idx)
    rows = []
    for name in names:
        config, fraction = variant_config(base, name)
        train = train_all
        if fraction < 1.0:
            train = train_all.subset(few_shot_indices(train_all.labels, fraction, seed=base.seed))
        # a few-shot subset smaller than a batch still takes optimizer steps
        config = replace(config, batch_size=max(2, min(config.batch_size, len(train))))
        log.info("ablation %s: %d training images", name, len(train))
        result = Trainer(config).fit(train, val, output=out / name, progress=progress)
        report = evaluate_model(load_model(out / name), test, train=train)
        mix = report["classification"]["mix"]
        probe = report["classification"].get("probe") or {}
        rows.append(
            {
                "variant": name,
                "stages": "+".join(
                    f"{s.name}({s.symbol_tower},{s.epochs}ep)" for s in config.stages
                ),
                "label_fraction": fraction,
                "n_train": len(train),
                "accuracy": mix["accuracy"],
                "macro_f1": mix["macro_f1"],
                "probe_accuracy": probe.get("accuracy", float("nan")),
                "map": report["retrieval"]["map"],
                "alpha": result.alpha,
            }
        )
    (out / "ablation.md").write_text(ablation_table(rows, base=base, test_data=test_data))
    return rows


def ablation_table(rows: Sequence[dict[str, Any]], *, base: TrainConfig, test_data: str) -> str:
    """Markdown comparison table of :func:`run_ablations` rows."""
    lines = [
        f"Base: `{base.architecture}`, data `{base.data.spec}` (train split), "
        f"test `{test_data}`, seed {base.seed}.",
        "",
        "| variant | stages | labels | n train | accuracy | macro-F1 | probe acc. | mAP | alpha |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['stages']} | {r['label_fraction']:.0%} | {r['n_train']} | "
            f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['probe_accuracy']:.3f} | "
            f"{r['map']:.3f} | {r['alpha']:.1f} |"
        )
    return "\n".join(lines) + "\n"
