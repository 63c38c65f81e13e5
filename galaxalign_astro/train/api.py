"""``train_model``: recipe + overrides + data -> a saved model directory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import DataSpec, TrainConfig
from .data import LabelledImages, split_stratified
from .recipe import load_recipe
from .trainer import Trainer, TrainResult

__all__ = ["load_training_data", "oversample", "resolve_config", "train_model"]

log = logging.getLogger(__name__)


def load_training_data(
    config: TrainConfig,
    *,
    data: str | None = None,
    n_simulated: int | None = None,
    sim_seed: int = 1,
    workers: int | None = None,
) -> LabelledImages:
    """Prepared training images of ``config.data`` (or of ``data`` / ``n_simulated``).

    Read by :func:`galaxalign_astro.datasets.load_dataset`: only the data set's
    training split (``config.data.split``), with ``label_fraction`` of its
    labels; its test split is never seen by training.
    """
    from ..datasets import concat_datasets, load_dataset
    from ..taxonomy import get_taxonomy

    specs = config.data.specs
    if data is not None:
        specs = (str(data),)
    elif n_simulated is not None:
        specs = (f"simulated:{n_simulated}:{sim_seed}",)
    if not specs:
        msg = "no training data: give a recipe [data] spec, a data set or catalog, or --simulate N"
        raise ValueError(msg)
    parts = []
    for spec in specs:
        images = load_dataset(
            spec,
            config.preprocess,
            split=config.data.split,
            label_fraction=config.data.label_fraction,
            seed=config.data.split_seed,
            workers=workers or config.data.workers,
            verify=config.data.verify,
        )
        taxonomy = getattr(images, "taxonomy", None)
        if taxonomy is not None and taxonomy.name != get_taxonomy(config.taxonomy).name:
            msg = (
                f"{spec}: its labels are {taxonomy.name} classes but the run is configured for "
                f"{config.taxonomy}; set taxonomy = '{taxonomy.name}' "
                f"(--set taxonomy={taxonomy.name})"
            )
            raise ValueError(msg)
        parts.append(images)
    return parts[0] if len(parts) == 1 else concat_datasets(parts)


def resolve_config(
    *,
    recipe: str | Path | None = None,
    config: TrainConfig | None = None,
    settings: Sequence[str] = (),
    overrides: dict[str, Any] | None = None,
    epochs1: int | None = None,
    epochs2: int | None = None,
    lr: float | None = None,
    data: str | None = None,
    n_simulated: int | None = None,
    sim_seed: int = 1,
) -> TrainConfig:
    """The run's configuration: recipe, then ``--set`` settings, then the named options.

    ``overrides`` maps top-level settings to values (None ignored); changing
    the architecture also sets the preprocessing size to its image size.
    ``epochs1``/``epochs2`` set the first two stages' epochs (stages left with
    0 epochs are dropped); ``lr`` scales every stage's peak rate so that the
    first stage's is ``lr``. ``data``/``n_simulated`` replace the data spec.
    """
    if config is None:
        config = load_recipe(recipe, settings)
    elif settings:
        msg = "settings (key=value) apply to a recipe; pass config or recipe, not both"
        raise ValueError(msg)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "architecture" in changes and changes["architecture"] != config.architecture:
        from ..models.factory import architecture_config

        size = architecture_config(changes["architecture"])["vision_cfg"]["image_size"]
        size = size[0] if isinstance(size, list | tuple) else size
        changes["preprocess"] = replace(config.preprocess, size=int(size))
    config = replace(config, **changes) if changes else config
    stages = list(config.stages)
    for i, epochs in enumerate((epochs1, epochs2)):
        if epochs is not None and i < len(stages):
            stages[i] = replace(stages[i], epochs=epochs)
    if lr is not None:
        stages = [replace(s, lr=lr * s.lr / stages[0].lr) for s in stages]
    config = replace(config, stages=[s for s in stages if s.epochs > 0] or stages[:1])
    if data is not None or n_simulated is not None:
        spec = str(data) if data is not None else f"simulated:{n_simulated}:{sim_seed}"
        config = replace(config, data=replace(config.data, spec=spec))
    return config


def train_model(
    *,
    output: str | Path,
    recipe: str | Path | None = None,
    config: TrainConfig | None = None,
    settings: Sequence[str] = (),
    data: str | None = None,
    n_simulated: int | None = None,
    sim_seed: int = 1,
    overrides: dict[str, Any] | None = None,
    epochs1: int | None = None,
    epochs2: int | None = None,
    lr: float | None = None,
    workers: int | None = None,
    half: bool = False,
    progress: bool = False,
    resume: bool = False,
    command: str | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train every stage and save the model to ``output``.

    ``recipe`` (TOML) or ``config`` gives the settings; ``settings`` are
    ``key=value`` overrides of the recipe; the other options are applied as in
    :func:`resolve_config`. ``resume`` continues the run whose checkpoints are
    in ``output/checkpoints``. Raises
    :class:`~galaxalign_astro.train.interrupt.TrainingInterrupted` when stopped
    by SIGINT/SIGTERM after saving a checkpoint. ``callbacks`` are handed to the
    :class:`~galaxalign_astro.train.trainer.Trainer`.
    """
    config = resolve_config(
        recipe=recipe,
        config=config,
        settings=settings,
        overrides=overrides,
        epochs1=epochs1,
        epochs2=epochs2,
        lr=lr,
        data=data,
        n_simulated=n_simulated,
        sim_seed=sim_seed,
    )
    if workers is not None:
        config = replace(config, data=replace(config.data, workers=workers))
    images = load_training_data(config, workers=workers)
    train_idx, val_idx = split_stratified(images.labels, config.val_fraction, seed=config.seed)
    train_idx = oversample(images, train_idx, config)
    log.info("training on %d images, validating on %d", len(train_idx), len(val_idx))
    trainer = Trainer(config, callbacks=callbacks)
    source = getattr(images, "source", None) or {"data": list(config.data.specs)}
    val = images.subset(val_idx) if len(val_idx) else None
    return trainer.fit(
        images.subset(train_idx),
        val,
        output=output,
        progress=progress,
        half=half,
        resume=resume,
        provenance={
            "command": command,
            "source": _jsonable(source),
            "n_train": len(train_idx),
            "n_val": len(val_idx),
        },
    )


