"""Image grids of search results: the query and its nearest catalog rows.

Thumbnails are the catalog's ``source`` cutouts prepared exactly as the model saw
them (its bands, stretch and field of view), so the grid shows what was compared.
Drawn with matplotlib's Agg renderer, without pyplot.
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputExistsError

__all__ = [
    "LABEL_PX",
    "TITLE_PX",
    "load_thumbnail",
    "montage_size",
    "resolve_source",
    "save_figure",
    "search_montage",
    "warn_missing_cutouts",
]

log = logging.getLogger(__name__)

#: height in pixels of the label strip under each panel
LABEL_PX = 34
#: height in pixels of the title strip
TITLE_PX = 26
_DPI = 100
_QUERY_COLOUR = "#e66101"
_FRAME_COLOUR = "#8c8c8c"


def resolve_source(source: str, base_dirs: Sequence[str | os.PathLike[str]] = ()) -> Path | None:
    """The existing file a catalog ``source`` names: as given, else under ``base_dirs``."""
    text = str(source).strip()
    if not text:
        return None
    path = Path(text)
    if path.is_file():
        return path
    if not path.is_absolute():
        for base in base_dirs:
            candidate = Path(base) / path
            if candidate.is_file():
                return candidate
    return None


def load_thumbnail(
    source: str | os.PathLike[str],
    preprocess: Any = None,
    *,
    base_dirs: Sequence[str | os.PathLike[str]] = (),
) -> np.ndarray | None:
    """A cutout file as the model sees it, (S, S, 3) float in [0, 1]; None if unusable.

    Parameters
    ----------
    source : str or path-like
        Cutout path (relative paths are also tried under ``base_dirs``).
    preprocess : `~galaxalign_astro.preprocess.PreprocessConfig` or dict, optional
        The model's preprocessing; default `PreprocessConfig()`.
    base_dirs : sequence of path-like
        Folders to resolve relative paths against (e.g. the catalog's folder).
    """
    from ..errors import CutoutError
    from ..io import read_cutout
    from ..preprocess import PreprocessConfig, prepare

    if preprocess is None:
        config = PreprocessConfig()
    elif isinstance(preprocess, PreprocessConfig):
        config = preprocess
    else:
        config = PreprocessConfig.from_dict(dict(preprocess))
    path = resolve_source(os.fspath(source), base_dirs)
    if path is None:
        log.info("cutout %s not found; no thumbnail", source)
        return None
    try:
        planes = prepare(read_cutout(path, fov_arcsec=config.fov_arcsec), config).image
    except (CutoutError, OSError, ValueError) as exc:
        log.info("no thumbnail for %s: %s", path, exc)
        return None
    return np.moveaxis(np.clip(planes, 0.0, 1.0), 0, -1)


def montage_size(n_panels: int, *, ncols: int, panel_px: int, title: bool) -> tuple[int, int]:
    """``(width, height)`` in pixels of a montage of ``n_panels`` panels (query included)."""
    cols = max(1, min(ncols, n_panels))
    rows = math.ceil(n_panels / cols)
    return cols * panel_px, rows * (panel_px + LABEL_PX) + (TITLE_PX if title else 0)


def save_figure(fig: Any, output: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Save a matplotlib figure atomically (temporary file, then rename)."""
    path = Path(output)
    if path.exists() and not overwrite:
        msg = f"output {path} exists; use overwrite (--overwrite) to replace it"
        raise OutputExistsError(msg)
    if not path.parent.is_dir():
        msg = f"folder {path.parent} for output {path.name} does not exist"
        raise FileNotFoundError(msg)
    fmt = path.suffix.lower().lstrip(".") or "png"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        fig.savefig(tmp, dpi=_DPI, format=fmt)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _frame(ax: Any, colour: str, width: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def _text_panel(ax: Any, text: str, panel_px: int) -> None:
    ax.set_facecolor("#fdf6ec")
    width = max(10, int(panel_px / 6.5))
    lines = textwrap.wrap(f"\u201c{text}\u201d", width=width)
    max_lines = max(3, int(panel_px / 13))
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: width - 1] + "\u2026"]
    ax.text(
        0.5,
        0.5,
        "\n".join(lines),
        ha="center",
        va="center",
        fontsize=8,
        style="italic",
        transform=ax.transAxes,
    )


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def search_montage(
    results: Any,
    output: str | os.PathLike[str],
    *,
    query: Any = None,
    preprocess: Any = None,
    base_dirs: Sequence[str | os.PathLike[str]] = (),
    source_col: str | None = None,
    class_col: str | None = None,
    ncols: int = 6,
    panel_px: int = 128,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Draw the query and its neighbours as a labelled grid of thumbnails.

    Parameters
    ----------
    results : `~astropy.table.Table`
        A ``search_by_*`` result (``rank``, ``row``, ``score`` and, for thumbnails
        and class labels, the catalog's ``source`` / ``class_name`` columns).
    output : str or path-like
        Image file (PNG; format from the suffix).
    query : `~galaxalign_astro.search.Query`, optional
        Drawn first: its image or symbol, the text in a box, or the row's thumbnail.
    preprocess : `~galaxalign_astro.preprocess.PreprocessConfig` or dict, optional
        Preprocessing of the thumbnails (the model's).
    base_dirs : sequence of path-like
        Folders for relative ``source`` paths (e.g. the catalog's folder).
    source_col, class_col : str, optional
        Columns with the cutout paths and the class names; default the columns
        ending in ``source`` and ``class_name``.
    ncols : int
        Panels per row.
    panel_px : int
        Side of each thumbnail in pixels. The image is exactly
        `montage_size` ``(1 + len(results), ncols=ncols, panel_px=panel_px,
        title=title is not None)`` pixels.
    title : str, optional
        Line drawn above the grid.
    overwrite : bool
        Replace an existing ``output``.

    Returns
    -------
    `~pathlib.Path`
        The image written.
    """
    from matplotlib.figure import Figure

    names = list(results.colnames)
    source_col = source_col or next((c for c in names if c.endswith("source")), None)
    class_col = class_col or next((c for c in names if c.endswith("class_name")), None)
    n_panels = 1 + len(results)
    width, height = montage_size(n_panels, ncols=ncols, panel_px=panel_px, title=title is not None)
    cols = max(1, min(ncols, n_panels))
    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor="white")
    top = TITLE_PX if title is not None else 0
    if title is not None:
        fig.text(0.5, 1 - (TITLE_PX / 2) / height, title, ha="center", va="center", fontsize=9)
    pad = 3
    cell_h = panel_px + LABEL_PX

    def axes(i: int) -> Any:
        r, c = divmod(i, cols)
        x0 = c * panel_px + pad
        y_top = top + r * cell_h + pad
        side = panel_px - 2 * pad
        return fig.add_axes((x0 / width, 1 - (y_top + side) / height, side / width, side / height))

    def label(i: int, text: str, colour: str = "black") -> None:
        r, c = divmod(i, cols)
        y = top + r * cell_h + panel_px + LABEL_PX / 2
        fig.text(
            (c + 0.5) * panel_px / width,
            1 - y / height,
            text,
            ha="center",
            va="center",
            fontsize=7,
            color=colour,
        )

    ax = axes(0)
    _frame(ax, _QUERY_COLOUR, 2.5)
    kind = getattr(query, "kind", None)
    value = str(getattr(query, "value", ""))
    display = getattr(query, "display", None)
    if display is None and kind == "row" and source_col is not None:
        match = np.flatnonzero(np.asarray(results["row"]) == int(value))
        if len(match):
            display = load_thumbnail(results[source_col][match[0]], preprocess, base_dirs=base_dirs)
    if kind == "text":
        _text_panel(ax, value, panel_px)
        label(0, "query: text", _QUERY_COLOUR)
    elif display is not None:
        ax.imshow(np.clip(display, 0, 1), interpolation="nearest")
        if kind == "row":
            label(0, f"query: row {value}", _QUERY_COLOUR)
        else:
            what = "sketch" if kind == "symbol" else "image"
            name = _short(Path(value).name, int(panel_px / 6.2))
            label(0, f"query: {what}\n{name}", _QUERY_COLOUR)
    else:
        ax.set_facecolor("#eeeeee")
        label(0, "query" + (f"\n{kind} {_short(value, 18)}" if kind else ""), _QUERY_COLOUR)

    cache: dict[str, np.ndarray | None] = {}
    for i, entry in enumerate(results, start=1):
        ax = axes(i)
        _frame(ax, _FRAME_COLOUR, 1.0)
        thumb = None
        if source_col is not None:
            src = str(entry[source_col])
            if src not in cache:
                cache[src] = load_thumbnail(src, preprocess, base_dirs=base_dirs)
            thumb = cache[src]
        if thumb is not None:
            ax.imshow(thumb, interpolation="nearest")
        else:
            ax.set_facecolor("#eeeeee")
            ax.text(0.5, 0.5, "no cutout", ha="center", va="center", fontsize=7, color="#666666")
        cls = _short(str(entry[class_col]), int(panel_px / 5.5)) if class_col else ""
        label(i, f"#{entry['rank']} row {entry['row']}  {entry['score']:.4f}\n{cls}")
    warn_missing_cutouts(output, sum(v is None for v in cache.values()), len(cache), base_dirs)
    return save_figure(fig, output, overwrite=overwrite)


def warn_missing_cutouts(
    output: Any, missing: int, tried: int, base_dirs: Sequence[str | os.PathLike[str]]
) -> None:
    """One warning when cutouts of a figure could not be drawn, saying where they were sought."""
    if not missing:
        return
    where = ", ".join(os.fspath(d) for d in base_dirs) or "no other folder"
    log.warning(
        "%s: %d of %d cutouts could not be drawn (missing or unreadable); relative paths were "
        "tried in the current folder and in %s: pass --base-dir (base_dirs=) with the folder "
        "the catalog's paths are relative to",
        output,
        missing,
        tried,
        where,
    )
