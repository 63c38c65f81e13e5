"""Typed training configuration: the two GalaxAlign stages are two :class:`StageConfig`.

A stage says which towers exist (symbol tower shared with the image tower, or a
separate copy), which are trained, the loss-pair weights, whether the temperature
is learnt, and its schedule. Stage 1 and stage 2 of the paper are the two default
stages; ablations are other lists of stages, never other code.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..models.loss import LossWeights
from ..preprocess.pipeline import PreprocessConfig

__all__ = ["StageConfig", "TrainConfig", "default_stages", "load_recipe"]

TOWERS = ("image", "text", "symbol")


@dataclass(frozen=True)
class StageConfig:
    """One training stage.

    Parameters
    ----------
    name : str
    epochs : int
    lr : float
        Peak learning rate of the cosine schedule.
    symbol_tower : {'shared', 'separate'}
        'separate' copies the current image tower into a symbol tower when the
        stage starts (if it is not separate already).
    train : tuple of str
        Towers whose weights are updated: any of 'image', 'text', 'symbol'.
    loss_weights : LossWeights
    learn_temperature : bool
    warmup_fraction : float
        Fraction of the stage's steps spent in linear warm-up.
    weight_decay : float
        AdamW decay for weight matrices (never for norms, biases, temperature).
    """

    name: str
    epochs: int = 1
    lr: float = 5e-4
    symbol_tower: str = "shared"
    train: tuple[str, ...] = TOWERS
    loss_weights: LossWeights = field(default_factory=LossWeights)
    learn_temperature: bool = True
    warmup_fraction: float = 0.1
    weight_decay: float = 0.05

    def __post_init__(self) -> None:
        if self.symbol_tower not in ("shared", "separate"):
            msg = f"stage {self.name}: symbol_tower must be 'shared' or 'separate'"
            raise ValueError(msg)
        bad = set(self.train) - set(TOWERS)
        if bad:
            msg = f"stage {self.name}: unknown towers {sorted(bad)}; known: {TOWERS}"
            raise ValueError(msg)
        if isinstance(self.loss_weights, dict):
            object.__setattr__(self, "loss_weights", LossWeights(**self.loss_weights))
        object.__setattr__(self, "train", tuple(self.train))


def default_stages(epochs1: int = 4, epochs2: int = 4, lr: float = 5e-4) -> list[StageConfig]:
    """PAPER.md's two stages: shared visual tower, then a separate symbol tower."""
    return [
        StageConfig("stage1", epochs=epochs1, lr=lr, symbol_tower="shared"),
        StageConfig("stage2", epochs=epochs2, lr=lr * 0.5, symbol_tower="separate"),
    ]


@dataclass
class TrainConfig:
    """Everything a training run needs besides its data."""

    architecture: str = "gxa-tiny"
    pretrained: str | None = None
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    stages: list[StageConfig] = field(default_factory=default_stages)
    batch_size: int = 64
    seed: int = 0
    val_fraction: float = 0.1
    taxonomy: str = "galaxy10_decals"
    symbols: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    augment: bool = True
    grad_clip: float = 1.0
    device: str = "cpu"
    num_workers: int = 0
    name: str = "galaxalign"

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig.from_dict(self.preprocess)
        self.stages = [StageConfig(**s) if isinstance(s, dict) else s for s in self.stages]
        if not self.stages:
            msg = "a training run needs at least one stage"
            raise ValueError(msg)
        if self.batch_size < 2:
            msg = f"batch_size must be at least 2 for contrastive training, got {self.batch_size}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["preprocess"] = self.preprocess.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            msg = f"unknown training settings: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        return cls(**data)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def load_recipe(path: str | Path) -> TrainConfig:
    """Read a TOML recipe into a validated :class:`TrainConfig` (the ``[train]`` table)."""
    text = Path(path).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc})"
        raise ValueError(msg) from None
    try:
        return TrainConfig.from_dict(data.get("train", data))
    except (TypeError, ValueError) as exc:
        msg = f"{path}: {exc}"
        raise ValueError(msg) from None
