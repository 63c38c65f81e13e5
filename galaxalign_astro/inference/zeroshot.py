"""Zero-shot classes: new classes from descriptions and/or drawn symbols, no retraining.

A class file (YAML or TOML) lists classes, each with descriptions, symbols, or
both::

    alpha: 0.5                # optional; default: the model's tuned mix
    classes:
      - name: Ring galaxy
        descriptions:
          - a galaxy with a bright ring of stars around a smooth centre
        symbols: [ring.png]   # drawings (paths relative to this file) ...
      - name: Spiral
        symbols: [unbarred_loose_spiral]   # ... or built-in symbol families

Descriptions go through the model's own prompt templates, built-in symbol
families through its own symbol settings, so new classes are encoded exactly
like the training classes. Prototypes are mixed as in PAPER.md (ours:
``alpha`` per file).

A `ClassHead` is what classification compares images with: class names and
their prototype embeddings. It is plain numbers, so it travels to Dask workers
instead of the class file and its drawings, and its SHA-256 identifies the classes
in provenance and in resumable runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ClassHead",
    "ClassSet",
    "ZeroShotClass",
    "class_head",
    "class_set_prototypes",
    "load_class_set",
]


@dataclass(frozen=True)
class ZeroShotClass:
    """One user-defined class."""

    name: str
    descriptions: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            msg = "a zero-shot class needs a name"
            raise ValueError(msg)
        if not self.descriptions and not self.symbols:
            msg = f"class {self.name!r}: give at least one description or symbol"
            raise ValueError(msg)


@dataclass(frozen=True)
class ClassSet:
    """User-defined classes and their prototype mix."""

    classes: tuple[ZeroShotClass, ...]
    alpha: float | None = None
    base_dir: str = "."
    source: str = field(default="<memory>")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]


def load_class_set(path: str | os.PathLike[str]) -> ClassSet:
    """Read a YAML (``.yaml``/``.yml``) or TOML class file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        msg = f"{path}: cannot read class file ({exc.strerror})"
        raise ValueError(msg) from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        msg = f"{path}: not a valid class file ({str(exc).splitlines()[0]})"
        raise ValueError(msg) from None
    return _class_set(data, path)


def _class_set(data: Any, path: Path) -> ClassSet:
    entries = data.get("classes", data.get("class")) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        msg = f"{path}: needs a non-empty 'classes' list"
        raise ValueError(msg)
    classes = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            msg = f"{path}: class {i + 1} needs a 'name'"
            raise ValueError(msg)
        try:
            classes.append(
                ZeroShotClass(
                    str(entry["name"]),
                    tuple(str(d) for d in entry.get("descriptions", ())),
                    tuple(str(s) for s in entry.get("symbols", ())),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        msg = f"{path}: class names must be unique"
        raise ValueError(msg)
    alpha = data.get("alpha")
    return ClassSet(
        tuple(classes), None if alpha is None else float(alpha), str(path.parent), str(path)
    )


def _symbol_images(loaded, class_: ZeroShotClass, base_dir: str, size: int) -> np.ndarray:
    from ..symbols import SYMBOL_FAMILIES, SymbolConfig, load_drawing, symbol_bank

    images = []
    config = SymbolConfig.from_dict(loaded.spec.symbols or {})
    for item in class_.symbols:
        if item in SYMBOL_FAMILIES:
            images.extend(symbol_bank([item], size=size, config=config)[0])
        else:
            path = item if os.path.isabs(item) else os.path.join(base_dir, item)
            images.append(load_drawing(path, size=size))
    return np.asarray(images, dtype=np.uint8).reshape(-1, size, size, 3)


def class_set_prototypes(loaded, class_set: ClassSet):
    """Mixed prototypes (n_classes, dim) of ``class_set`` for a loaded model."""
    import torch

    from ..models.factory import get_tokenizer
    from ..models.prototypes import prototypes_for_classes
    from ..text import TextConfig

    model = loaded.model
    templates = TextConfig.from_dict(loaded.spec.text or {}).templates
    texts = [[t.format(d) for d in c.descriptions for t in templates] for c in class_set.classes]
    symbols = [
        _symbol_images(loaded, c, class_set.base_dir, model.image_size) for c in class_set.classes
    ]
    tokenizer = get_tokenizer(loaded.spec.architecture, config=model.config)
    with torch.no_grad():
        text, symbol = prototypes_for_classes(model, tokenizer, texts=texts, symbols=symbols)
    alpha = loaded.spec.prototype_alpha if class_set.alpha is None else class_set.alpha
    # a class given only one modality uses that modality alone, whatever alpha is
    weights = torch.tensor(
        [
            alpha if (c.descriptions and c.symbols) else (1.0 if c.descriptions else 0.0)
            for c in class_set.classes
        ],
        device=text.device,
    )[:, None]
    return torch.nn.functional.normalize(weights * text + (1 - weights) * symbol, dim=-1)


@dataclass(frozen=True, eq=False)
class ClassHead:
    """Class names and their unit prototype embeddings, shape (n_classes, dim).

    ``source`` is the class file of zero-shot classes, None for the model's own.
    """

    names: tuple[str, ...]
    prototypes: np.ndarray
    source: str | None = None

    def __post_init__(self) -> None:
        protos = np.asarray(self.prototypes, dtype=np.float32)
        if protos.ndim != 2 or len(protos) != len(self.names):
            msg = f"prototypes of shape {protos.shape} do not match {len(self.names)} class names"
            raise ValueError(msg)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "prototypes", protos)

    @property
    def zero_shot(self) -> bool:
        return self.source is not None

    @property
    def sha256(self) -> str:
        """SHA-256 of the names and the prototypes (float32, C order)."""
        digest = hashlib.sha256(json.dumps(list(self.names)).encode())
        digest.update(np.ascontiguousarray(self.prototypes, dtype="<f4").tobytes())
        return digest.hexdigest()


def class_head(loaded, classes: Any = None) -> ClassHead:
    """The `ClassHead` of a loaded model: its own classes (``classes=None``), or
    zero-shot ones from a class file path, a `ClassSet` or a ready `ClassHead`."""
    if isinstance(classes, ClassHead):
        dim = loaded.model.embed_dim
        if classes.prototypes.shape[1] != dim:
            msg = (
                f"class prototypes have dimension {classes.prototypes.shape[1]}, the model "
                f"embeds in {dim}"
            )
            raise ValueError(msg)
        return classes
    if classes is None:
        protos = loaded.prototypes()
        return ClassHead(tuple(loaded.spec.class_names), protos.detach().cpu().numpy())
    class_set = classes if isinstance(classes, ClassSet) else load_class_set(classes)
    protos = class_set_prototypes(loaded, class_set)
    return ClassHead(tuple(class_set.names), protos.detach().cpu().numpy(), class_set.source)
