"""``train_model``: data source + configuration -> a saved model directory."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import TrainConfig, load_recipe
from .data import LabelledImages, from_catalog, from_simulation, split_stratified
from .trainer import Trainer, TrainResult

__all__ = ["load_training_data", "train_model"]

log = logging.getLogger(__name__)


def load_training_data(
    config: TrainConfig,
    *,
    data: str | None = None,
    n_simulated: int | None = None,
    sim_seed: int = 1,
    workers: int = 1,
) -> LabelledImages:
    """Prepared images from a label catalog or from the simulator."""
    if data is not None:
        return from_catalog(data, config.preprocess, workers=workers)
    if n_simulated is None:
        msg = "give a label catalog or a number of simulated cutouts"
        raise ValueError(msg)
    return from_simulation(n_simulated, config.preprocess, seed=sim_seed, workers=workers)


def train_model(
    *,
    output: str | Path,
    recipe: str | Path | None = None,
    config: TrainConfig | None = None,
    data: str | None = None,
    n_simulated: int | None = None,
    sim_seed: int = 1,
    overrides: dict[str, Any] | None = None,
    epochs1: int | None = None,
    epochs2: int | None = None,
    lr: float | None = None,
    workers: int = 1,
    half: bool = False,
    progress: bool = False,
    command: str | None = None,
) -> TrainResult:
    """Train stage 1 then stage 2 and save the model to ``output``.

    ``recipe`` (TOML) or ``config`` gives the settings; ``overrides`` (None values
    ignored) and the stage options change them.
    """
    if config is None:
        config = load_recipe(recipe) if recipe is not None else TrainConfig()
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "architecture" in changes and changes["architecture"] != config.architecture:
        from ..models.factory import architecture_config

        size = architecture_config(changes["architecture"])["vision_cfg"]["image_size"]
        changes["preprocess"] = replace(config.preprocess, size=int(size))
    config = replace(config, **changes) if changes else config
    stages = list(config.stages)
    for i, epochs in enumerate((epochs1, epochs2)):
        if epochs is not None and i < len(stages):
            stages[i] = replace(stages[i], epochs=epochs)
    if lr is not None:
        stages = [replace(s, lr=lr * s.lr / stages[0].lr) for s in stages]
    config = replace(config, stages=[s for s in stages if s.epochs > 0] or stages[:1])

    images = load_training_data(
        config, data=data, n_simulated=n_simulated, sim_seed=sim_seed, workers=workers
    )
    train_idx, val_idx = split_stratified(images.labels, config.val_fraction, seed=config.seed)
    log.info("training on %d images, validating on %d", len(train_idx), len(val_idx))
    trainer = Trainer(config)
    source = {"data": str(data)} if data else {"simulated": n_simulated, "sim_seed": sim_seed}
    return trainer.fit(
        images.subset(train_idx),
        images.subset(val_idx),
        output=output,
        progress=progress,
        half=half,
        provenance={"command": command, "source": source, "n_train": len(train_idx)},
    )
