"""Models: open_clip factory, the tri-modal GalaxAlign model, loss, prototypes and checkpoints."""

from .checkpoint import LoadedModel, ModelSpec, load_model, save_model
from .factory import create_clip, create_model, get_tokenizer, list_architectures
from .loss import LossWeights, class_aware_contrastive, trimodal_loss

__all__ = [
    "LoadedModel",
    "LossWeights",
    "ModelSpec",
    "class_aware_contrastive",
    "create_clip",
    "create_model",
    "get_tokenizer",
    "list_architectures",
    "load_model",
    "save_model",
    "trimodal_loss",
]
