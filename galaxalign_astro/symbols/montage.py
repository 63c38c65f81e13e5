"""Write a symbol set to disk, with an overview montage a person can look at."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import OutputExistsError
from .config import SymbolConfig
from .render import symbol_bank

__all__ = ["symbol_montage", "write_symbol_set"]

log = logging.getLogger(__name__)

_BACKGROUND = 48
_TEXT = (230, 230, 230)


def symbol_montage(
    bank: np.ndarray, labels: Sequence[str], *, tile: int | None = None, gap: int = 4
) -> np.ndarray:
    """Arrange a symbol bank as a labelled grid: one row per class, one column per variant.

    Parameters
    ----------
    bank : `numpy.ndarray`
        uint8 array (n_classes, variants, size, size, 3), e.g. from `symbol_bank`.
    labels : sequence of str
        Row labels (class names), one per class.
    tile : int, optional
        Side of each tile in the montage; default ``min(size, 128)``.
    gap : int
        Grey gap between tiles, pixels.

    Returns
    -------
    `numpy.ndarray`
        uint8 RGB image of the grid with the labels on the left and the variant
        numbers on top (variant 0 is the canonical icon).
    """
    if bank.ndim != 5 or bank.shape[-1] != 3:
        msg = f"bank must have shape (classes, variants, size, size, 3), got {bank.shape}"
        raise ValueError(msg)
    n_rows, n_cols, size = bank.shape[:3]
    if len(labels) != n_rows:
        msg = f"got {len(labels)} labels for {n_rows} classes"
        raise ValueError(msg)
    tile = min(size, 128) if tile is None else int(tile)
    font = ImageFont.load_default(size=max(10, tile // 8))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(int(probe.textlength(str(lab), font=font)) for lab in labels) + 3 * gap
    header_h = max(14, tile // 6) + gap
    width = label_w + n_cols * (tile + gap) + gap
    height = header_h + n_rows * (tile + gap) + gap
    canvas = Image.new("RGB", (width, height), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    for j in range(n_cols):
        x = label_w + j * (tile + gap) + tile // 2
        draw.text((x, header_h // 2), str(j), fill=_TEXT, font=font, anchor="mm")
    for i, lab in enumerate(labels):
        y = header_h + i * (tile + gap)
        draw.text((gap, y + tile // 2), str(lab), fill=_TEXT, font=font, anchor="lm")
        for j in range(n_cols):
            img = Image.fromarray(bank[i, j])
            if tile != size:
                img = img.resize((tile, tile), Image.Resampling.LANCZOS)
            canvas.paste(img, (label_w + j * (tile + gap), y))
    return np.asarray(canvas)


def _save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG through a temporary file so a crash never leaves half a file."""
    # a plain open() (not mkstemp) so the file gets the user's umask permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_symbol_set(
    out_dir: str | os.PathLike[str],
    keys: Sequence[str],
    *,
    size: int = 224,
    config: SymbolConfig | None = None,
    labels: Sequence[str] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Render every variant of every class and write them as PNG files.

    Layout: ``out_dir/<key>/<key>_<v>.png`` for every variant ``v``, the overview
    montage ``out_dir/symbols.png`` and ``out_dir/symbols.json`` (keys, size,
    `SymbolConfig`, package version).

    Parameters
    ----------
    out_dir : path
        Output directory (created if missing).
    keys : sequence of str
        Class keys to draw.
    size : int
        Symbol side in pixels.
    config : `SymbolConfig`, optional
        Variants, seed and parameter ranges.
    labels : sequence of str, optional
        Montage row labels; default the keys.
    overwrite : bool
        Replace existing files; otherwise raise `OutputExistsError` before
        writing anything. With ``overwrite``, stale ``<key>_<v>.png`` files of
        a former, larger variant count are removed.

    Returns
    -------
    list of `pathlib.Path`
        Every file written, montage and JSON last.
    """
    from .._version import __version__

    config = SymbolConfig() if config is None else config
    out = Path(out_dir)
    keys = list(keys)
    labels = list(keys if labels is None else labels)
    targets = [out / k / f"{k}_{v}.png" for k in keys for v in range(config.variants)]
    montage_path, meta_path = out / "symbols.png", out / "symbols.json"
    if not overwrite:
        existing = [p for p in [*targets, montage_path, meta_path] if p.exists()]
        if existing:
            msg = (
                f"{existing[0]} exists ({len(existing)} output files exist); "
                "use --overwrite to replace them"
            )
            raise OutputExistsError(msg)
    bank = symbol_bank(keys, size=size, config=config)
    written = []
    for i, key in enumerate(keys):
        (out / key).mkdir(parents=True, exist_ok=True)
        for v in range(config.variants):
            path = out / key / f"{key}_{v}.png"
            _save_png(bank[i, v], path)
            written.append(path)
        if overwrite:
            for stale in (out / key).glob(f"{key}_*.png"):
                m = re.fullmatch(rf"{re.escape(key)}_(\d+)\.png", stale.name)
                if m and int(m.group(1)) >= config.variants:
                    log.info("removing stale symbol %s", stale)
                    stale.unlink()
    _save_png(symbol_montage(bank, labels), montage_path)
    written.append(montage_path)
    meta = {"keys": keys, "size": size, "config": config.to_dict(), "version": __version__}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    written.append(meta_path)
    log.info("wrote %d symbol files to %s", len(written), out)
    return written
