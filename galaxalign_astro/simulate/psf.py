"""Moffat point-spread functions, drawn by GalSim and cached in Fourier space.

GalSim draws each Moffat and the square-pixel response is applied in Fourier
space, which matters for stars: a point source *is* the PSF. Each PSF is drawn once per
process for a quantised (FWHM, beta, canvas size) and kept as its real FFT, so a
cutout's convolution is one forward and one inverse FFT of its three bands.
FWHM is quantised in steps of 2 % (ours): finer than the band-to-band spread and
small enough that the recorded truth (the quantised value) is what was applied.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = ["PSF_FWHM_STEP", "MoffatPSF", "moffat_psf", "quantise_fwhm"]

#: fractional FWHM step of the PSF cache
PSF_FWHM_STEP = 0.02


@dataclass(frozen=True)
class MoffatPSF:
    """One cached PSF.

    Attributes
    ----------
    fwhm_px : float
        The (quantised) FWHM in pixels that was drawn.
    beta : float
        Moffat index.
    transform : `~numpy.ndarray`
        ``scipy.fft.rfft2`` of the centred, unit-sum PSF on the canvas grid; real
        because the PSF is symmetric (float32, shape ``(length, length // 2 + 1)``).
    noise_area : float
        Noise-equivalent area ``1 / sum(psf^2)`` in pixels, used to turn a
        5-sigma point-source depth into a per-pixel noise.
    peak : float
        Fraction of a point source's flux that lands in its brightest pixel.
    """

    fwhm_px: float
    beta: float
    transform: np.ndarray
    noise_area: float
    peak: float


def quantise_fwhm(fwhm_px: float) -> int:
    """Cache key of ``fwhm_px``: the index of its log-spaced bin."""
    return round(math.log(fwhm_px) / math.log1p(PSF_FWHM_STEP))


def moffat_psf(fwhm_px: float, beta: float, length: int) -> MoffatPSF:
    """The cached pixel-integrated Moffat PSF nearest to ``fwhm_px`` for a canvas of ``length``."""
    if fwhm_px <= 0 or not math.isfinite(fwhm_px):
        msg = f"PSF FWHM must be positive, got {fwhm_px} pixels"
        raise ValueError(msg)
    return _draw(quantise_fwhm(fwhm_px), round(beta * 4) / 4, length)


@functools.lru_cache(maxsize=160)
def _draw(key: int, beta: float, length: int) -> MoffatPSF:
    import galsim

    fwhm = math.exp(key * math.log1p(PSF_FWHM_STEP))
    # GalSim samples the Moffat; the square-pixel response is applied as the
    # separable sinc in Fourier space, which matches GalSim's own pixel-convolved
    # drawing to 0.1 % of the peak for FWHM >= 3 pixels at 1/20 of the cost.
    profile = galsim.Moffat(beta=beta, fwhm=fwhm)
    sampled = profile.drawImage(
        nx=length, ny=length, scale=1.0, method="no_pixel", use_true_center=False
    ).array.astype(np.float64)
    transform = scipy.fft.rfft2(np.fft.ifftshift(sampled))
    transform *= _pixel_response(length)
    transform /= transform[0, 0].real
    image = scipy.fft.irfft2(transform, s=(length, length))
    # a centred, symmetric PSF has a real transform: half the memory, cheaper products
    return MoffatPSF(
        fwhm_px=fwhm,
        beta=beta,
        transform=transform.real.astype(np.float32),
        noise_area=float(1.0 / np.sum(image * image)),
        peak=float(image.max()),
    )


@functools.cache
def _pixel_response(length: int) -> np.ndarray:
    """Fourier transform of a unit square pixel on the ``rfft2`` grid of a ``length`` canvas."""
    ky = np.fft.fftfreq(length)
    kx = np.fft.rfftfreq(length)
    return np.sinc(ky)[:, None] * np.sinc(kx)[None, :]
