"""Class-aware tri-modal contrastive loss (PAPER.md "Losses"; the exact form is ours).

For two L2-normalised batches ``a``, ``b`` with class labels ``y`` and logit scale
``s``::

    logits    = s * a @ b.T
    target_ij = 1[y_i == y_j] / sum_k 1[y_i == y_k]
    L(a, b)   = (CE(logits, target) + CE(logits.T, target.T)) / 2

Class-aware (multi-positive) targets are needed because a batch holds many images
of one class that share descriptions; plain CLIP InfoNCE would push them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossWeights", "class_aware_contrastive", "class_targets", "trimodal_loss"]

#: upper bound on exp(logit_scale), as in CLIP
MAX_LOGIT_SCALE = 100.0


def class_targets(labels: torch.Tensor) -> torch.Tensor:
    """Row-normalised same-class matrix: ``1[y_i == y_j] / n_{y_i}``."""
    same = (labels[:, None] == labels[None, :]).to(torch.float32)
    return same / same.sum(dim=1, keepdim=True)


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def class_aware_contrastive(
    a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric class-aware contrastive loss between embeddings ``a`` and ``b``.

    ``logit_scale`` is the learnable log-temperature; its exponential is clamped
    to :data:`MAX_LOGIT_SCALE`.
    """
    scale = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
    logits = scale * a @ b.T
    target = class_targets(labels).to(logits.dtype)
    return 0.5 * (_soft_cross_entropy(logits, target) + _soft_cross_entropy(logits.T, target.T))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three pairs: image-text, symbol-text, image-symbol (PAPER.md: 1, 1, 1)."""

    image_text: float = 1.0
    symbol_text: float = 1.0
    image_symbol: float = 1.0


def trimodal_loss(
    image: torch.Tensor,
    symbol: torch.Tensor | None,
    text: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the three pair losses; pairs with weight 0 (or no symbols) are skipped.

    Returns the total and the value of each pair for logging.
    """
    parts: dict[str, torch.Tensor] = {}
    if weights.image_text:
        parts["image_text"] = class_aware_contrastive(image, text, labels, logit_scale)
    if symbol is not None and weights.symbol_text:
        parts["symbol_text"] = class_aware_contrastive(symbol, text, labels, logit_scale)
    if symbol is not None and weights.image_symbol:
        parts["image_symbol"] = class_aware_contrastive(image, symbol, labels, logit_scale)
    if not parts:
        msg = "every loss pair has weight 0 (or there are no symbols): nothing to train"
        raise ValueError(msg)
    total = sum(getattr(weights, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}
