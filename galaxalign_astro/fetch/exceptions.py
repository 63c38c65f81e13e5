"""Errors raised while fetching cutouts from survey services."""

from __future__ import annotations

from ..errors import CutoutError, GalaxAlignError

__all__ = [
    "ErrorPageError",
    "FetchError",
    "InvalidResponseError",
    "OutsideFootprintError",
    "ServiceError",
    "TruncatedResponseError",
]


class FetchError(GalaxAlignError):
    """A cutout could not be obtained from a survey service."""


class ServiceError(FetchError):
    """The service answered with an HTTP error, or kept failing after every retry."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidResponseError(FetchError, CutoutError):
    """The service answered, but not with a usable FITS cutout (HTML page, wrong shape, no WCS)."""


class ErrorPageError(InvalidResponseError):
    """The service answered HTTP 200 with a page that is not FITS (an HTML error page).

    Services do this when they are overloaded ("Internal error, please retry"), so it is
    retried like an HTTP 5xx.
    """


class TruncatedResponseError(InvalidResponseError):
    """The body ended early (an incomplete FITS file); retried like a connection error."""


class OutsideFootprintError(FetchError, CutoutError):
    """The position is outside the survey footprint: the service returned no data there."""
