"""The base class of the survey clients: request planning, polite sending, caching, checking.

A client turns ``(position, size, pixel scale, bands)`` into a list of HTTP
requests (its *plan*, which is what ``get_query_payload=True`` returns, with
no network access), sends them through the `astroquery.query.BaseQuery`
requests session with a rate limit, a bound on parallel requests and retries
with exponential back-off, turns the answers into a ``(bands, N, N)`` cube
(the subclass's job), checks it, and keeps it in an on-disk cache keyed by
every request parameter.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import astropy.units as u
import numpy as np
import requests
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astroquery.query import BaseQuery

from ..errors import OutputExistsError
from .config import conf, default_cache_dir, resolve_base_url
from .cube import make_cube_hdu
from .exceptions import ErrorPageError, ServiceError, TruncatedResponseError
from .storage import CutoutCache, atomic_write_hdul, cache_key
from .transport import RateLimiter, RetryPolicy, is_retryable_status, parse_retry_after
from .validate import check_cube, describe_body

__all__ = ["CutoutRequest", "Downloaded", "SurveyClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# errors of one attempt that are worth another try (the body may also end early)
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class CutoutRequest:
    """A normalised cutout request (positions in degrees, pixel scale in arcsec)."""

    ra: float
    dec: float
    size: int
    pixscale: float
    bands: str
    layer: str

    @property
    def coord(self) -> SkyCoord:
        """The position as a `~astropy.coordinates.SkyCoord` (ICRS)."""
        return SkyCoord(self.ra * u.deg, self.dec * u.deg, frame="icrs")

    def describe(self, survey: str) -> str:
        """Return ``'survey layer at RA=.. Dec=..'`` for messages."""
        return f"{survey} {self.layer} at RA={self.ra:.6f} Dec={self.dec:+.6f}"


@dataclass
class Downloaded:
    """What a subclass's ``_download`` hands back: a cube, its WCS and header extras."""

    data: np.ndarray
    wcs: WCS
    bunit: str | None = None
    extra: dict[str, Any] | None = None


