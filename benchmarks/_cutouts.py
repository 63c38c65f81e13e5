"""Synthetic Legacy-Survey-like cutout files shared by the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits


def write_cutouts(folder: Path, n: int, size: int) -> list[str]:
    """``n`` Legacy-Survey-like (3, size, size) cubes with a TAN WCS and BANDS=grz."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    paths = []
    for i in range(n):
        q = rng.uniform(0.2, 1.0)
        width = size / 20
        blob = np.exp(-0.5 * ((x / width) ** 2 + (y / (width * q)) ** 2))
        cube = (blob[None] * np.array([0.5, 1.0, 1.5])[:, None, None]).astype(np.float32)
        cube += rng.normal(0, 0.003, cube.shape).astype(np.float32)
        header = fits.Header()
        header.update(
            CTYPE1="RA---TAN",
            CTYPE2="DEC--TAN",
            CRVAL1=150.0 + 0.01 * i,
            CRVAL2=2.0,
            CRPIX1=size / 2 + 0.5,
            CRPIX2=size / 2 + 0.5,
            CD1_1=-0.262 / 3600,
            CD1_2=0.0,
            CD2_1=0.0,
            CD2_2=0.262 / 3600,
            BANDS="grz",
        )
        path = folder / f"c{i:06d}.fits"
        fits.PrimaryHDU(cube, header).writeto(path)
        paths.append(str(path))
    return paths
