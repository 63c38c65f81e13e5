"""Declared annotate jobs: a TOML recipe of steps run by `run_recipe`.

A recipe (see ``pipelines/annotate_legacysurvey.toml``) declares the four steps of an
end-to-end job as parameters, apart from the data (stpipe style, ours):

``[input]``
    ``catalog`` (required), ``format``, ``hdf5_path``, ``ra_col``, ``dec_col``, ``id_col``;
``[cutouts]`` or ``[fetch]`` (one of them)
    local cutouts: ``path_col`` and ``base_dir``, or ``dir`` and ``pattern``;
    fetching: ``survey`` (required), ``layer``, ``size``, ``pixscale``, ``bands``,
    ``base_url``, ``cache``, ``cache_dir``, ``max_workers``, ``rate_limit``,
    ``timeout``, ``max_retries``, ``hips_ids`` (a table band -> HiPS id), ``fetch_dir``;
``[preprocess]``
    ``check``: ``'error'``, ``'warn'`` (default) or ``'off'``: what to do when the
    fetch geometry differs from the model's stored preprocessing (bands, field of
    view). The preprocessing itself is always the model's own;
``[classify]``
    ``model``, ``classes`` (a zero-shot class file), ``device``, ``batch_size``,
    ``workers``, ``embeddings``, ``prefix``;
``[write]``
    ``output`` (required), ``chunk_size``, ``overwrite``, ``embeddings_hdf5``.

An optional ``[recipe]`` table holds ``name`` and ``description``. Paths under
``[input]`` and ``[cutouts]`` (and ``classes``, and a ``model`` given as a path) are relative to the
recipe file, so a recipe travels with its catalog; output, cache and fetch
directories are relative to the current directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recipes import read_recipe

__all__ = ["RECIPE_KEYS", "Recipe", "load_recipe", "run_recipe"]

log = logging.getLogger(__name__)

#: keys each recipe table accepts
RECIPE_KEYS: dict[str, tuple[str, ...]] = {
    "recipe": ("name", "description"),
    "input": ("catalog", "format", "hdf5_path", "ra_col", "dec_col", "id_col"),
    "cutouts": ("path_col", "base_dir", "dir", "pattern"),
    "fetch": (
        "survey",
        "layer",
        "size",
        "pixscale",
        "bands",
        "base_url",
        "cache",
        "cache_dir",
        "max_workers",
        "rate_limit",
        "timeout",
        "max_retries",
        "hips_ids",
        "fetch_dir",
    ),
    "preprocess": ("check",),
    "classify": ("model", "classes", "device", "batch_size", "workers", "embeddings", "prefix"),
    "write": ("output", "chunk_size", "overwrite", "embeddings_hdf5"),
}
_CHECKS = ("error", "warn", "off")


@dataclass
class Recipe:
    """A parsed recipe: the `annotate_file` arguments it declares.

    Attributes
    ----------
    path : `~pathlib.Path`
        The recipe file.
    name, description : str
    kwargs : dict
        Keyword arguments of `~galaxalign_astro.annotate.annotate_file`, including
        ``input`` and ``output``.
    check : str
        ``'error'``, ``'warn'`` or ``'off'`` (the ``[preprocess]`` check).
    """

    path: Path
    name: str
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    check: str = "warn"


#: tables that hold settings (``[recipe]`` describes the recipe)
_TABLES = {table: keys for table, keys in RECIPE_KEYS.items() if table != "recipe"}
#: settings that are paths relative to the recipe file
_PATHS = ("input.catalog", "cutouts.base_dir", "cutouts.dir", "classify.classes")


def load_recipe(path: str | os.PathLike[str], settings: Iterable[str] = ()) -> Recipe:
    """Read and check a recipe file.

    Parameters
    ----------
    path : str or path-like
        Recipe file (see the module docstring).
    settings : iterable of str, optional
        ``key=value`` overrides of the recipe (dotted keys, TOML values, e.g.
        ``'write.chunk_size=500'``); their paths are relative to the current
        directory.

    Raises
    ------
    ValueError
        An unreadable file or invalid TOML, unknown tables or keys, missing
        required keys, or both ``[cutouts]`` and ``[fetch]``; the message names
        the file.
    """
    path = Path(path)
    read = read_recipe(
        path,
        settings,
        tables=_TABLES,
        meta="recipe",
        meta_keys=RECIPE_KEYS["recipe"],
        paths=_PATHS,
        names_or_paths=("classify.model",),
        prefix="recipe ",
    )
    get = {table: dict(read.data.get(table, {})) for table in _TABLES}
    for table, key in (("input", "catalog"), ("write", "output")):
        if key not in get[table]:
            msg = f"recipe {path}: [{table}] needs {key}"
            raise ValueError(msg)
    if get["cutouts"] and get["fetch"]:
        msg = f"recipe {path}: give [cutouts] or [fetch], not both"
        raise ValueError(msg)

    inp, cut, fet, cls, out = (get[t] for t in ("input", "cutouts", "fetch", "classify", "write"))
    kwargs: dict[str, Any] = {
        "input": str(inp.pop("catalog")),
        "output": str(out.pop("output")),
        "input_format": inp.pop("format", None),
    }
    kwargs.update(inp)
    if "path_col" in cut:
        kwargs["path_col"] = cut.pop("path_col")
        kwargs["base_dir"] = cut.pop("base_dir", str(read.folder))
    if "dir" in cut:
        kwargs["cutouts_dir"] = cut.pop("dir")
    if "pattern" in cut:
        kwargs["pattern"] = cut.pop("pattern")
    if cut:
        msg = f"recipe {path}: [cutouts] needs path_col or dir (got {sorted(cut)})"
        raise ValueError(msg)
    if fet:
        if "survey" not in fet:
            msg = f"recipe {path}: [fetch] needs survey"
            raise ValueError(msg)
        kwargs["fetch"] = fet.pop("survey")
        if "fetch_dir" in fet:
            kwargs["fetch_dir"] = fet.pop("fetch_dir")
        kwargs["fetch_options"] = fet
    kwargs.update(cls)
    kwargs.update(out)
    check = str(get["preprocess"].get("check", "warn"))
    if check not in _CHECKS:
        msg = f"recipe {path}: [preprocess] check must be one of {_CHECKS}, not {check!r}"
        raise ValueError(msg)
    meta = read.meta
    return Recipe(
        path, str(meta.get("name", path.stem)), str(meta.get("description", "")), kwargs, check
    )


def run_recipe(
    path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None, **options: Any
):
    """Run a recipe with `~galaxalign_astro.annotate.annotate_file`.

    Parameters
    ----------
    path : str or path-like
        Recipe file (see the module docstring).
    overrides : mapping, optional
        `annotate_file` arguments that replace the recipe's (``fetch_options`` are
        merged key by key), e.g. ``{"output": "out.parquet", "model": "my-model"}``.
    **options
        Run options that recipes do not declare: ``resume``, ``restart``,
        ``progress``, ``command``.

    Returns
    -------
    `~galaxalign_astro.annotate.AnnotateSummary`

    Raises
    ------
    ValueError
        An invalid recipe, or (with ``check = 'error'``) a fetch geometry that does
        not match the model.
    """
    from ..inference.run import Predictor
    from .cutouts import fetch_geometry, geometry_problems
    from .run import annotate_file

    recipe = load_recipe(path)
    kwargs = dict(recipe.kwargs)
    for key, value in (overrides or {}).items():
        if key == "fetch_options" and value is not None:
            kwargs["fetch_options"] = {**kwargs.get("fetch_options", {}), **value}
        else:
            kwargs[key] = value
    kwargs.update(options)
    predictor = Predictor(
        kwargs.pop("model", "default"),
        device=kwargs.get("device", "cpu"),
        classes=kwargs.pop("classes", None),
    )
    kwargs["model"] = predictor
    fetch = kwargs.get("fetch")
    if fetch is not None and recipe.check != "off":
        from ..fetch import get_client

        fetch_options = dict(kwargs.get("fetch_options") or {})
        geometry = {k: fetch_options.pop(k, None) for k in ("size", "pixscale", "bands")}
        fetch_options.pop("max_workers", None)
        client = get_client(str(fetch), **fetch_options)
        shape = fetch_geometry(client, predictor.config, **geometry)
        problems = geometry_problems(predictor.config, shape)
        if problems and recipe.check == "error":
            msg = f"recipe {recipe.path}: " + "; ".join(problems)
            raise ValueError(msg)
    log.info("running recipe %s (%s)", recipe.name, recipe.path)
    return annotate_file(**kwargs)
