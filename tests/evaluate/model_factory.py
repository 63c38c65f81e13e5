"""An untrained gxa-micro model saved like a trained one: evaluation tests need no training."""

from __future__ import annotations

from pathlib import Path

import torch

from galaxalign_astro.models.checkpoint import ModelSpec, save_model
from galaxalign_astro.models.factory import architecture_config, create_model
from galaxalign_astro.preprocess import PreprocessConfig
from galaxalign_astro.taxonomy import GALAXY10_DECALS


def save_untrained_model(directory: Path, *, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = architecture_config("gxa-micro")
    model = create_model("gxa-micro")
    spec = ModelSpec(
        architecture="gxa-micro",
        architecture_config=config,
        symbol_tower="shared",
        preprocess=PreprocessConfig(size=model.image_size),
        class_keys=GALAXY10_DECALS.keys,
        class_names=GALAXY10_DECALS.names,
        text={},
        symbols={},
        prototype_alpha=0.3,
        name="untrained-micro",
    )
    text = torch.nn.functional.normalize(torch.randn(10, model.embed_dim), dim=-1)
    symbol = torch.nn.functional.normalize(torch.randn(10, model.embed_dim), dim=-1)
    save_model(directory, model, spec, prototypes_text=text, prototypes_symbol=symbol)
    return directory
