"""Optimizer, learning-rate schedule and mixed precision of a training stage.

AdamW with two parameter groups (CLIP's recipe): weight matrices decay; norms,
biases, 1-d embeddings and the temperature do not. The schedule is a linear
warm-up then a cosine (or constant) learning rate, defined on optimizer steps so
its length follows from the data set size. Mixed precision is bf16 autocast on
CUDA where the GPU supports it, else fp16 with a gradient scaler; never on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import GalaxAlignWarning

__all__ = [
    "NORM_TYPES",
    "Precision",
    "WarmupCosine",
    "build_optimizer",
    "param_groups",
    "resolve_precision",
]

log = logging.getLogger(__name__)

#: modules whose parameters never decay
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm2d,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def _norm_parameter_ids(model: nn.Module) -> set[int]:
    ids: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_TYPES) or "norm" in type(module).__name__.lower()
        if is_norm:
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def param_groups(
    params: Iterable[tuple[str, nn.Parameter]],
    *,
    weight_decay: float,
    model: nn.Module | None = None,
) -> list[dict]:
    """AdamW groups: decay for weight matrices, none for norms, biases, scalars, temperature.

    A parameter is exempt when it belongs to a normalisation module of
    ``model`` (by type, or a class name containing 'norm', which covers timm's
    and open_clip's own LayerNorm classes), has fewer than 2 dimensions (biases,
    gains, class embeddings), or is the logit scale.
    """
    norms = _norm_parameter_ids(model) if model is not None else set()
    decay, no_decay = [], []
    for name, p in params:
        if id(p) in norms or p.ndim < 2 or name.endswith("bias") or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    params: list[tuple[str, nn.Parameter]],
    lr: float,
    weight_decay: float,
    *,
    model: nn.Module | None = None,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-6,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`."""
    groups = param_groups(params, weight_decay=weight_decay, model=model)
    if not groups:
        msg = "no trainable parameters: every tower of the stage is frozen"
        raise ValueError(msg)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


@dataclass
class WarmupCosine:
    """Learning-rate factor of optimizer step ``s``: linear warm-up, then cosine or constant.

    A plain-data callable, so ``LambdaLR.state_dict()`` stores it and a resumed
    run continues the same curve.
    """

    total: int
    warmup: int
    min_fraction: float = 0.0
    cosine: bool = True

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / max(1, self.warmup)
        if not self.cosine:
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_fraction + (1.0 - self.min_fraction) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None: full precision) and whether a gradient scaler is needed."""

    dtype: torch.dtype | None
    scaler: bool
    device_type: str

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.scaler else None


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """Mixed-precision mode for ``requested`` ('auto', 'fp32', 'bf16', 'fp16') on ``device``."""
    if device.type != "cuda":
        if requested in ("bf16", "fp16"):
            import warnings

            warnings.warn(
                f"precision {requested!r} ignored: mixed precision is only used on CUDA",
                GalaxAlignWarning,
                stacklevel=2,
            )
        return Precision(None, False, device.type)
    if requested == "fp32":
        return Precision(None, False, "cuda")
    bf16_ok = torch.cuda.is_bf16_supported()
    if requested == "bf16" or (requested == "auto" and bf16_ok):
        return Precision(torch.bfloat16, False, "cuda")
    return Precision(torch.float16, True, "cuda")
