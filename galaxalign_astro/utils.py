"""Small helpers every layer may use: checks of settings read from files, file digests.

Recipes, model specs and catalogs' parameters arrive from TOML and JSON files, so
a value may have any type. :func:`check_fields` compares each field of a settings
dataclass with its annotation before any range check runs, so a wrong type is a
one-line ``ValueError`` naming the setting instead of a ``TypeError`` deep inside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

__all__ = ["check_fields", "check_value", "file_sha256", "type_problem"]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the bytes of the file ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_fields(obj: Any, *, where: str, skip: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` when a field of dataclass ``obj`` does not match its type.

    Floats must be finite; an integer is accepted for a float. Fields annotated
    with another dataclass also accept a mapping (converted by the caller).
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in skip or f.name not in hints:
            continue
        check_value(getattr(obj, f.name), hints[f.name], name=f.name, where=where)


def check_value(value: Any, annotation: Any, *, name: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and ``name`` when ``value`` is not ``annotation``."""
    problem = type_problem(value, annotation)
    if problem is not None:
        prefix = f"{where}: " if where else ""
        msg = f"{prefix}{name} must be {problem}, got {value!r}"
        raise ValueError(msg)


def type_problem(value: Any, annotation: Any) -> str | None:
    """What ``value`` should be when it does not match ``annotation``; None when it does."""
    if annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        problems = [type_problem(value, arm) for arm in args]
        if any(p is None for p in problems):
            return None
        return " or ".join(dict.fromkeys(p for p in problems if p))
    if origin is typing.Literal:
        return None if value in args else "one of " + ", ".join(repr(a) for a in args)
    if annotation is type(None):
        return None if value is None else "none"
    if annotation is bool:
        return None if isinstance(value, bool) else "true or false"
    if annotation is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok and math.isfinite(value) else "a finite number"
    if annotation is str:
        return None if isinstance(value, str) else "a string"
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, list | tuple):
            return "a list"
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return f"a list of {len(args)} values"
            items = list(zip(value, args, strict=True))
        else:
            items = [(v, args[0]) for v in value] if args else []
        for item, arm in items:
            problem = type_problem(item, arm)
            if problem is not None:
                return f"a list whose items are each {problem}"
        return None
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return None if isinstance(value, Mapping) else "a table"
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return None if isinstance(value, annotation | Mapping) else "a table"
    return None  # types this check does not know are left to the caller
