"""Small synthetic cutouts in the FITS layouts users have, for tests."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

PIXSCALE = 0.262


def galaxy_cube(
    size: int = 64,
    *,
    q: float = 1.0,
    angle: float = 0.0,
    flux: float = 5.0,
    seed: int = 0,
    bands: int = 3,
    noise: float = 0.002,
) -> np.ndarray:
    """A Gaussian blob with axis ratio ``q`` plus noise, (bands, size, size) nanomaggies."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    sigma = size / 10
    blob = np.exp(-0.5 * ((u / sigma) ** 2 + (v / (sigma * q)) ** 2))
    blob *= flux / blob.sum()
    colours = np.linspace(0.6, 1.4, bands)[:, None, None]
    return (blob[None] * colours + rng.normal(0, noise, (bands, size, size))).astype(np.float32)


def wcs_header(size: int, ra: float = 150.0, dec: float = 2.0, scale: float = PIXSCALE):
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra, dec
    h["CRPIX1"], h["CRPIX2"] = (size + 1) / 2, (size + 1) / 2
    h["CD1_1"], h["CD1_2"] = -scale / 3600, 0.0
    h["CD2_1"], h["CD2_2"] = 0.0, scale / 3600
    return h


def write_cube(path, cube, *, bands="grz", ra=150.0, dec=2.0, wcs=True, band_keys="BANDS"):
    """Legacy-Survey-like cube in the primary HDU."""
    header = wcs_header(cube.shape[-1], ra, dec) if wcs else fits.Header()
    if band_keys == "BANDS":
        header["BANDS"] = bands
    elif band_keys == "BANDi":
        for i, b in enumerate(bands):
            header[f"BAND{i}"] = b
    fits.PrimaryHDU(cube, header=header).writeto(path, overwrite=True)
    return path


def write_extensions(path, cube, *, bands="grz", keyword="FILTER", ra=150.0, dec=2.0):
    """One band per image extension named by BAND/FILTER, empty primary HDU."""
    hdus = [fits.PrimaryHDU()]
    for plane, band in zip(cube, bands, strict=True):
        h = wcs_header(cube.shape[-1], ra, dec)
        h[keyword] = f"{band} DECam SDSS c0001" if keyword == "FILTER" else band
        hdus.append(fits.ImageHDU(plane, header=h))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def train_blob_model(architecture: str, output, *, n: int, n_train: int, name: str, **settings):
    """A model of ``architecture`` trained two-stage (one epoch each) on ``n`` 32 px blobs.

    Blob ``i`` is class ``i % 10`` with axis ratio ``1 - 0.09 * (i % 10)``; the first
    ``n_train`` train and the rest are held out. ``settings`` go to ``TrainConfig``.
    Returns ``output``, the saved model's folder.
    """
    from galaxalign_astro.io import Cutout
    from galaxalign_astro.preprocess import PreprocessConfig, prepare
    from galaxalign_astro.train import LabelledImages, TrainConfig, Trainer, default_stages
    from galaxalign_astro.train.data import to_uint8

    pre = PreprocessConfig(size=32)
    images = []
    for i in range(n):
        cube = galaxy_cube(64, q=1 - 0.09 * (i % 10), angle=0.3 * i, seed=i)
        images.append(
            to_uint8(prepare(Cutout(cube, ("g", "r", "z"), "flux", None, f"sim{i}"), pre).image)
        )
    data = LabelledImages(np.stack(images), np.arange(n) % 10)
    config = TrainConfig(
        architecture=architecture,
        preprocess=pre,
        stages=default_stages(1, 1),
        batch_size=16,
        symbols={"variants": 2},
        name=name,
        **settings,
    )
    Trainer(config).fit(
        data.subset(np.arange(n_train)), data.subset(np.arange(n_train, n)), output=output
    )
    return output