class SurveyClient(BaseQuery, metaclass=abc.ABCMeta):
    """Base class of the cutout clients (`get_client` makes them).

    Parameters
    ----------
    base_url : str, optional
        Scheme, host and any path prefix of the service; the client appends
        the service's own path. Default: the survey's environment variable
        (e.g. ``GALAXALIGN_ASTRO_LEGACYSURVEY_URL``), else the configuration.
    layer : str, optional
        Survey layer or data release (meaning depends on the survey).
    timeout : float, optional
        Seconds to wait for a connection or for response bytes.
    max_retries, backoff_factor, max_backoff, max_retry_after : optional
        Retry policy (see `~galaxalign_astro.fetch.transport.RetryPolicy`).
    rate_limit : float, optional
        Most requests per second this client sends (0: unlimited).
    max_workers : int, optional
        Most requests this client has open at once, whatever the number of
        threads calling it.
    cache : bool, optional
        Reuse and store cutouts in the on-disk cache.
    cache_dir : str or `~pathlib.Path`, optional
        Cache directory (default: ``conf.cache_dir`` or the astropy cache).

    Notes
    -----
    Requests go through the ``BaseQuery`` session but not through
    ``BaseQuery._request``'s cache (ours): that cache pickles whole
    responses, error pages included, and switching it off per call changes
    a global setting, which is not safe from several threads. This class
    caches validated cutout files instead.
    """

    survey: ClassVar[str]
    default_layer: ClassVar[str]
    default_bands: ClassVar[str]
    default_pixscale: ClassVar[float]
    default_size: ClassVar[int] = 256
    max_size: ClassVar[int | None] = None

    def __init__(
        self,
        *,
        base_url: str | None = None,
        layer: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_factor: float | None = None,
        max_backoff: float | None = None,
        max_retry_after: float | None = None,
        rate_limit: float | None = None,
        max_workers: int | None = None,
        cache: bool | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.base_url = resolve_base_url(self.survey, base_url)
        self.layer = str(layer) if layer is not None else self.default_layer
        self.timeout = float(conf.timeout if timeout is None else timeout)
        if not self.timeout > 0:
            msg = f"timeout must be > 0 seconds, got {self.timeout}"
            raise ValueError(msg)
        self.retry = RetryPolicy(
            max_retries=int(conf.max_retries if max_retries is None else max_retries),
            backoff_factor=float(conf.backoff_factor if backoff_factor is None else backoff_factor),
            max_backoff=float(conf.max_backoff if max_backoff is None else max_backoff),
            max_retry_after=float(
                conf.max_retry_after if max_retry_after is None else max_retry_after
            ),
        )
        self.limiter = RateLimiter(conf.rate_limit if rate_limit is None else rate_limit)
        self.max_workers = int(conf.max_workers if max_workers is None else max_workers)
        if self.max_workers < 1:
            msg = f"max_workers must be >= 1, got {self.max_workers}"
            raise ValueError(msg)
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self.use_cache = bool(conf.cache if cache is None else cache)
        self.cache_location = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self._lock = threading.Lock()
        #: HTTP requests sent (every attempt counts)
        self.requests_sent = 0
        #: cutouts served from the on-disk cache
        self.cache_hits = 0
        self._check_layer(self.layer)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"<{name} survey={self.survey!r} layer={self.layer!r} url={self.base_url!r}>"

    def _cache_dir(self) -> Path:
        # BaseQuery.cache_location creates the directory on access; only do that when writing
        return Path(self._cache_location) if self._cache_location else default_cache_dir()

    @property
    def _cutout_cache(self) -> CutoutCache:
        return CutoutCache(self._cache_dir(), prefix=self.survey)

    # ----------------------------------------------------------------- public API

    def get_cutout(
        self,
        coord: SkyCoord,
        *,
        size: int | None = None,
        pixscale: u.Quantity | float | None = None,
        bands: str | None = None,
        get_query_payload: bool = False,
    ) -> fits.HDUList | list[dict[str, Any]]:
        """Return a ``(bands, N, N)`` cutout centred on ``coord``.

        Parameters
        ----------
        coord : `~astropy.coordinates.SkyCoord`
            Scalar sky position.
        size : int, optional
            Width and height in pixels (default ``default_size``).
        pixscale : `~astropy.units.Quantity` or float, optional
            Pixel scale (an angle per pixel; a float is arcsec).
        bands : str, optional
            One letter per band, e.g. ``'grz'``.
        get_query_payload : bool
            If True, send nothing and return the planned requests: a list of
            dicts with ``method``, ``url``, ``params`` and ``full_url``.

        Returns
        -------
        hdul : `~astropy.io.fits.HDUList`
            One primary HDU in the common layout (see `make_cube_hdu`).

        Raises
        ------
        OutsideFootprintError
            The survey has no data at ``coord``.
        ServiceError, InvalidResponseError
            The service failed or sent something unusable.
        """
        request = self.make_request(coord, size=size, pixscale=pixscale, bands=bands)
        plan = self._plan(request)
        if get_query_payload:
            return plan
        hdul, _ = self._obtain(request, plan)
        return hdul

    def fetch_to_file(
        self,
        coord: SkyCoord,
        path: str | Path,
        *,
        size: int | None = None,
        pixscale: u.Quantity | float | None = None,
        bands: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Fetch a cutout and write it to ``path`` atomically.

        Parameters
        ----------
        coord : `~astropy.coordinates.SkyCoord`
            Scalar sky position.
        path : str or `~pathlib.Path`
            Output FITS file.
        size, pixscale, bands :
            As for `get_cutout`.
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        path : `~pathlib.Path`

        Raises
        ------
        OutputExistsError
            ``path`` exists and ``overwrite`` is False.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            msg = f"cutout file {path} exists; pass overwrite=True to replace it"
            raise OutputExistsError(msg)
        request = self.make_request(coord, size=size, pixscale=pixscale, bands=bands)
        hdul, _ = self._obtain(request, self._plan(request))
        return atomic_write_hdul(hdul, path)

    def clear_cache(self) -> None:
        """Remove this survey's cached cutouts (and any astroquery response pickles)."""
        removed = self._cutout_cache.clear()
        log.info("removed %d cached %s cutouts from %s", removed, self.survey, self._cache_dir())
        if self._cache_dir().is_dir():
            super().clear_cache()

    def make_request(
        self,
        coord: SkyCoord,
        *,
        size: int | None = None,
        pixscale: u.Quantity | float | None = None,
        bands: str | None = None,
    ) -> CutoutRequest:
        """Check and normalise the arguments of `get_cutout` (no network)."""
        if not isinstance(coord, SkyCoord):
            msg = f"coord must be an astropy SkyCoord, got {type(coord).__name__}"
            raise TypeError(msg)
        if not coord.isscalar:
            msg = f"coord must be a single position, got {coord.shape} positions"
            raise ValueError(msg)
        icrs = coord.icrs
        ra, dec = float(icrs.ra.deg), float(icrs.dec.deg)
        if not (math.isfinite(ra) and math.isfinite(dec)):
            msg = f"coord has non-finite RA/Dec ({ra}, {dec})"
            raise ValueError(msg)
        size = self.default_size if size is None else size
        if isinstance(size, bool) or int(size) != size or size < 1:
            msg = f"size must be a positive whole number of pixels, got {size!r}"
            raise ValueError(msg)
        size = int(size)
        if self.max_size is not None and size > self.max_size:
            msg = f"size {size} exceeds the {self.survey} limit of {self.max_size} pixels"
            raise ValueError(msg)
        scale = self._pixscale_arcsec(pixscale)
        bands = self.default_bands if bands is None else str(bands).strip()
        self._check_bands(bands)
        # rounding to 1e-7 deg (0.4 mas) keeps cache keys stable against float noise
        return CutoutRequest(
            ra=round(ra % 360.0, 7),
            dec=round(dec, 7),
            size=size,
            pixscale=scale,
            bands=bands,
            layer=self.layer,
        )

    def cache_key(self, request: CutoutRequest) -> str:
        """Return the cache key of a request: every parameter that shapes the result."""
        plan = self._plan(request)
        return cache_key(
            {
                "survey": self.survey,
                "requests": [
                    [spec["method"], spec["url"], sorted(spec["params"].items())] for spec in plan
                ],
                "ra": request.ra,
                "dec": request.dec,
                "size": request.size,
                "pixscale": request.pixscale,
                "bands": request.bands,
                "layer": request.layer,
                **self._key_extras(request),
            }
        )

    # ----------------------------------------------------------------- internals

    def _pixscale_arcsec(self, pixscale: u.Quantity | float | None) -> float:
        if pixscale is None:
            value = float(self.default_pixscale)
        elif isinstance(pixscale, u.Quantity):
            if pixscale.unit.is_equivalent(u.arcsec / u.pix):
                value = float(pixscale.to_value(u.arcsec / u.pix))
            elif pixscale.unit.is_equivalent(u.arcsec):
                value = float(pixscale.to_value(u.arcsec))
            else:
                msg = f"pixscale must be an angle (per pixel), got {pixscale}"
                raise ValueError(msg)
        else:
            value = float(pixscale)
        if not (math.isfinite(value) and value > 0):
            msg = f"pixscale must be a positive angle per pixel, got {pixscale!r}"
            raise ValueError(msg)
        return value

    def _check_bands(self, bands: str) -> None:
        if not bands or not bands.isalpha() or len(set(bands)) != len(bands):
            msg = f"bands must be distinct band letters such as 'grz', got {bands!r}"
            raise ValueError(msg)
        allowed = self._allowed_bands()
        if allowed is not None:
            bad = [b for b in bands if b not in allowed]
            if bad:
                msg = (
                    f"band(s) {''.join(bad)!r} not available in {self.survey} {self.layer}; "
                    f"choose from {allowed!r}"
                )
                raise ValueError(msg)

    def _allowed_bands(self) -> str | None:
        """Bands this client's layer offers, or None when unknown."""
        return None

    def _check_layer(self, layer: str) -> None:
        """Reject an impossible layer at construction time (subclasses)."""

    def _key_extras(self, request: CutoutRequest) -> dict[str, Any]:
        """More cache-key parameters that are not in the plan (subclasses)."""
        return {}

    @staticmethod
    def _spec(method: str, url: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        # numpy scalars (from astropy quantities) read badly in a dry-run payload
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
        prepared = requests.Request(method, url, params=params).prepare()
        return {"method": method, "url": url, "params": params, "full_url": prepared.url, **extra}

    @abc.abstractmethod
    def _plan(self, request: CutoutRequest) -> list[dict[str, Any]]:
        """Return the HTTP requests a cutout needs, without sending anything."""

    @abc.abstractmethod
    def _download(self, request: CutoutRequest, plan: list[dict[str, Any]]) -> Downloaded:
        """Send the plan and build the cube (NaN or 0 where the survey has no data)."""

    def _obtain(
        self, request: CutoutRequest, plan: list[dict[str, Any]]
    ) -> tuple[fits.HDUList, str]:
        """Return ``(hdul, source)``, source ``'cache'`` or ``'network'``."""
        key = self.cache_key(request) if self.use_cache else ""
        if self.use_cache:
            hit = self._cutout_cache.get(key)
            if hit is not None:
                with self._lock:
                    self.cache_hits += 1
                return hit, "cache"
        got = self._download(request, plan)
        data = np.asarray(got.data, dtype=np.float32)
        where = request.describe(self.survey)
        # no data is 0, as in the Legacy Surveys cutouts (hips2fits and reprojection give NaN)
        data = np.where(np.isnan(data), np.float32(0.0), data)
        check_cube(data, got.wcs, size=request.size, bands=request.bands, where=where)
        zero = float(np.mean(data == 0))
        empty = [b for b, plane in zip(request.bands, data, strict=True) if not np.any(plane)]
        if empty:
            log.warning("%s: no data in band(s) %s", where, "".join(empty))
        elif zero > 0.5:
            log.warning("%s: %.0f%% of the pixels are empty (footprint edge?)", where, 100 * zero)
        extra = {"ZEROFRAC": (round(zero, 4), "fraction of pixels without data (0)")}
        extra.update(got.extra or {})
        hdu = make_cube_hdu(
            data,
            got.wcs,
            bands=request.bands,
            survey=self.survey,
            layer=request.layer,
            ra=request.ra,
            dec=request.dec,
            pixscale=request.pixscale,
            bunit=got.bunit,
            extra=extra,
        )
        hdul = fits.HDUList([hdu])
        if self.use_cache:
            self._cutout_cache.put(key, hdul)
        return hdul, "network"

    def _fetch_file(
        self, request: CutoutRequest, path: Path, *, overwrite: bool
    ) -> tuple[Path, str]:
        """Write one cutout file; return ``(path, source)`` with source ``'exists'`` if kept."""
        if path.exists() and not overwrite:
            return path, "exists"
        hdul, source = self._obtain(request, self._plan(request))
        return atomic_write_hdul(hdul, path), source

    def _request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one HTTP request through the astroquery session (one attempt, no caching).

        This is the single place where bytes leave the client, so offline
        tests may patch it, astroquery style.
        """
        with self._lock:
            self.requests_sent += 1
        return self._session.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=self.timeout if timeout is None else timeout,
            stream=stream,
        )

    def _send(
        self,
        spec: dict[str, Any],
        *,
        parse: Callable[[bytes], T],
    ) -> T:
        """Send one planned request politely and return ``parse(body)``.

        Connection errors, timeouts, truncated bodies, error pages sent with
        HTTP 200, HTTP 429 and 5xx are retried with exponential back-off (at
        least ``Retry-After`` when the server sends it); other HTTP errors
        fail at once. ``parse`` may raise `TruncatedResponseError` to have an
        incomplete body retried, or `ErrorPageError` for a body that is an
        error page rather than the data.
        """
        url = spec["url"]
        attempts = self.retry.max_retries + 1
        reason = ""
        for attempt in range(attempts):
            retry_after: float | None = None
            self.limiter.wait()
            try:
                with self._slots:
                    response = self._request(spec["method"], url, params=spec.get("params"))
            except _TRANSIENT as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return parse(response.content)
                    except (TruncatedResponseError, ErrorPageError) as exc:
                        reason = str(exc)
                elif is_retryable_status(status):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    reason = f"HTTP {status} {response.reason}"
                    if retry_after is not None and retry_after > self.retry.max_retry_after:
                        msg = (
                            f"{self.survey}: {url} answered {reason} and asks to wait "
                            f"{retry_after:.0f} s (Retry-After), more than max_retry_after="
                            f"{self.retry.max_retry_after:.0f} s"
                        )
                        raise ServiceError(msg, status=status)
                else:
                    msg = (
                        f"{self.survey}: {url} answered HTTP {status} {response.reason}: "
                        f"{describe_body(response.content)}"
                    )
                    raise ServiceError(msg, status=status)
            if attempt + 1 < attempts:
                delay = self.retry.delay(attempt, retry_after)
                log.info(
                    "%s: %s (attempt %d/%d); retrying in %.2f s",
                    self.survey,
                    reason,
                    attempt + 1,
                    attempts,
                    delay,
                )
                time.sleep(delay)
        msg = f"{self.survey}: {url} failed after {attempts} attempt(s); last error: {reason}"
        raise ServiceError(msg)
