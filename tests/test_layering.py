"""Imports run downwards only, and private names stay inside their subpackage.

The layers are described in docs/architecture.md. Every ``import`` statement of
the package counts, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "galaxalign_astro"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Lowest first. A unit is a subpackage or a top-level module of the package.
LAYERS: list[set[str]] = [
    {"errors", "taxonomy", "utils", "_version", "recipes"},
    {"io", "text", "symbols", "catalog", "fetch"},
    {"preprocess", "modalities"},
    {"models", "simulate", "datasets"},
    {"inference", "train"},
    {"evaluate", "search", "annotate"},
    {"scale"},
    # the package root (__init__, __main__) is an entry point like the CLI
    {"cli", "__init__", "__main__"},
]
LAYER = {unit: number for number, units in enumerate(LAYERS, start=1) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    """The subpackage or top-level module that owns a dotted module name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(source: str, module: str, *, is_package: bool = False):
    """(line, imported module, imported names) of every import statement of ``source``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            names = [alias.name for alias in node.names]
            if target == PACKAGE:
                # ``from .. import taxonomy``: each name is a unit of its own
                for name in names:
                    yield node.lineno, f"{PACKAGE}.{name}", []
            else:
                yield node.lineno, target, names


def violations() -> tuple[list[str], list[str], list[str]]:
    """Unknown units, upward imports and private names imported across units."""
    unknown, upward, private = set(), [], []
    for path in sorted(ROOT.rglob("*.py")):
        source = _module_name(path)
        here = _unit(source)
        where = path.relative_to(ROOT.parent)
        if here not in LAYER:
            unknown.add(f"{here} ({where})")
            continue
        for line, target, names in _imports(
            path.read_text(), source, is_package=path.name == "__init__.py"
        ):
            there = _unit(target)
            if there == here:
                continue
            if there not in LAYER:
                unknown.add(f"{there} (imported at {where}:{line})")
                continue
            if LAYER[there] > LAYER[here]:
                upward.append(
                    f"{where}:{line}: {here} (layer {LAYER[here]}) imports {target} "
                    f"(layer {LAYER[there]})"
                )
            hidden = [n for n in names if _is_private(n)]
            hidden += [p for p in target.split(".")[2:] if _is_private(p)]
            if hidden:
                private.append(f"{where}:{line}: {here} imports {', '.join(hidden)} from {target}")
    return sorted(unknown), upward, private


def test_every_kind_of_import_is_seen():
    source = (
        "import numpy\n"
        "import galaxalign_astro.cli.main\n"
        "from galaxalign_astro.scale import x\n"
        "from . import sibling\n"
        "def f():\n"
        "    from ..train.data import _map\n"
        "    from .. import taxonomy\n"
    )
    found = list(_imports(source, f"{PACKAGE}.datasets.load"))
    assert found == [
        (2, f"{PACKAGE}.cli.main", []),
        (3, f"{PACKAGE}.scale", ["x"]),
        (4, f"{PACKAGE}.datasets", ["sibling"]),
        (6, f"{PACKAGE}.train.data", ["_map"]),
        (7, f"{PACKAGE}.taxonomy", []),
    ]


def test_every_unit_has_a_layer():
    unknown, _, _ = violations()
    assert not unknown, "give these a layer in LAYERS and docs/architecture.md:\n" + "\n".join(
        unknown
    )


def test_no_upward_imports():
    _, upward, _ = violations()
    assert not upward, f"{len(upward)} upward imports:\n" + "\n".join(upward)


def test_no_private_names_across_subpackages():
    _, _, private = violations()
    assert not private, f"{len(private)} private imports across subpackages:\n" + "\n".join(private)


if __name__ == "__main__":
    for title, found in zip(("unknown", "upward", "private"), violations(), strict=True):
        print(f"{title}: {len(found)}", *found, sep="\n  ")
