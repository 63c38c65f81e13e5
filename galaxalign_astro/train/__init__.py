"""Training: typed configuration, prepared data and the two-stage trainer."""

from .api import load_training_data, train_model
from .config import StageConfig, TrainConfig, default_stages, load_recipe
from .data import LabelledImages, from_catalog, from_simulation, split_stratified
from .trainer import Trainer, TrainResult

__all__ = [
    "LabelledImages",
    "StageConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "default_stages",
    "from_catalog",
    "from_simulation",
    "load_recipe",
    "load_training_data",
    "split_stratified",
    "train_model",
]
