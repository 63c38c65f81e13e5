"""Client of the CDS hips2fits service, a general fallback for any HiPS survey.

One request per band, each built by ``astroquery.hips2fits`` (its
``query_async(..., get_query_payload=True)``), on the same north-up TAN
grid; the answers are stacked into one cube (reprojected onto the first
band's grid should a band come back on another grid). ``astroquery.hips2fits``
needs matplotlib to build a request.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any, ClassVar

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, Latitude, Longitude
from astropy.wcs import WCS, FITSFixedWarning

from .client import CutoutRequest, Downloaded, SurveyClient
from .exceptions import InvalidResponseError
from .grid import resample, same_grid
from .validate import parse_fits_bytes

__all__ = ["HIPS_PRESETS", "Hips2FitsClient"]

#: layer name -> (HiPS id template with ``{band}``, bands the survey has)
HIPS_PRESETS = {
    "legacysurvey-dr10": ("CDS/P/DESI-Legacy-Surveys/DR10/{band}", "griz"),
    "sdss9": ("CDS/P/SDSS9/{band}", "ugriz"),
    "panstarrs-dr1": ("CDS/P/PanSTARRS/DR1/{band}", "grizy"),
}

#: the service's own path, appended to the base URL
SERVICE_PATH = "/hips-image-services/hips2fits"


class Hips2FitsClient(SurveyClient):
    """Cutouts resampled by hips2fits from HiPS surveys, one HiPS per band.

    Parameters
    ----------
    layer : str, optional
        A preset of `HIPS_PRESETS` (default ``'legacysurvey-dr10'``) or a
        HiPS id template containing ``{band}``, e.g.
        ``'CDS/P/PanSTARRS/DR1/{band}'``.
    hips_ids : dict, optional
        Band letter -> HiPS id; wins over ``layer`` for those bands.
    **options
        See `~galaxalign_astro.fetch.client.SurveyClient`.

    Notes
    -----
    Pixel values are whatever the HiPS stores (not always nanomaggies);
    ``BUNIT`` is copied from the service's answer when it has one.
    """

    survey: ClassVar[str] = "hips"
    default_layer: ClassVar[str] = "legacysurvey-dr10"
    default_bands: ClassVar[str] = "grz"
    default_pixscale: ClassVar[float] = 0.262

    def __init__(self, *, hips_ids: dict[str, str] | None = None, **options: Any) -> None:
        self.hips_ids = {str(k): str(v) for k, v in (hips_ids or {}).items()}
        super().__init__(**options)

    @property
    def service_url(self) -> str:
        """Full URL of the hips2fits endpoint."""
        return self.base_url + SERVICE_PATH

    def _template(self) -> str | None:
        if self.layer in HIPS_PRESETS:
            return HIPS_PRESETS[self.layer][0]
        if "{band}" in self.layer:
            return self.layer
        return None

    def _check_layer(self, layer: str) -> None:
        if self._template() is None and not self.hips_ids:
            msg = (
                f"hips layer {layer!r} is neither a preset ({', '.join(HIPS_PRESETS)}) nor a "
                "HiPS id template containing '{band}'; or give hips_ids={band: id}"
            )
            raise ValueError(msg)

    def _allowed_bands(self) -> str | None:
        if self.layer in HIPS_PRESETS:
            return HIPS_PRESETS[self.layer][1] + "".join(
                b for b in self.hips_ids if b not in HIPS_PRESETS[self.layer][1]
            )
        if self._template() is None:
            return "".join(self.hips_ids)
        return None

    def hips_id(self, band: str) -> str:
        """Return the HiPS id serving ``band``."""
        if band in self.hips_ids:
            return self.hips_ids[band]
        template = self._template()
        if template is None:
            msg = f"no HiPS id for band {band!r}; hips_ids has {sorted(self.hips_ids)}"
            raise ValueError(msg)
        return template.format(band=band)

    def _plan(self, request: CutoutRequest) -> list[dict[str, Any]]:
        from astroquery.hips2fits import hips2fits

        plan = []
        for band in request.bands:
            params = hips2fits.query_async(
                get_query_payload=True,
                hips=self.hips_id(band),
                width=request.size,
                height=request.size,
                projection="TAN",
                ra=Longitude(request.ra * u.deg),
                dec=Latitude(request.dec * u.deg),
                fov=Angle(request.size * request.pixscale * u.arcsec),
                coordsys="icrs",
                rotation_angle=Angle(0 * u.deg),
                format="fits",
                min_cut=0.5,
                max_cut=99.5,
                stretch="linear",
                cmap="Greys_r",
            )
            plan.append(self._spec("GET", self.service_url, dict(params), band=band))
        return plan

    def _download(self, request: CutoutRequest, plan: list[dict[str, Any]]) -> Downloaded:
        n = request.size
        planes = []
        target: WCS | None = None
        bunit = None
        for spec in plan:
            hdul = self._send(spec, parse=partial(parse_fits_bytes, source=spec["full_url"]))
            header = hdul[0].header
            data = np.asarray(hdul[0].data, dtype=np.float32)
            if data.ndim == 3 and data.shape[0] == 1:
                data = data[0]
            if data.shape != (n, n):
                msg = f"{spec['full_url']}: image has shape {data.shape}, expected {(n, n)}"
                raise InvalidResponseError(msg)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                wcs = WCS(header, naxis=2)
            if not wcs.has_celestial:
                msg = f"{spec['full_url']}: image has no celestial WCS"
                raise InvalidResponseError(msg)
            bunit = bunit or header.get("BUNIT")
            if target is None:
                target = wcs
            elif not same_grid(wcs, target, shape=(n, n)):
                data = resample(data, wcs, target, shape=(n, n))
            planes.append(data)
        extra = {
            f"HIPS{i}": (spec["params"]["hips"], f"HiPS of plane {i}")
            for i, spec in enumerate(plan)
        }
        if target is None:  # no bands: make_request forbids it
            msg = "no band requested"
            raise ValueError(msg)
        return Downloaded(data=np.stack(planes), wcs=target, bunit=bunit, extra=extra)
