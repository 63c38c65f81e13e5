"""Training: typed configuration, prepared data and the two-stage trainer."""

from .api import load_training_data, resolve_config, train_model
from .config import DataSpec, StageConfig, TrainConfig, default_stages
from .data import LabelledImages, from_catalog, from_simulation, split_stratified, to_uint8
from .interrupt import TrainingInterrupted
from .recipe import apply_overrides, check_config, load_recipe
from .trainer import Trainer, TrainResult

__all__ = [
    "DataSpec",
    "LabelledImages",
    "StageConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "apply_overrides",
    "check_config",
    "default_stages",
    "from_catalog",
    "from_simulation",
    "load_recipe",
    "load_training_data",
    "resolve_config",
    "split_stratified",
    "to_uint8",
    "train_model",
]
