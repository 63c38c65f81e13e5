"""Where the cutout of each catalog row comes from.

A *cutout source* turns a block of catalog rows into one cutout file path per row,
or the reason the row has none:

`PathColumn`
    a column of file paths (relative ones are taken from a base directory);
`CutoutsDirectory`
    a directory of files named from an ID column with a pattern (``'{id}.fits'``);
`FetchedCutouts`
    cutouts downloaded from a survey service (`galaxalign_astro.fetch.iter_fetch`)
    into a directory, in parallel threads.
"""

from __future__ import annotations

import logging
import os
import re
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

__all__ = [
    "CutoutSource",
    "CutoutsDirectory",
    "FetchedCutouts",
    "PathColumn",
    "fetch_geometry",
]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def _column_values(table: Table, name: str) -> tuple[list[str], np.ndarray]:
    """Text of each cell of ``table[name]`` and a mask of the missing ones."""
    col = table[name]
    mask = np.asarray(np.ma.getmaskarray(col), dtype=bool).reshape(len(col), -1).any(axis=1)
    values = [_text(v) for v in np.ma.getdata(col)]
    mask |= np.array([not v for v in values], dtype=bool)
    return values, mask


class CutoutSource:
    """Base class: maps catalog rows to cutout files.

    Attributes
    ----------
    slow : bool
        Whether `resolve` does slow work (network), so the caller should run it in a
        background thread ahead of the model.
    """

    slow = False
    #: set by the caller to stop a `resolve` early (the rows left get no cutout)
    cancel: threading.Event | None = None

    def check(self, template: Table) -> None:
        """Raise `ValueError` if a table with ``template``'s columns cannot be used."""

    def resolve(self, table: Table, first_row: int) -> tuple[list[str | None], list[str]]:
        """Cutout path of each row (None if it has none) and the reason for each None.

        Parameters
        ----------
        table : `~astropy.table.Table`
            A block of catalog rows (original column names).
        first_row : int
            Index of the block's first row in the whole catalog.
        """
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """What determines the cutouts (for the resume manifest)."""
        return {}

    def close(self) -> None:
        """Release resources."""


@dataclass
class PathColumn(CutoutSource):
    """Cutout paths from a catalog column; relative paths start at ``base_dir``."""

    column: str
    base_dir: str | os.PathLike[str] | None = None

    def check(self, template: Table) -> None:
        if self.column not in template.colnames:
            msg = f"catalog has no column {self.column!r} of cutout paths"
            raise ValueError(msg)

    def resolve(self, table: Table, first_row: int) -> tuple[list[str | None], list[str]]:
        values, missing = _column_values(table, self.column)
        base = Path(self.base_dir) if self.base_dir is not None else Path()
        paths: list[str | None] = []
        errors: list[str] = []
        for value, gone in zip(values, missing, strict=True):
            if gone:
                paths.append(None)
                errors.append(f"no cutout path in column {self.column!r}")
            else:
                paths.append(str(base / value))
                errors.append("")
        return paths, errors

    def settings(self) -> dict[str, Any]:
        base = Path(self.base_dir).resolve() if self.base_dir is not None else Path.cwd()
        return {"path_col": self.column, "base_dir": str(base)}


@dataclass
class CutoutsDirectory(CutoutSource):
    """Files in ``directory`` named by ``pattern`` from an ID column and the row number.

    ``pattern`` is a `str.format` template with the fields ``{id}`` (the value of
    ``id_col``) and ``{row}`` (the zero-based catalog row), e.g. ``'{id}.fits'`` or
    ``'cutout_{row:06d}.fits'``.
    """

    directory: str | os.PathLike[str]
    id_col: str | None = None
    pattern: str = "{id}.fits"

    def __post_init__(self) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.pattern) if f is not None}
        unknown = fields - {"id", "row"}
        if unknown or not fields:
            msg = (
                f"cutout file pattern {self.pattern!r} must use {{id}} and/or {{row}} "
                f"(and nothing else{'; found ' + ', '.join(sorted(unknown)) if unknown else ''})"
            )
            raise ValueError(msg)
        if "id" in fields and self.id_col is None:
            msg = f"cutout file pattern {self.pattern!r} uses {{id}}: name the ID column (id_col)"
            raise ValueError(msg)
        if not Path(self.directory).is_dir():
            msg = f"cutout directory {self.directory} does not exist"
            raise FileNotFoundError(msg)

    def check(self, template: Table) -> None:
        if self.id_col is not None and self.id_col not in template.colnames:
            msg = f"catalog has no ID column {self.id_col!r}"
            raise ValueError(msg)

    def resolve(self, table: Table, first_row: int) -> tuple[list[str | None], list[str]]:
        if self.id_col is not None:
            ids, missing = _column_values(table, self.id_col)
        else:
            ids, missing = [""] * len(table), np.zeros(len(table), dtype=bool)
        folder = Path(self.directory)
        paths: list[str | None] = []
        errors: list[str] = []
        for i, (ident, gone) in enumerate(zip(ids, missing, strict=True)):
            if gone:
                paths.append(None)
                errors.append(f"no ID in column {self.id_col!r}")
                continue
            paths.append(str(folder / self.pattern.format(id=ident, row=first_row + i)))
            errors.append("")
        return paths, errors

    def settings(self) -> dict[str, Any]:
        return {
            "cutouts_dir": str(Path(self.directory).resolve()),
            "id_col": self.id_col,
            "pattern": self.pattern,
        }


