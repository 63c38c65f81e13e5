"""Survey constants and domain-randomisation ranges of the cutout simulator.

These are the *parameters* of the simulator, kept apart from the data it makes:
one frozen :class:`SimulationConfig` holds every number a user might want to
tune, and :data:`DEFAULT_CONFIG` is what :func:`~galaxalign_astro.simulate.simulate_cutout`
uses unless told otherwise. All values are ours, chosen to resemble DESI Legacy
Surveys DR9/DR10 g,r,z coadds (see ``docs/simulator.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BANDS", "DEFAULT_CONFIG", "ZERO_POINT", "SimulationConfig"]

#: band names of the simulated cube, in plane order
BANDS = ("g", "r", "z")

#: AB magnitude of one nanomaggy-per-unit flux: m = ZERO_POINT - 2.5 log10(flux / nmgy)
ZERO_POINT = 22.5


@dataclass(frozen=True)
class SimulationConfig:
    """Everything the simulator randomises over, as ``(low, high)`` ranges.

    Ranges are sampled uniformly unless a docstring line says otherwise. Angles
    are in degrees, sizes in arcsec, brightness in AB magnitudes.

    Attributes
    ----------
    psf_fwhm_r : tuple of float
        r-band Moffat FWHM (the observed DECaLS seeing range).
    psf_fwhm_g_ratio, psf_fwhm_z_ratio : tuple of float
        g and z FWHM as a multiple of r's (seeing is worse in the blue).
    psf_fwhm_limits : tuple of float
        Every band's FWHM is clipped to this range.
    psf_beta : tuple of float
        Moffat ``beta`` values to choose from (not a range).
    depth_r : tuple of float
        5-sigma point-source depth in r.
    depth_g_offset, depth_z_offset : tuple of float
        g and z depth relative to r's.
    sky_mag : tuple of float
        Sky surface brightness in g, r, z (mag/arcsec^2); sets the photon-noise gain.
    sky_residual_sigma : float
        RMS of the leftover constant and gradient after sky subtraction, in units
        of the per-pixel sky noise.
    calibration_sigma : float
        RMS of the per-band multiplicative calibration error (fractional).
    pixel_scale_jitter : float
        The true pixel scale is the nominal one times ``1 + U(-jitter, jitter)``;
        the header WCS records the true value.
    centre_offset_sigma : float
        RMS offset (pixels, each axis) of the galaxy centre from the cutout centre.
    saturation_nmgy : tuple of float
        Per-pixel level at which bright stars saturate (nanomaggies).
    star_density : tuple of float
        Mean number of stars brighter than r = 23 per arcmin^2 (Galactic latitude range).
    bright_star_probability : float
        Chance that a cutout holds a saturated star (r < 15).
    background_density : tuple of float
        Mean number of background galaxies per arcmin^2 (r < 24).
    neighbour_probability : float
        Chance of one or two bright, non-interacting neighbour galaxies.
    dec_range : tuple of float
        Declination range (deg) of the random sky positions (DECaLS-like).
    survey, version : str
        ``SURVEY`` and ``VERSION`` header values, as a Legacy Surveys cutout has.
    """

    psf_fwhm_r: tuple[float, float] = (1.0, 1.6)
    psf_fwhm_g_ratio: tuple[float, float] = (1.0, 1.15)
    psf_fwhm_z_ratio: tuple[float, float] = (0.85, 1.0)
    psf_fwhm_limits: tuple[float, float] = (0.9, 1.8)
    psf_beta: tuple[float, ...] = (2.5, 3.0, 3.5)
    depth_r: tuple[float, float] = (23.5, 24.4)
    depth_g_offset: tuple[float, float] = (0.4, 0.8)
    depth_z_offset: tuple[float, float] = (-1.1, -0.7)
    sky_mag: tuple[float, float, float] = (22.0, 21.0, 19.8)
    sky_residual_sigma: float = 0.05
    calibration_sigma: float = 0.02
    pixel_scale_jitter: float = 0.05
    centre_offset_sigma: float = 0.7
    saturation_nmgy: tuple[float, float] = (15.0, 60.0)
    star_density: tuple[float, float] = (0.5, 4.0)
    bright_star_probability: float = 0.12
    background_density: tuple[float, float] = (4.0, 10.0)
    neighbour_probability: float = 0.3
    dec_range: tuple[float, float] = (-20.0, 34.0)
    survey: str = "LegacySurvey"
    version: str = "DR10"

    def __post_init__(self) -> None:
        for name in (
            "psf_fwhm_r",
            "psf_fwhm_g_ratio",
            "psf_fwhm_z_ratio",
            "psf_fwhm_limits",
            "depth_r",
            "saturation_nmgy",
            "star_density",
            "background_density",
        ):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                msg = f"{name} must be a (low, high) range of positive numbers, got {(low, high)}"
                raise ValueError(msg)
        if not 0 <= self.pixel_scale_jitter < 0.5:
            msg = f"pixel_scale_jitter must be in [0, 0.5), got {self.pixel_scale_jitter}"
            raise ValueError(msg)
        if not self.psf_beta or min(self.psf_beta) <= 1.5:
            msg = f"psf_beta values must be > 1.5, got {self.psf_beta}"
            raise ValueError(msg)


DEFAULT_CONFIG = SimulationConfig()
