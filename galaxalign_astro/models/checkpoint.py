"""Saving and loading trained models: safetensors weights plus a JSON spec.

A model directory holds

``model.safetensors``
    every weight of the tri-modal model, and the class prototypes under
    ``prototypes.text`` / ``prototypes.symbol`` (so classification needs no
    symbol rendering or text encoding at start-up);
``galaxalign.json``
    everything inference needs: architecture and its config, symbol tower
    layout, preprocessing, class keys and names, text and symbol settings,
    prototype mixing ``alpha``, training metrics and provenance.

Weights are never unpickled: safetensors holds raw tensors only.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModelLoadError
from ..preprocess.pipeline import PreprocessConfig
from ..utils import check_fields, file_sha256

__all__ = [
    "BUNDLED_MODELS_DIR",
    "SPEC_NAME",
    "WEIGHTS_NAME",
    "LoadedModel",
    "ModelSpec",
    "load_model",
    "resolve_model_path",
    "save_model",
]

SPEC_NAME = "galaxalign.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
# mkstemp creates owner-only files; a saved model is meant to be shared
_FILE_MODE = 0o644


@dataclass
class ModelSpec:
    """The JSON half of a checkpoint: what a user must never re-type at inference."""

    architecture: str
    architecture_config: dict[str, Any]
    symbol_tower: str
    preprocess: PreprocessConfig
    class_keys: list[str]
    class_names: list[str]
    text: dict[str, Any]
    symbols: dict[str, Any]
    prototype_alpha: float = 0.5
    taxonomy: str = "galaxy10_decals"
    name: str = "galaxalign"
    training: dict[str, Any] = field(default_factory=dict)
    package_version: str = __version__
    created: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_fields(self, where="model spec")
        if not 0.0 <= self.prototype_alpha <= 1.0:
            msg = f"model spec: prototype_alpha must be in [0, 1], got {self.prototype_alpha}"
            raise ValueError(msg)
        if self.symbol_tower not in ("shared", "separate"):
            msg = f"model spec: symbol_tower must be shared or separate, got {self.symbol_tower!r}"
            raise ValueError(msg)
        if not self.class_keys or len(self.class_keys) != len(self.class_names):
            msg = (
                f"model spec: {len(self.class_keys)} class keys and "
                f"{len(self.class_names)} class names; one name per key needed"
            )
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["preprocess"] = self.preprocess.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            msg = f"checkpoint format {version} is newer than this package understands"
            raise ModelLoadError(msg)
        data["preprocess"] = PreprocessConfig.from_dict(data["preprocess"])
        return cls(**data)


@dataclass
class LoadedModel:
    """A model ready for inference, with its spec and provenance."""

    model: Any  # GalaxAlignModel
    spec: ModelSpec
    prototypes_text: Any  # torch.Tensor (n_classes, dim)
    prototypes_symbol: Any  # torch.Tensor (n_classes, dim)
    weights_sha256: str
    path: str

    @property
    def name(self) -> str:
        return self.spec.name

    def prototypes(self, alpha: float | None = None):
        """Mixed class prototypes ``normalise(alpha * text + (1 - alpha) * symbol)``."""
        from .prototypes import mix_prototypes

        a = self.spec.prototype_alpha if alpha is None else alpha
        return mix_prototypes(self.prototypes_text, self.prototypes_symbol, a)

    def provenance(self) -> dict[str, Any]:
        return {
            "package_version": __version__,
            "model_name": self.spec.name,
            "model_path": self.path,
            "architecture": self.spec.architecture,
            "weights_sha256": self.weights_sha256,
            "preprocess": self.spec.preprocess.to_dict(),
            "prototype_alpha": self.spec.prototype_alpha,
        }


def save_model(
    directory: str | os.PathLike[str],
    model,
    spec: ModelSpec,
    *,
    prototypes_text,
    prototypes_symbol,
    half: bool = False,
) -> str:
    """Write ``model.safetensors`` and ``galaxalign.json`` atomically; return the weights sha256.

    ``half=True`` stores floating weights as float16 (they are cast back to
    float32 at load), halving the size of a shipped model.
    """
    import torch
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        tensors[key] = value.contiguous()
    tensors["prototypes.text"] = prototypes_text.detach().cpu().float().contiguous()
    tensors["prototypes.symbol"] = prototypes_symbol.detach().cpu().float().contiguous()
    spec.symbol_tower = model.symbol_tower
    spec.created = spec.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".weights-", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    try:
        # one metadata key: safetensors orders several differently from run to run,
        # which would change the sha256 of identical weights
        save_file(tensors, tmp, metadata={"format": "pt"})
        digest = file_sha256(tmp)
        os.replace(tmp, out / WEIGHTS_NAME)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _atomic_write_text(out / SPEC_NAME, json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    return digest


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".spec-", suffix=".tmp")
    os.chmod(tmp, _FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A model directory from a bundled model name (``default``) or a path."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.is_dir() and (candidate / SPEC_NAME).exists():
        return candidate
    if candidate.name == SPEC_NAME and candidate.exists():
        return candidate.parent
    bundled = BUNDLED_MODELS_DIR / text
    if "/" not in text and (bundled / SPEC_NAME).exists():
        return bundled
    known = sorted(p.name for p in BUNDLED_MODELS_DIR.glob("*") if (p / SPEC_NAME).exists())
    msg = (
        f"model {text!r} not found: not a directory with {SPEC_NAME} "
        f"and not a bundled model ({', '.join(known) or 'none installed'})"
    )
    raise ModelLoadError(msg)


def read_spec(name_or_path: str | os.PathLike[str]) -> ModelSpec:
    path = resolve_model_path(name_or_path)
    try:
        data = json.loads((path / SPEC_NAME).read_text())
        return ModelSpec.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{path / SPEC_NAME}: not a valid model spec ({exc})"
        raise ModelLoadError(msg) from None


def load_model(name_or_path: str | os.PathLike[str] = "default", *, device: str = "cpu"):
    """Load a model directory (or the bundled model ``name``) for inference.

    Returns
    -------
    LoadedModel
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .factory import create_model

    path = resolve_model_path(name_or_path)
    spec = read_spec(path)
    weights = path / WEIGHTS_NAME
    try:
        tensors = load_file(str(weights), device="cpu")
    except (OSError, SafetensorError) as exc:
        msg = f"{weights}: cannot read weights ({exc})"
        raise ModelLoadError(msg) from None
    proto_text = tensors.pop("prototypes.text", None)
    proto_symbol = tensors.pop("prototypes.symbol", None)
    if proto_text is None or proto_symbol is None:
        msg = f"{weights}: no class prototypes stored"
        raise ModelLoadError(msg)
    model = create_model(
        spec.architecture,
        symbol_tower=spec.symbol_tower,
        config=spec.architecture_config,
        weights_follow=True,
    )
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        msg = (
            f"{weights}: weights do not match architecture {spec.architecture} "
            f"(missing {len(missing)}, unexpected {len(unexpected)}: "
            f"{', '.join((missing + unexpected)[:3])})"
        )
        raise ModelLoadError(msg)
    model.eval().to(device)
    with torch.no_grad():
        proto_text = torch.nn.functional.normalize(proto_text.float(), dim=-1).to(device)
        proto_symbol = torch.nn.functional.normalize(proto_symbol.float(), dim=-1).to(device)
    return LoadedModel(model, spec, proto_text, proto_symbol, file_sha256(weights), str(path))
