"""Client of SDSS imaging: calibrated frames cut and aligned into one cube.

Two steps per cutout. First a SkyServer SQL query, built by
``astroquery.sdss.SDSS.query_sql_async(..., get_query_payload=True)``, finds
the run/rerun/camcol/field of the primary photometric object nearest to the
position. Then the calibrated frames of that field (one per band, 2048 x
1489 pixels in nanomaggies, at the URLs of
``astroquery.sdss.SDSSClass.IMAGING_URL_SUFFIX``) are downloaded, cut with
`~astropy.nddata.Cutout2D` and aligned with `reproject.reproject_interp`.

We send the requests ourselves instead of calling ``SDSS.get_images``
(ours): ``get_images`` downloads through `astropy.utils.data` outside the
requests session, so it would escape the rate limit, the retries and the
bound on parallel requests, and its server URLs come from the global
``astroquery.sdss.conf``, which threads cannot set independently. Frames are
cached on disk too, since neighbouring targets share them.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from typing import Any, ClassVar

import astropy.units as u
import numpy as np
from astropy.io import ascii as asciitable
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales
from astroquery.sdss import SDSS, SDSSClass
from astroquery.sdss import conf as sdss_conf

from .client import CutoutRequest, Downloaded, SurveyClient
from .exceptions import ErrorPageError, InvalidResponseError, OutsideFootprintError
from .grid import cut_around, resample, same_grid, tan_wcs
from .storage import atomic_write_bytes
from .validate import describe_body, parse_fits_bytes

__all__ = ["SDSSClient"]

_NATIVE_PIXSCALE = 0.396  # arcsec, SDSS imaging camera
_LAYER = re.compile(r"^(?:dr)?(\d+)$", re.IGNORECASE)


def _data_release(layer: str) -> int:
    match = _LAYER.match(layer.strip())
    if not match:
        msg = f"SDSS layer must be a data release such as 'dr17', got {layer!r}"
        raise ValueError(msg)
    return int(match.group(1))


class SDSSClient(SurveyClient):
    """Cutouts from SDSS imaging frames (bands ugriz, nanomaggies).

    At the native pixel scale (0.396", the default) the output grid is the
    ``Cutout2D`` grid of the r-band frame (or of the first band when r is
    not requested) and the other bands are reprojected onto it when their
    WCS differ. At any other pixel scale every band is reprojected onto a
    north-up TAN grid centred on the position (ours), with pixel values
    scaled by the pixel-area ratio so they stay nanomaggies per pixel.

    Parameters
    ----------
    base_url : str, optional
        One mirror serving SkyServer (``/dr17/en/tools/search/...``) and the
        SAS (``/sas/dr17/...``). Default: ``GALAXALIGN_ASTRO_SDSS_URL``, then
        ``conf.sdss_url``, then ``astroquery.sdss.conf`` (its
        ``skyserver_baseurl`` and ``sas_baseurl``).
    sas_url : str, optional
        Base URL of the SAS, when it differs from ``base_url + '/sas'``.
    layer : str, optional
        Data release, e.g. ``'dr17'`` (default ``astroquery.sdss.conf.default_release``).
    search_radius : `~astropy.units.Quantity`, optional
        Radius of the nearest-object search that picks the field (default 30").
    **options
        See `~galaxalign_astro.fetch.client.SurveyClient`.
    """

    survey: ClassVar[str] = "sdss"
    default_layer: ClassVar[str] = f"dr{sdss_conf.default_release}"
    default_bands: ClassVar[str] = "gri"
    default_pixscale: ClassVar[float] = _NATIVE_PIXSCALE
    max_size: ClassVar[int | None] = 1024

    def __init__(
        self,
        *,
        sas_url: str | None = None,
        search_radius: u.Quantity = 30 * u.arcsec,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.search_radius = u.Quantity(search_radius, u.arcsec)
        if not self.search_radius.value > 0:
            msg = f"search_radius must be a positive angle, got {search_radius}"
            raise ValueError(msg)
        if sas_url:
            self.sas_url = sas_url.rstrip("/")
        elif self.base_url:
            self.sas_url = self.base_url + "/sas"
        else:
            self.sas_url = str(sdss_conf.sas_baseurl).rstrip("/")
        self.skyserver_url = self.base_url or str(sdss_conf.skyserver_baseurl).rstrip("/")

    @property
    def data_release(self) -> int:
        """The data release number of ``layer``."""
        return _data_release(self.layer)

    def _check_layer(self, layer: str) -> None:
        if _data_release(layer) < 8:
            msg = f"SDSS layer {layer!r}: calibrated frames exist from DR8 on"
            raise ValueError(msg)

    def _allowed_bands(self) -> str | None:
        return "ugriz"

    def _key_extras(self, request: CutoutRequest) -> dict[str, Any]:
        return {"sas_url": self.sas_url}

    def _query_url(self) -> str:
        dr = self.data_release
        if dr < 10:
            suffix = SDSSClass.QUERY_URL_SUFFIX_DR_OLD
        elif dr == 10:
            suffix = SDSSClass.QUERY_URL_SUFFIX_DR_10
        else:
            suffix = SDSSClass.QUERY_URL_SUFFIX_DR_NEW
        return self.skyserver_url + suffix.format(dr=dr)

    def frame_url(self, *, run: int, rerun: int, camcol: int, field: int, band: str) -> str:
        """Return the SAS URL of a calibrated frame (astroquery's URL pattern)."""
        dr = self.data_release
        instrument = "boss"
        if dr > 12:
            instrument = "eboss"
        if dr > 17:
            instrument = "prior-surveys/sdss4-dr17-eboss"
        return SDSSClass.IMAGING_URL_SUFFIX.format(
            base=self.sas_url,
            dr=dr,
            instrument=instrument,
            rerun=rerun,
            run=run,
            camcol=camcol,
            field=field,
            band=band,
        )

    def _plan(self, request: CutoutRequest) -> list[dict[str, Any]]:
        radius = self.search_radius.to_value(u.arcmin)
        sql = (
            "SELECT TOP 1 p.run, p.rerun, p.camcol, p.field, n.distance "
            f"FROM dbo.fGetNearbyObjEq({request.ra:.7f}, {request.dec:.7f}, {radius:.6g}) AS n "
            "JOIN PhotoPrimary AS p ON p.objID = n.objID ORDER BY n.distance"
        )
        params = SDSS.query_sql_async(sql, data_release=self.data_release, get_query_payload=True)
        return [self._spec("GET", self._query_url(), dict(params), step="field lookup")]

    def _parse_lookup(self, body: bytes, *, request: CutoutRequest, url: str) -> dict[str, int]:
        text = body.decode("utf-8", errors="replace")
        if text.lstrip().startswith("<"):
            # an overloaded SkyServer answers HTTP 200 with an HTML page: worth a retry
            msg = f"{url}: SkyServer answered with an error page: {describe_body(body)!r}"
            raise ErrorPageError(msg)
        if "error_message" in text:
            msg = f"{url}: SkyServer answered with an error: {describe_body(body)!r}"
            raise InvalidResponseError(msg)
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if len(lines) < 2:
            msg = (
                f"{request.describe(self.survey)}: no SDSS primary object within "
                f"{self.search_radius:.4g}: outside the SDSS imaging footprint"
            )
            raise OutsideFootprintError(msg)
        try:
            table = asciitable.read(lines, format="csv")
            row = table[0]
            return {key: int(row[key]) for key in ("run", "rerun", "camcol", "field")}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            msg = f"{url}: unexpected SkyServer answer: {describe_body(body)!r}"
            raise InvalidResponseError(msg) from exc

    def _frame(self, url: str) -> tuple[np.ndarray, WCS]:
        """Return a frame's image and WCS, from the frame cache or the SAS."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        cached = self._cache_dir() / "sdss-frames" / f"{digest}-{url.rsplit('/', 1)[-1]}"
        hdul: fits.HDUList | None = None
        if self.use_cache and cached.is_file():
            try:
                hdul = parse_fits_bytes(cached.read_bytes(), source=str(cached))
            except InvalidResponseError:
                cached.unlink(missing_ok=True)
        if hdul is None:
            spec = self._spec("GET", url, {}, step="frame")
            body, hdul = self._send(spec, parse=lambda b: (b, parse_fits_bytes(b, source=url)))
            if self.use_cache:
                atomic_write_bytes(body, cached)
        header = hdul[0].header
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial:
            msg = f"{url}: frame has no celestial WCS"
            raise InvalidResponseError(msg)
        return np.asarray(hdul[0].data, dtype=np.float32), wcs

    def _download(self, request: CutoutRequest, plan: list[dict[str, Any]]) -> Downloaded:
        lookup = plan[0]
        field = self._send(
            lookup,
            parse=lambda body: self._parse_lookup(body, request=request, url=lookup["url"]),
        )
        frames = {band: self._frame(self.frame_url(band=band, **field)) for band in request.bands}
        n = request.size
        coord = request.coord
        native = math.isclose(request.pixscale, _NATIVE_PIXSCALE, rel_tol=1e-3)
        ref_band = "r" if "r" in request.bands else request.bands[0]
        planes: dict[str, np.ndarray] = {}
        if native:
            data, wcs = frames[ref_band]
            ref = cut_around(data, wcs, coord, size=n)
            if ref is None:
                msg = f"{request.describe(self.survey)}: position not on frame {field}"
                raise OutsideFootprintError(msg)
            target = ref.wcs
            planes[ref_band] = ref.data
        else:
            target = tan_wcs(request.ra, request.dec, size=n, pixscale=request.pixscale)
        for band in request.bands:
            if band in planes:
                continue
            data, wcs = frames[band]
            if native:
                cut = cut_around(data, wcs, coord, size=n)
                if cut is not None and same_grid(cut.wcs, target, shape=(n, n)):
                    planes[band] = cut.data
                    continue
            scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial))) * 3600.0
            # a margin so that shifted or rotated band grids still cover the target
            margin = math.ceil(n * request.pixscale / scale * math.sqrt(2)) + 8
            cut = cut_around(data, wcs, coord, size=margin)
            if cut is None:
                planes[band] = np.full((n, n), np.nan, dtype=np.float32)
            else:
                planes[band] = resample(cut.data, cut.wcs, target, shape=(n, n))
        cube = np.stack([planes[b] for b in request.bands]).astype(np.float32)
        extra: dict[str, tuple[Any, str]] = {
            "RUN": (field["run"], "SDSS imaging run"),
            "RERUN": (field["rerun"], "SDSS processing rerun"),
            "CAMCOL": (field["camcol"], "SDSS camera column"),
            "FIELD": (field["field"], "SDSS field"),
            "DR": (self.data_release, "SDSS data release"),
        }
        if native:
            extra["REFBAND"] = (ref_band, "band whose frame grid the cube uses")
        return Downloaded(data=cube, wcs=target, bunit="nanomaggy", extra=extra)
