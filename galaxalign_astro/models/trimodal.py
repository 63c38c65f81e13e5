"""The tri-modal GalaxAlign model: image, symbol and text towers in one space.

Wraps an open_clip ``CLIP``: its visual tower encodes galaxy images, its text
tower encodes descriptions, and symbols go either through the visual tower
itself (stage 1, *shared*) or through ``symbol_visual``, an exact copy of it made
when stage 2 starts (*separate*). Inputs are images in [0, 1]; the model applies
the backbone's mean/std normalisation itself so data loading never needs to know it.

Towers with batch normalisation (the timm CNNs): while the tower is shared, symbols
are normalised by their own batch statistics but do not update the running
statistics, so those describe galaxy images only, which is what inference sees
(ours; a ViT has no such statistics and is unaffected).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GalaxAlignModel", "frozen_norm_statistics"]


@contextlib.contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Batch norms in ``module`` keep their running statistics inside the block.

    In training mode they still normalise by the batch's own statistics (momentum
    0 leaves the running mean and variance as they are); other layers are untouched.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [
        (m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
        for m in norms
    ]
    try:
        for m in norms:
            m.momentum = 0.0
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class GalaxAlignModel(nn.Module):
    """Image, symbol and text encoders sharing one embedding space."""

    # open_clip's CLIP / CustomTextCLIP, reached through nn.Module attribute lookup
    clip: Any
    symbol_visual: Any
    image_mean: torch.Tensor
    image_std: torch.Tensor

    def __init__(self, clip: nn.Module, *, architecture: str, config: dict[str, Any]) -> None:
        super().__init__()
        self.clip = clip
        self.architecture = architecture
        self.config = config
        self.symbol_visual = None
        pre = getattr(clip.visual, "preprocess_cfg", {}) or {}
        mean = pre.get("mean", (0.48145466, 0.4578275, 0.40821073))
        std = pre.get("std", (0.26862954, 0.26130258, 0.27577711))
        self.register_buffer("image_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> int:
        size = self.clip.visual.image_size
        return int(size[0] if isinstance(size, tuple | list) else size)

    @property
    def embed_dim(self) -> int:
        return int(self.config["embed_dim"])

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    @property
    def symbol_tower(self) -> str:
        return "shared" if self.symbol_visual is None else "separate"

    def split_symbol_tower(self) -> None:
        """Give symbols their own tower: an exact copy of the current image tower."""
        self.symbol_visual = copy.deepcopy(self.clip.visual)

    def _normalise_input(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.image_mean) / self.image_std

    def encode_image(self, images: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Embed galaxy images (B, 3, S, S) in [0, 1]."""
        features = self.clip.visual(self._normalise_input(images))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_symbol(self, symbols: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Embed schematic symbols (B, 3, S, S) in [0, 1]."""
        if self.symbol_visual is not None:
            features = self.symbol_visual(self._normalise_input(symbols))
        else:
            with frozen_norm_statistics(self.clip.visual):
                features = self.clip.visual(self._normalise_input(symbols))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Embed tokenised descriptions (B, context_length)."""
        return self.clip.encode_text(tokens, normalize=normalize)

    def towers(self) -> dict[str, nn.Module]:
        """The trainable parts by name: ``image``, ``text``, ``symbol`` (when separate)."""
        clip = self.clip
        text_parts = nn.ModuleList(
            [
                m
                for m in (
                    getattr(clip, "transformer", None),
                    getattr(clip, "token_embedding", None),
                    getattr(clip, "ln_final", None),
                    getattr(clip, "text", None),
                )
                if m is not None
            ]
        )
        out: dict[str, nn.Module] = {"image": clip.visual, "text": text_parts}
        if self.symbol_visual is not None:
            out["symbol"] = self.symbol_visual
        return out

    def text_parameters(self) -> list[nn.Parameter]:
        """Text-tower parameters, including free tensors open_clip keeps on CLIP itself."""
        params = list(self.towers()["text"].parameters())
        for name in ("positional_embedding", "text_projection"):
            value = getattr(self.clip, name, None)
            if isinstance(value, nn.Parameter):
                params.append(value)
        return params
