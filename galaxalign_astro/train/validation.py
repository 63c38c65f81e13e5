"""Validation of a training run: class prototypes, accuracies and the prototype mix.

After every epoch the model is validated with class prototypes (text, symbol and
their mix), and the mix ``alpha`` is tuned on the validation images (ours): every
value of `ALPHA_GRID` is scored in one pass, ties going to the value closest to
0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..inference.prototypes import class_probabilities, mix_prototypes, prototypes_for_classes
from .data import LabelledImages

if TYPE_CHECKING:
    from ..models.trimodal import GalaxAlignModel
    from .config import TrainConfig
    from .optim import Precision
    from .state import Position

__all__ = ["ALPHA_GRID", "VAL_KEYS"]

ALPHA_GRID = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 11))
#: the validation accuracies of an epoch record
VAL_KEYS = ("val_acc_text", "val_acc_symbol", "val_acc_mix")


class _ValidationMixin:
    """Prototypes, image embeddings and validation of `~.trainer.Trainer`."""

    config: TrainConfig
    model: GalaxAlignModel
    tokenizer: Any
    class_texts: list[list[str]]
    class_symbols: Any
    device: torch.device
    precision: Precision
    position: Position
    _members: torch.Tensor
    _prototype_cache: tuple | None

    @torch.no_grad()
    def prototypes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Text and symbol prototypes of the classes with the current model (eval mode)."""
        self.model.eval()
        return prototypes_for_classes(
            self.model, self.tokenizer, texts=self.class_texts, symbols=list(self.class_symbols)
        )

    @torch.no_grad()
    def embed_images(self, data: LabelledImages, batch_size: int | None = None) -> torch.Tensor:
        """Image embeddings of ``data``, ``batch_size`` (default ``eval_batch_size``) at a time."""
        self.model.eval()
        size = batch_size or self.config.eval_batch_size
        out = []
        for start in range(0, len(data), size):
            chunk = torch.from_numpy(data.images[start : start + size]).to(self.device)
            with self.precision.autocast():
                out.append(self.model.encode_image(chunk.float().div_(255.0)).float())
        return torch.cat(out)

    def _current_prototypes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`prototypes` once per optimizer step (validation and saving share them)."""
        key = (self.position.global_step, self.model.symbol_tower)
        if self._prototype_cache is None or self._prototype_cache[0] != key:
            self._prototype_cache = (key, self.prototypes())
        return self._prototype_cache[1]

    def _scores(self, data: LabelledImages, alphas: Sequence[float]) -> dict[float, float]:
        text, symbol = self._current_prototypes()
        emb = self.embed_images(data)
        labels = torch.from_numpy(np.asarray(data.labels)).to(self.device)
        allowed = self._members[labels]  # a coarse label is right for any of its classes
        rows = torch.arange(len(labels), device=self.device)
        out = {}
        for a in alphas:
            probs = class_probabilities(
                emb, mix_prototypes(text, symbol, a), self.model.logit_scale
            )
            out[a] = float(allowed[rows, probs.argmax(1)].float().mean())
        return out

    @torch.no_grad()
    def validate(self, data: LabelledImages) -> dict[str, float]:
        """Accuracies of text, symbol and tuned mixed prototypes, and the tuned ``alpha``.

        One pass: the prototypes and image embeddings are computed once and
        every mix of :data:`ALPHA_GRID` is scored (ties: closest to 0.5).
        """
        scores = self._scores(data, ALPHA_GRID)
        acc, _, alpha = max((acc, -abs(a - 0.5), a) for a, acc in scores.items())
        self.model.train()
        return {
            "val_acc_text": scores[1.0],
            "val_acc_symbol": scores[0.0],
            "val_acc_mix": acc,
            "alpha": float(alpha),
        }
