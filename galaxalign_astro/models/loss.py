"""The GalaxAlign training loss: one module, used by the trainer and the tests.

Class-aware tri-modal contrastive loss (PAPER.md "Losses"; the exact form is
ours). For two L2-normalised batches ``a``, ``b`` with class labels ``y`` and
logit scale ``s``::

    logits    = s * a @ b.T
    target_ij = 1[y_i == y_j] / sum_k 1[y_i == y_k]
    L(a, b)   = (CE(logits, target) + CE(logits.T, target.T)) / 2

Class-aware (multi-positive) targets are needed because a batch holds many images
of one class that share descriptions; plain CLIP InfoNCE would push them apart.

Hierarchical labels (ours, docs/method.md). With a taxonomy's coarse groups a label
is a *node*: a class, or a group meaning "one of these classes". ``members``
(bool, nodes x classes, :meth:`~galaxalign_astro.taxonomy.Taxonomy.members_matrix`)
says which classes each node may be. Then, for items i and j:

* same node: positive;
* disjoint class sets (a spiral and a smooth galaxy): negative;
* one set inside the other (an image labelled only "spiral" and the text of
  "barred spiral"): unknown, left out of both softmaxes, so a coarse label never
  pushes an item towards or away from a particular fine class.

With every label a class this is exactly the class-aware loss above.

The *prototype* term (ours, weight ``LossWeights.prototype``) supervises what
inference uses: ``p(c|x) = softmax_c(s * f(x) . P_c)`` over the class prototypes,
and a label's loss is ``-log sum_{c in members(label)} p(c|x)``: the usual cross
entropy for a class label, the likelihood of "one of the group" for a coarse one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "PAIRS",
    "LossWeights",
    "class_aware_contrastive",
    "class_targets",
    "node_relation",
    "prototype_loss",
    "trimodal_loss",
]

#: upper bound on exp(logit_scale), as in CLIP
MAX_LOGIT_SCALE = 100.0
#: the three contrastive pairs, in the order their weights are listed
PAIRS = ("image_text", "symbol_text", "image_symbol")


def class_targets(labels: torch.Tensor) -> torch.Tensor:
    """Row-normalised same-class matrix: ``1[y_i == y_j] / n_{y_i}``."""
    same = (labels[:, None] == labels[None, :]).to(torch.float32)
    return same / same.sum(dim=1, keepdim=True)


def node_relation(
    labels_a: torch.Tensor, labels_b: torch.Tensor, members: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(positive, known)`` bool matrices of two label batches (module documentation).

    ``known`` is None when every pair is known (no ``members``, or only class labels).
    """
    if members is None:
        return labels_a[:, None] == labels_b[None, :], None
    a = members[labels_a].to(torch.float32)
    b = members[labels_b].to(torch.float32)
    shared = a @ b.T
    size_a, size_b = a.sum(1, keepdim=True), b.sum(1, keepdim=True).T
    positive = (shared == size_a) & (shared == size_b)
    known = positive | (shared == 0)
    return positive, None if bool(known.all()) else known


def _soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None
) -> torch.Tensor:
    if known is None:
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    logp = F.log_softmax(logits.masked_fill(~known, float("-inf")), dim=1)
    return -(target * torch.where(known, logp, torch.zeros_like(logp))).sum(dim=1).mean()


def _scale(logit_scale: torch.Tensor) -> torch.Tensor:
    return logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def class_aware_contrastive(
    a: torch.Tensor,
    b: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    labels_b: torch.Tensor | None = None,
    members: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric class-aware contrastive loss between embeddings ``a`` and ``b``.

    ``logit_scale`` is the learnable log-temperature; its exponential is clamped
    to :data:`MAX_LOGIT_SCALE`. ``labels_b`` (default ``labels``) labels the rows
    of ``b``; ``members`` makes the labels hierarchical nodes (module documentation).
    """
    logits = _scale(logit_scale) * a @ b.T
    positive, known = node_relation(labels, labels if labels_b is None else labels_b, members)
    pos = positive.to(logits.dtype)
    rows = pos / pos.sum(dim=1, keepdim=True).clamp(min=1)
    cols = pos.T / pos.T.sum(dim=1, keepdim=True).clamp(min=1)
    known_t = None if known is None else known.T
    return 0.5 * (
        _soft_cross_entropy(logits, rows, known) + _soft_cross_entropy(logits.T, cols, known_t)
    )


def prototype_loss(
    embeddings: torch.Tensor,
    prototypes: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    members: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean ``-log sum_{c in members(label)} softmax_c(s * x . P_c)`` (module documentation).

    ``prototypes`` are (n_classes, dim); without ``members`` labels are classes.
    """
    logp = F.log_softmax(_scale(logit_scale) * embeddings @ prototypes.T, dim=1)
    if members is None:
        return F.nll_loss(logp, labels)
    allowed = members[labels]
    return -torch.logsumexp(logp.masked_fill(~allowed, float("-inf")), dim=1).mean()


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms.

    ``image_text``, ``symbol_text``, ``image_symbol``: the three contrastive pairs
    (PAPER.md: 1, 1, 1). ``prototype``: the prototype term (ours; 0 = off).
    """

    image_text: float = 1.0
    symbol_text: float = 1.0
    image_symbol: float = 1.0
    prototype: float = 0.0


def trimodal_loss(
    image: torch.Tensor | None,
    symbol: torch.Tensor | None,
    text: torch.Tensor | None,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    weights: LossWeights = LossWeights(),
    *,
    members: torch.Tensor | None = None,
    prototypes: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the loss terms; pairs with weight 0 (or a missing side) are skipped.

    ``prototypes`` maps a name (``"text"``, ``"symbol"``) to (n_classes, dim) class
    prototypes for the prototype term, which is then the mean over them. Returns
    the total and each term, detached (tensors, so logging needs no device sync).
    """
    operands = {
        "image_text": (image, text),
        "symbol_text": (symbol, text),
        "image_symbol": (image, symbol),
    }
    parts: dict[str, torch.Tensor] = {}
    total: torch.Tensor | None = None
    for pair in PAIRS:
        weight = getattr(weights, pair)
        a, b = operands[pair]
        if not weight or a is None or b is None:
            continue
        value = class_aware_contrastive(a, b, labels, logit_scale, members=members)
        parts[pair] = value.detach()
        total = weight * value if total is None else total + weight * value
    if weights.prototype and image is not None and prototypes:
        terms = [
            prototype_loss(image, p, labels, logit_scale, members) for p in prototypes.values()
        ]
        value = torch.stack(terms).mean()
        parts["prototype"] = value.detach()
        total = weights.prototype * value if total is None else total + weights.prototype * value
    if total is None:
        msg = "every loss pair has weight 0 (or there are no symbols): nothing to train"
        raise ValueError(msg)
    return total, parts