def fetch_geometry(
    client: Any,
    preprocess: Any,
    *,
    size: int | None = None,
    pixscale: float | None = None,
    bands: str | None = None,
) -> dict[str, Any]:
    """Cutout geometry to request: explicit values, else what the model was trained on.

    Ours: ``bands`` defaults to the model's bands, ``pixscale`` to the survey's, and
    ``size`` to the number of pixels covering the model's field of view
    (``fov_arcsec``), within the service's size limit, so the model sees the field it
    was trained on.
    """
    model_bands = tuple(preprocess.bands)
    if bands is None and all(len(b) == 1 for b in model_bands):
        bands = "".join(model_bands)
    scale = float(client.default_pixscale if pixscale is None else pixscale)
    if size is None:
        if preprocess.fov_arcsec:
            size = max(8, round(preprocess.fov_arcsec / scale))
        else:
            size = int(client.default_size)
        if client.max_size is not None:
            size = min(size, int(client.max_size))
    return {"size": int(size), "pixscale": scale, "bands": bands}


def geometry_problems(preprocess: Any, geometry: dict[str, Any]) -> list[str]:
    """Differences between a fetch geometry and the model's preprocessing, as sentences."""
    problems = []
    bands = geometry.get("bands")
    if bands is not None:
        missing = [b for b in preprocess.bands if b not in bands]
        if missing:
            problems.append(
                f"the cutouts lack band(s) {', '.join(missing)} that the model needs "
                f"({''.join(preprocess.bands)})"
            )
    if preprocess.fov_arcsec:
        side = geometry["size"] * geometry["pixscale"]
        if side < preprocess.fov_arcsec - geometry["pixscale"]:
            problems.append(
                f'the cutouts cover {side:.1f}" but the model was trained on '
                f'{preprocess.fov_arcsec:.1f}" fields (the rest is zero-padded)'
            )
    return problems


@dataclass
class FetchedCutouts(CutoutSource):
    """Cutouts downloaded from a survey into ``directory`` while the model runs.

    Files are named ``<row>.fits`` (or ``<row>_<id>.fits`` with an ID column) from
    the zero-based catalog row, so two rows never share a file; a file already there
    is kept, so a resumed run downloads only what is missing.

    Parameters
    ----------
    client : `~galaxalign_astro.fetch.client.SurveyClient`
        A client from `~galaxalign_astro.fetch.get_client`.
    directory : path-like
        Where the files go.
    ra_col, dec_col : str
        Coordinate columns (see `~galaxalign_astro.fetch.find_coord_columns`).
    id_col : str, optional
        Column whose value goes into the file names.
    size, pixscale, bands : optional
        Geometry (see `fetch_geometry`).
    max_workers : int, optional
        Parallel requests (default: the client's).
    """

    client: Any
    directory: str | os.PathLike[str]
    ra_col: str
    dec_col: str
    id_col: str | None = None
    size: int | None = None
    pixscale: float | None = None
    bands: str | None = None
    max_workers: int | None = None
    slow = True
    counts: dict[str, int] = field(default_factory=dict)

    def check(self, template: Table) -> None:
        for name in (self.ra_col, self.dec_col, self.id_col):
            if name is not None and name not in template.colnames:
                msg = f"catalog has no column {name!r}"
                raise ValueError(msg)

    def resolve(self, table: Table, first_row: int) -> tuple[list[str | None], list[str]]:
        from ..fetch import iter_fetch, read_targets

        n = len(table)
        if not n:
            return [], []
        _, ra, dec = read_targets(table, ra_col=self.ra_col, dec_col=self.dec_col)
        rows = np.arange(first_row, first_row + n)
        names = [f"{row:09d}" for row in rows]
        if self.id_col is not None:
            ids, missing = _column_values(table, self.id_col)
            names = [
                name if gone else f"{name}_{_UNSAFE.sub('_', ident)}"
                for name, ident, gone in zip(names, ids, missing, strict=True)
            ]
        targets = Table({"file": names, "ra": ra, "dec": dec})
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        paths: list[str | None] = [None] * n
        errors = ["cutout was not fetched"] * n
        for result in iter_fetch(
            targets,
            client=self.client,
            out_dir=Path(self.directory),
            id_col="file",
            ra_col="ra",
            dec_col="dec",
            size=self.size,
            pixscale=self.pixscale,
            bands=self.bands,
            max_workers=self.max_workers,
        ):
            if self.cancel is not None and self.cancel.is_set():
                break  # closing iter_fetch cancels the requests not yet started
            key = result.source if result.ok else "error"
            self.counts[key] = self.counts.get(key, 0) + 1
            if result.ok:
                paths[result.index] = str(result.path)
                errors[result.index] = ""
            else:
                errors[result.index] = f"fetch failed: {result.error}"
        return paths, errors

    def settings(self) -> dict[str, Any]:
        return {
            "fetch": self.client.survey,
            "layer": self.client.layer,
            "size": self.size,
            "pixscale": self.pixscale,
            "bands": self.bands,
            "hips_ids": getattr(self.client, "hips_ids", None),
            "ra_col": self.ra_col,
            "dec_col": self.dec_col,
            "id_col": self.id_col,
        }
