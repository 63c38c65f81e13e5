"""The ablation grid of PAPER.md: every variant trained, then evaluated on the same images.

The variants are configurations (:data:`galaxalign_astro.train.ablation.VARIANTS`);
this module trains each on the same images with the same seed and evaluates it on
the same held-out images with :func:`~galaxalign_astro.evaluate.evaluate_model`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..train.ablation import VARIANTS, variant_config
from ..train.config import TrainConfig

__all__ = ["ablation_table", "run_ablations"]

log = logging.getLogger(__name__)


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
    from ..datasets.prepared import split_stratified
    from ..datasets.splits import few_shot_indices
    from ..models.checkpoint import load_model
    from ..train.api import load_training_data
    from ..train.trainer import Trainer
    from .run import evaluate_model

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
