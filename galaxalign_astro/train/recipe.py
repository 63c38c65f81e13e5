"""Training recipes: TOML files and ``--set`` overrides read into a :class:`TrainConfig`.

A recipe is a TOML file whose top-level keys are :class:`TrainConfig` fields
(``[preprocess]``, ``[[stages]]``, ``[data]``, ``[augment]`` are tables; the
older layout with everything under ``[train]`` is read too). ``--set key=value``
overrides (dotted keys, TOML values) are applied to the recipe before it is
validated, see :func:`apply_overrides`.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import TrainConfig

__all__ = [
    "META_KEYS",
    "apply_overrides",
    "check_config",
    "load_recipe",
    "parse_override",
    "recipe_dict",
    "recipe_meta",
]

#: keys of a recipe's [meta] table
META_KEYS = frozenset({"description", "output", "paper", "notes"})


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'a.b=value'`` -> (['a', 'b'], value); the value is read as TOML, else as a string.

    ``stages.1.lr=1e-4`` and ``stages.stage2.lr=1e-4`` both address stage 2.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        msg = f"override {item!r} is not of the form key=value (dotted key)"
        raise ValueError(msg)
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def _child(node: Any, part: str, key: str) -> tuple[Any, Any]:
    """The container slot addressed by ``part`` in ``node`` (a dict or a list of stages)."""
    if isinstance(node, list):
        if part.lstrip("-").isdigit():
            index = int(part)
            if not -len(node) <= index < len(node):
                msg = f"override {key!r}: index {index} out of range (0..{len(node) - 1})"
                raise ValueError(msg)
            return node, index
        for i, item in enumerate(node):
            if isinstance(item, dict) and item.get("name") == part:
                return node, i
        names = [item.get("name") for item in node if isinstance(item, dict)]
        msg = f"override {key!r}: no entry named {part!r} (known: {names})"
        raise ValueError(msg)
    if isinstance(node, dict):
        return node, part
    msg = f"override {key!r}: {part!r} is inside a value that is not a table"
    raise ValueError(msg)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (see :func:`parse_override`) to a recipe dict, in place."""
    for item in overrides:
        parts, value = parse_override(item)
        key = ".".join(parts)
        node: Any = data
        for part in parts[:-1]:
            container, slot = _child(node, part, key)
            if isinstance(container, dict) and container.get(slot) is None:
                container[slot] = {}
            node = container[slot]
        container, slot = _child(node, parts[-1], key)
        container[slot] = value
    return data


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: tables merge key by key, everything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc})"
        raise ValueError(msg) from None


def recipe_meta(path: str | Path) -> dict[str, Any]:
    """The ``[meta]`` table of a recipe (description, default ``output``, paper notes)."""
    meta = _read_toml(path).get("meta", {})
    if not isinstance(meta, dict):
        msg = f"{path}: 'meta' must be a table"
        raise ValueError(msg)
    unknown = set(meta) - META_KEYS
    if unknown:
        msg = (
            f"{path}: unknown [meta] keys {sorted(unknown)} (known: {sorted(META_KEYS)}); "
            "settings written after a [table] header belong to that table: put top-level "
            "settings before the first one"
        )
        raise ValueError(msg)
    return meta


def recipe_dict(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The full settings of a recipe (defaults filled in) with overrides applied, as a dict.

    Free-form tables (``symbols``, ``text``, ``preprocess.stretch_params``,
    ``augment``) are merged as given; ``stages`` replaces the default list.
    When neither the recipe nor an override sets ``preprocess.size``, it is
    the architecture's image size.
    """
    overrides = list(overrides)
    base = TrainConfig().to_dict()
    body: dict[str, Any] = {}
    if path is not None:
        recipe_meta(path)
        doc = _read_toml(path)
        if "train" in doc:
            body = dict(doc["train"])
            extra = set(doc) - {"train", "data", "meta"}
            if extra:
                msg = f"{path}: unknown tables next to [train]: {', '.join(sorted(extra))}"
                raise ValueError(msg)
            if "data" in doc:
                body["data"] = doc["data"]
        else:
            body = {k: v for k, v in doc.items() if k != "meta"}
        if "stages" in body and not isinstance(body["stages"], list):
            msg = f"{path}: 'stages' must be an array of tables ([[stages]])"
            raise ValueError(msg)
        base = _merge(base, body)
    try:
        data = apply_overrides(base, overrides)
    except ValueError as exc:
        msg = f"{path}: {exc}" if path is not None else str(exc)
        raise ValueError(msg) from None
    size_given = "size" in (body.get("preprocess") or {}) or any(
        parse_override(item)[0] in (["preprocess", "size"], ["preprocess"]) for item in overrides
    )
    if not size_given and isinstance(data.get("preprocess"), dict):
        size = _architecture_size(data.get("architecture"))
        if size is not None:
            data["preprocess"]["size"] = size
    return data


def _architecture_size(name: Any) -> int | None:
    """Image size of a registered architecture, None when unknown (reported later)."""
    from ..errors import ModelLoadError
    from ..models.factory import architecture_config

    if not isinstance(name, str):
        return None
    try:
        size = architecture_config(name).get("vision_cfg", {}).get("image_size")
    except ModelLoadError:
        return None
    size = size[0] if isinstance(size, list | tuple) else size
    return int(size) if size is not None else None


def load_recipe(path: str | Path | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a TOML recipe (and ``key=value`` overrides) into a validated :class:`TrainConfig`.

    ``path`` None starts from the defaults. A ``[meta]`` table (description,
    default output directory, what is the paper's) is allowed; see
    :func:`recipe_meta`.
    """
    data = recipe_dict(path, overrides)
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        msg = f"{path}: {exc}" if path is not None else str(exc)
        raise ValueError(msg) from None


def check_config(config: TrainConfig, *, check_pretrained: bool = True) -> None:
    """Validate what a config names against open_clip without building or downloading a model.

    The architecture must be in open_clip's registry (ours included), its
    image size must equal ``preprocess.size``, a pretrained tag must be one
    open_clip knows for the architecture (a path must exist), and the taxonomy
    must be known.
    """
    from ..models.factory import architecture_config, pretrained_tags
    from ..taxonomy import get_taxonomy

    get_taxonomy(config.taxonomy)
    arch = architecture_config(config.architecture)
    size = arch.get("vision_cfg", {}).get("image_size")
    size = size[0] if isinstance(size, list | tuple) else size
    if size is not None and int(size) != config.preprocess.size:
        msg = (
            f"architecture {config.architecture} takes {size} px images but preprocess.size "
            f"is {config.preprocess.size}"
        )
        raise ValueError(msg)
    if check_pretrained and config.pretrained is not None:
        tags = pretrained_tags(config.architecture)
        if config.pretrained not in tags and not Path(config.pretrained).is_file():
            msg = (
                f"{config.architecture}: pretrained {config.pretrained!r} is neither an open_clip "
                f"tag ({', '.join(tags) or 'none'}) nor an existing file"
            )
            raise ValueError(msg)
    for stage in config.stages:
        if not math.isfinite(stage.lr):
            msg = f"stage {stage.name!r}: lr must be finite"
            raise ValueError(msg)
