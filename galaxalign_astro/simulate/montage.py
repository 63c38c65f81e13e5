"""A labelled PNG montage of simulated cutouts, one row per Galaxy10 class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..preprocess.stretch import dr2_rgb
from ..taxonomy import GALAXY10_DECALS
from .config import BANDS
from .cutout import simulate_cutout

__all__ = ["preview_montage", "to_rgb"]


def to_rgb(cube: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float RGB in [0, 1] of a g,r,z cube via ``dr2_rgb``, north up."""
    return np.flipud(np.moveaxis(dr2_rgb(cube, BANDS), 0, -1))


def preview_montage(
    path: str | os.PathLike,
    *,
    seed: int = 0,
    per_class: int = 4,
    size: int = 256,
    dpi: int = 100,
    colors: int | None = None,
) -> Path:
    """Write a PNG with ``per_class`` simulated cutouts of each of the ten classes.

    Cutout ``j`` of class ``c`` is index ``c * per_class + j`` of the run with
    ``seed``, drawn with label ``c``. ``colors`` reduces the PNG to a dithered
    adaptive palette of that many colours (a third of the file size at 256).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if per_class < 1:
        msg = f"per_class must be >= 1, got {per_class}"
        raise ValueError(msg)
    n_classes = len(GALAXY10_DECALS)
    panel = 1.6
    fig, axes = plt.subplots(
        n_classes,
        per_class,
        figsize=(panel * per_class + 1.7, panel * n_classes),
        squeeze=False,
        gridspec_kw={"wspace": 0.03, "hspace": 0.03},
    )
    for label, name in enumerate(GALAXY10_DECALS.names):
        for j in range(per_class):
            cut = simulate_cutout(label * per_class + j, seed=seed, label=label, size=size)
            ax = axes[label, j]
            ax.imshow(to_rgb(cut.cube), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[label, 0].set_ylabel(f"{label} {name}".replace(" ", "\n", 1), fontsize=8)
    fig.subplots_adjust(left=1.6 / (panel * per_class + 1.7), right=0.99, top=0.995, bottom=0.005)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    if colors is not None:
        from PIL import Image

        with Image.open(path) as img:
            rgb = img.convert("RGB")
        palette = rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
        rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    return path
