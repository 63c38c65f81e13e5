"""Training recipes: TOML files and ``--set`` overrides read into a :class:`TrainConfig`.

A recipe is a TOML file whose top-level keys are :class:`TrainConfig` fields
(``[preprocess]``, ``[[stages]]``, ``[data]``, ``[augment]`` are tables; the
older layout with everything under ``[train]`` is read too). ``--set key=value``
overrides (dotted keys, TOML values) are applied to the recipe before it is
validated, see :func:`apply_overrides`. The file is read by the loader all
recipes share, :func:`galaxalign_astro.recipes.read_recipe`; this module says
what the settings mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..recipes import apply_overrides, parse_override, read_recipe
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


def _layout(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """A recipe's settings: its top-level keys, or those of the older ``[train]`` table."""
    if "train" in doc:
        body = dict(doc["train"])
        extra = set(doc) - {"train", "data"}
        if extra:
            msg = f"{where}unknown tables next to [train]: {', '.join(sorted(extra))}"
            raise ValueError(msg)
        if "data" in doc:
            body["data"] = doc["data"]
    else:
        body = doc
    if "stages" in body and not isinstance(body["stages"], list):
        msg = f"{where}'stages' must be an array of tables ([[stages]])"
        raise ValueError(msg)
    return body


def recipe_meta(path: str | Path) -> dict[str, Any]:
    """The ``[meta]`` table of a recipe (description, default ``output``, paper notes)."""
    return read_recipe(path, meta_keys=META_KEYS).meta


def recipe_dict(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The full settings of a recipe (defaults filled in) with overrides applied, as a dict.

    Free-form tables (``symbols``, ``text``, ``preprocess.stretch_params``,
    ``augment``) are merged as given; ``stages`` replaces the default list.
    When neither the recipe nor an override sets ``preprocess.size``, it is
    the architecture's image size.
    """
    overrides = list(overrides)
    recipe = read_recipe(
        path, overrides, defaults=TrainConfig().to_dict(), meta_keys=META_KEYS, layout=_layout
    )
    data = recipe.data
    size_given = "size" in (recipe.settings.get("preprocess") or {}) or any(
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
