"""Client of the DESI Legacy Surveys viewer ``fits-cutout`` service.

astroquery has no module for this service; `LegacySurveyClient` follows its
conventions (a `~astroquery.query.BaseQuery` session, a configuration item
for the server, ``get_query_payload=True`` dry runs).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from astropy.wcs import WCS, FITSFixedWarning

from .client import CutoutRequest, Downloaded, SurveyClient
from .validate import parse_fits_bytes

__all__ = ["LAYER_BANDS", "LegacySurveyClient"]

#: bands of the layers we know; other layers are passed through unchecked
LAYER_BANDS = {
    "ls-dr10": "griz",
    "ls-dr10-south": "griz",
    "ls-dr9": "grz",
    "ls-dr9-north": "grz",
    "ls-dr9-south": "grz",
}

#: the service's own path, appended to the base URL
SERVICE_PATH = "/viewer/fits-cutout"


class LegacySurveyClient(SurveyClient):
    """Cutouts from the DESI Legacy Imaging Surveys (``fits-cutout``).

    The service answers ``/viewer/fits-cutout?ra=&dec=&layer=&pixscale=&bands=&size=``
    with one HDU holding a ``(bands, N, N)`` cube in nanomaggies with a TAN
    WCS; pixels outside the footprint are zero. Sizes above 512 pixels are
    refused here (the service limit).

    Parameters
    ----------
    layer : str, optional
        ``'ls-dr10'`` (default, bands griz) or ``'ls-dr9'`` (grz), or another
        viewer layer (bands then unchecked).
    **options
        See `~galaxalign_astro.fetch.client.SurveyClient`.
    """

    survey: ClassVar[str] = "legacysurvey"
    default_layer: ClassVar[str] = "ls-dr10"
    default_bands: ClassVar[str] = "grz"
    default_pixscale: ClassVar[float] = 0.262
    max_size: ClassVar[int | None] = 512

    @property
    def service_url(self) -> str:
        """Full URL of the ``fits-cutout`` endpoint."""
        return self.base_url + SERVICE_PATH

    def _allowed_bands(self) -> str | None:
        return LAYER_BANDS.get(self.layer)

    def _plan(self, request: CutoutRequest) -> list[dict[str, Any]]:
        params = {
            "ra": f"{request.ra:.7f}",
            "dec": f"{request.dec:.7f}",
            "layer": request.layer,
            "pixscale": f"{request.pixscale:.6g}",
            "bands": request.bands,
            "size": str(request.size),
        }
        return [self._spec("GET", self.service_url, params)]

    def _download(self, request: CutoutRequest, plan: list[dict[str, Any]]) -> Downloaded:
        spec = plan[0]
        hdul = self._send(spec, parse=lambda body: parse_fits_bytes(body, source=spec["full_url"]))
        header, data = hdul[0].header, hdul[0].data
        data = np.asarray(data, dtype=np.float32)
        if data.ndim == 2:
            data = data[np.newaxis]
        with warnings.catch_warnings():
            # the service's headers are fine; wcslib's notes about fixes are noise here
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        extra = {}
        if "VERSION" in header:
            extra["SRVVERS"] = (str(header["VERSION"]), "version of the cutout service data")
        return Downloaded(data=data, wcs=wcs, bunit="nanomaggy", extra=extra)
