"""Reading TOML recipes: the part that training and annotate recipes share.

A recipe is a TOML file of settings. :func:`read_recipe` reads one (a file that
cannot be read, or is not TOML, is a one-line error naming it), takes out its
``[meta]`` table (what the recipe is, never a setting), resolves the paths it
names against the recipe's folder, lays its settings over defaults, applies
``--set KEY=VALUE`` overrides (:func:`apply_overrides`) and checks the tables
and keys it may hold. What the settings mean is the caller's:
`galaxalign_astro.train.recipe` builds a ``TrainConfig`` from them,
`galaxalign_astro.annotate.recipe` the arguments of ``annotate_file``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RecipeFile",
    "apply_overrides",
    "merge",
    "parse_override",
    "read_recipe",
    "read_toml",
    "relative_path",
]

#: a recipe's layout: (its settings, the ``'PATH: '`` that starts its errors) -> settings
Layout = Callable[[dict[str, Any], str], dict[str, Any]]


@dataclass(frozen=True)
class RecipeFile:
    """A read recipe.

    Attributes
    ----------
    path : `~pathlib.Path` or None
        The recipe file; None when there is none (defaults and overrides only).
    folder : `~pathlib.Path`
        The folder relative paths of the recipe are resolved against (the
        current directory when there is no file).
    settings : dict
        The settings the file itself gives (no ``[meta]``, paths resolved),
        before defaults and overrides.
    data : dict
        The settings to build from: ``settings`` over the defaults, with the
        overrides applied.
    meta : dict
        The ``[meta]`` table (empty when the file has none).
    """

    path: Path | None
    folder: Path
    settings: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def read_toml(path: str | os.PathLike[str], *, prefix: str = "") -> dict[str, Any]:
    """The TOML document of ``path``.

    Raises
    ------
    ValueError
        The file cannot be read or is not valid TOML; the one-line message is
        ``'{prefix}{path}: ...'``.
    """
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        msg = f"{prefix}{path}: not valid TOML ({exc})"
    except UnicodeDecodeError as exc:
        msg = f"{prefix}{path}: not valid TOML (not UTF-8 text: {exc.reason})"
    except OSError as exc:
        msg = f"{prefix}{path}: cannot be read ({exc.strerror or exc})"
    raise ValueError(msg) from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'a.b=value'`` -> (['a', 'b'], value); the value is read as TOML, else as a string.

    ``stages.1.lr=1e-4`` and ``stages.stage2.lr=1e-4`` both address the second
    entry of ``stages`` (by index, or by its ``name``), see :func:`apply_overrides`.
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
    """The container slot addressed by ``part`` in ``node`` (a dict, or a list of named tables)."""
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
    """Apply ``key=value`` overrides (see :func:`parse_override`) to a settings dict, in place.

    A missing table on the way is created; an entry of an array of tables is
    addressed by its index or by its ``name``.
    """
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


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: tables merge key by key, everything else is replaced (copied)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def relative_path(folder: str | os.PathLike[str], value: Any) -> str:
    """``value`` as a path, relative ones taken from ``folder`` (``~`` expanded)."""
    path = Path(str(value)).expanduser()
    return os.path.normpath(path if path.is_absolute() else Path(folder) / path)


def _looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.startswith(".")


def _resolve_paths(
    settings: dict[str, Any],
    folder: Path,
    paths: Iterable[str],
    names_or_paths: Iterable[str],
) -> None:
    """Resolve the string values at the dotted keys ``paths`` (and ``names_or_paths``
    when they look like a path) against ``folder``, in place."""
    for keys, always in ((paths, True), (names_or_paths, False)):
        for key in keys:
            *parents, last = key.split(".")
            node: Any = settings
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            value = node.get(last) if isinstance(node, dict) else None
            if isinstance(value, str) and (always or _looks_like_path(value)):
                node[last] = relative_path(folder, value)


def _take_meta(
    doc: dict[str, Any], table: str, keys: Collection[str] | None, where: str, *, hint: bool
) -> dict[str, Any]:
    meta = doc.pop(table, {})
    if not isinstance(meta, dict):
        msg = f"{where}'{table}' must be a table"
        raise ValueError(msg)
    unknown = set(meta) - set(keys) if keys is not None else set()
    if unknown:
        msg = f"{where}unknown [{table}] keys {sorted(unknown)} (known: {sorted(keys or ())})"
        if hint:
            msg += (
                "; settings written after a [table] header belong to that table: put "
                "top-level settings before the first one"
            )
        raise ValueError(msg)
    return meta


def _check_tables(
    data: Mapping[str, Any], tables: Mapping[str, Collection[str]], known: list[str], where: str
) -> None:
    unknown = sorted(set(data) - set(tables))
    if unknown:
        msg = f"{where}unknown table(s) {unknown}; known: {known}"
        raise ValueError(msg)
    for table, values in data.items():
        if not isinstance(values, dict):
            msg = f"{where}[{table}] must be a table"
            raise ValueError(msg)
        bad = sorted(set(values) - set(tables[table]))
        if bad:
            msg = f"{where}unknown key(s) {bad} in [{table}]; known: {tables[table]}"
            raise ValueError(msg)


def read_recipe(
    path: str | os.PathLike[str] | None,
    overrides: Iterable[str] = (),
    *,
    defaults: Mapping[str, Any] | None = None,
    tables: Mapping[str, Collection[str]] | None = None,
    meta: str = "meta",
    meta_keys: Collection[str] | None = None,
    paths: Iterable[str] = (),
    names_or_paths: Iterable[str] = (),
    layout: Layout | None = None,
    prefix: str = "",
) -> RecipeFile:
    """Read a TOML recipe, lay it over defaults and apply ``key=value`` overrides.

    Parameters
    ----------
    path : str, path-like or None
        The recipe file; None: the defaults and overrides alone.
    overrides : iterable of str
        ``key=value`` items (dotted keys, TOML values; see :func:`apply_overrides`),
        applied after the defaults. They change settings, never the ``meta`` table,
        and their paths are taken as given (relative to the current directory).
    defaults : mapping, optional
        Settings the recipe's are laid over (see :func:`merge`).
    tables : mapping of str to collection of str, optional
        A recipe of tables only: the tables it may hold and the keys of each,
        checked after the overrides. None: any settings (the caller checks them).
    meta : str
        The name of the table that describes the recipe; it is taken out of the
        settings and returned as ``meta``.
    meta_keys : collection of str, optional
        The keys ``meta`` may hold; None: any.
    paths : iterable of str
        Dotted keys whose string values are paths relative to the recipe's folder.
    names_or_paths : iterable of str
        Dotted keys that hold a name or a path: a value with a ``/`` or starting
        with ``.`` is a path relative to the recipe's folder.
    layout : callable, optional
        ``layout(settings, where)`` returns the settings in the caller's layout
        (e.g. an older one turned into the current one); ``where`` is the
        ``'PATH: '`` its errors start with.
    prefix : str
        What error messages say before the file's name (e.g. ``'recipe '``).

    Returns
    -------
    RecipeFile

    Raises
    ------
    ValueError
        The file cannot be read or is not TOML, an unknown table or key, or an
        override that does not apply; one line that names the file.
    """
    if path is None:
        where, folder, settings, meta_table = "", Path.cwd(), {}, {}
    else:
        path = Path(path)
        where, folder = f"{prefix}{path}: ", path.resolve().parent
        settings = read_toml(path, prefix=prefix)
        meta_table = _take_meta(settings, meta, meta_keys, where, hint=tables is None)
        if layout is not None:
            settings = layout(settings, where)
        _resolve_paths(settings, folder, paths, names_or_paths)
    data = merge(defaults or {}, settings)
    try:
        apply_overrides(data, overrides)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None
    if tables is not None:
        _check_tables(data, tables, sorted({*tables, meta}), where)
    return RecipeFile(path, folder, settings, data, meta_table)
