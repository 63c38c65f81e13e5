"""Label catalogs: an astronomer's own labelled cutouts (FITS, PNG, JPEG) as a data set.

A label catalog is any table astropy reads (CSV, ECSV, FITS...) with

* a file column (``file``, ``path``, ``filepath`` or ``filename``): paths relative
  to the catalog's folder, or absolute;
* a *fine* label column (``label``, ``ans``, ``class_id``, ``labels``, ``class``,
  ``fine`` or ``galaxy10``): a class index, key or name of the taxonomy
  (``Barred Spiral``, ``barred_spiral`` and ``5`` are one class);
* and/or a *coarse* label column (``coarse``): a coarse group of the taxonomy
  (``smooth``, ``spiral``, ``edge-on``, ``merger-irregular``), used for the rows
  whose fine label is empty;
* optionally a ``split`` column (``train``, ``val``, ``test``, ``unlabelled``...)
  and descriptive columns kept per row (``source``, ``survey``), by which
  evaluation reports its numbers.

The taxonomy is named by the table's ``taxonomy`` metadata, else Galaxy10 DECaLS
(class names and coarse groups are looked up there; a catalog of integer labels
alone does not say which taxonomy it is).
Rows with neither label are unlabelled and left out. The layout follows the Galaxy
Zoo ``labels.csv`` of docs/training.md ("Real galaxies").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..taxonomy import GALAXY10_DECALS, Taxonomy, get_taxonomy
from .hdf5 import DatasetError
from .prepared import PATH_COLUMNS

__all__ = [
    "COARSE_COLUMNS",
    "FINE_COLUMNS",
    "INFO_COLUMNS",
    "PATH_COLUMNS",
    "LabelCatalog",
    "read_label_catalog",
]

log = logging.getLogger(__name__)

FINE_COLUMNS = ("label", "ans", "class_id", "labels", "class", "fine", "galaxy10")
COARSE_COLUMNS = ("coarse", "coarse_label")
#: per-row columns kept for reports, when the catalog has them
INFO_COLUMNS = ("source", "survey")


@dataclass
class LabelCatalog:
    """A label catalog's rows, read and resolved (before any image is opened).

    Attributes
    ----------
    paths : list of str
        Absolute file path of every row.
    labels : ndarray
        int64 node label of every row (a class, a coarse group ``n_classes + g``,
        or -1 for an unlabelled row); see :mod:`galaxalign_astro.taxonomy`.
    splits : ndarray or None
        Lower-case split name of every row, None without a split column.
    info : dict
        Column name -> str array, for :data:`INFO_COLUMNS` and ``file``.
    taxonomy : Taxonomy or None
        The taxonomy the labels index; None when the catalog does not say (no
        ``taxonomy`` metadata, integer class labels only, no coarse column).
    """

    paths: list[str]
    labels: np.ndarray
    splits: np.ndarray | None
    info: dict[str, np.ndarray]
    taxonomy: Taxonomy | None


def _find(names: Sequence[str], candidates: Sequence[str]) -> str | None:
    lower = {n.lower(): n for n in names}
    return next((lower[c] for c in candidates if c in lower), None)


def _text(column: Any) -> np.ndarray:
    """A column as stripped strings, masked or missing cells as ''."""
    values = column
    if hasattr(values, "mask") and np.any(values.mask):
        values = values.filled("" if values.dtype.kind in "US" else -1)
        mask = np.asarray(column.mask)
    else:
        mask = np.zeros(len(column), dtype=bool)
    out = np.array([str(v).strip() for v in np.asarray(values)], dtype=object)
    out[mask] = ""
    return out


def _node_labels(
    fine: np.ndarray | None, coarse: np.ndarray | None, taxonomy: Taxonomy, where: str
) -> np.ndarray:
    n = len(fine if fine is not None else coarse)  # type: ignore[arg-type]
    labels = np.full(n, -1, dtype=np.int64)
    members = taxonomy.members_matrix()
    cache: dict[tuple[str, str], int] = {}

    def lookup(kind: str, value: str, row: int) -> int:
        key = (kind, value)
        if key not in cache:
            try:
                if kind == "fine":
                    number = int(value) if value.lstrip("-").isdigit() else None
                    if number is not None and not 0 <= number < len(taxonomy):
                        msg = f"class index {number} outside 0..{len(taxonomy) - 1}"
                        raise ValueError(msg)
                    cache[key] = number if number is not None else taxonomy.class_label(value)
                else:
                    cache[key] = taxonomy.group_label(value)
            except ValueError as exc:
                msg = f"{where}: row {row}: {exc}"
                raise DatasetError(msg) from None
        return cache[key]

    for i in range(n):
        f = fine[i] if fine is not None else ""
        c = coarse[i] if coarse is not None else ""
        if f:
            labels[i] = lookup("fine", f, i)
            if c and not members[lookup("coarse", c, i), labels[i]]:
                msg = f"{where}: row {i}: fine label {f!r} is not in coarse group {c!r}"
                raise DatasetError(msg)
        elif c:
            labels[i] = lookup("coarse", c, i)
    return labels


def read_label_catalog(path: str | os.PathLike[str]) -> LabelCatalog:
    """Read a label catalog's rows (module documentation); opens no image.

    Raises
    ------
    DatasetError
        Naming the file and the problem: unreadable table, no file column, no
        label column, a label that is not a class or group of the taxonomy.
    """
    from astropy.table import Table

    where = str(path)
    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many types for files it cannot identify
        msg = f"{where}: not a Galaxy10/GalaxyMNIST HDF5 file nor a readable catalog ({exc})"
        raise DatasetError(msg) from None
    names = table.colnames
    path_col = _find(names, PATH_COLUMNS)
    if path_col is None:
        msg = f"{where}: no file column (looked for {', '.join(PATH_COLUMNS)})"
        raise DatasetError(msg)
    fine_col, coarse_col = _find(names, FINE_COLUMNS), _find(names, COARSE_COLUMNS)
    if fine_col is None and coarse_col is None:
        wanted = ", ".join(FINE_COLUMNS + COARSE_COLUMNS)
        msg = f"{where}: no label column (looked for {wanted})"
        raise DatasetError(msg)
    name = table.meta.get("taxonomy") or table.meta.get("TAXONOMY")
    taxonomy = GALAXY10_DECALS
    if isinstance(name, str):
        try:
            taxonomy = get_taxonomy(name)
        except ValueError as exc:
            msg = f"{where}: {exc}"
            raise DatasetError(msg) from None
    fine = _text(table[fine_col]) if fine_col is not None else None
    coarse = _text(table[coarse_col]) if coarse_col is not None else None
    labels = _node_labels(fine, coarse, taxonomy, where)
    named = isinstance(name, str) or coarse is not None
    if fine is not None and not named:
        named = any(v and not v.lstrip("-").isdigit() for v in fine)
    base = Path(path).resolve().parent
    files = _text(table[path_col])
    paths = [p if os.path.isabs(p) else str(base / p) for p in files]
    split_col = _find(names, ("split",))
    splits = None
    if split_col is not None:
        splits = np.array([s.lower() for s in _text(table[split_col])], dtype=object)
    info = {"file": files.astype(str)}
    for column in INFO_COLUMNS:
        found = _find(names, (column,))
        if found is not None:
            info[column] = _text(table[found]).astype(str)
    return LabelCatalog(paths, labels, splits, info, taxonomy if named else None)