def oversample(images: LabelledImages, rows: np.ndarray, config: TrainConfig) -> np.ndarray:
    """``rows`` with the repeats of ``config.data`` (``repeat`` per spec, ``balance``)."""
    from ..taxonomy import get_taxonomy

    data = config.data
    if data.repeat is None and not data.balance:
        return rows
    info = getattr(images, "info", None) or {}
    part = info.get("part")
    parts = np.zeros(len(images), dtype=np.int64) if part is None else part.astype(np.int64)
    labels = np.asarray(images.labels, dtype=np.int64)
    taxonomy = get_taxonomy(config.taxonomy)
    kind = taxonomy.node_groups(labels) if taxonomy.groups else labels
    times = np.ones(len(rows), dtype=np.int64)
    for p in np.unique(parts[rows]):
        mine = parts[rows] == p
        times[mine] *= data.repeat[p] if data.repeat is not None else 1
        if data.balance:
            counts = {k: int(np.sum(kind[rows][mine] == k)) for k in np.unique(kind[rows][mine])}
            largest = max(counts.values())
            for k, c in counts.items():
                factor = min(8, max(1, round((largest / c) ** data.balance)))
                times[mine & (kind[rows] == k)] *= factor
    if np.all(times == 1):
        return rows
    log.info("oversampling: %d training rows become %d", len(rows), int(times.sum()))
    return np.repeat(rows, times)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, DataSpec):
        return value.to_dict()
    return value
