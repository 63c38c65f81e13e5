"""Survey access: cutouts from the Legacy Surveys, SDSS and hips2fits in one file layout.

Every client returns (and writes) a ``(bands, N, N)`` float32 cube with a
TAN WCS and ``BANDS``/``BAND0..`` keywords, the layout of the Legacy Surveys
``fits-cutout`` service, whatever the survey. See ``docs/fetch.md``.
"""

from __future__ import annotations

from .batch import FetchResult, fetch_cutouts, find_coord_columns, iter_fetch, read_targets
from .client import CutoutRequest, SurveyClient
from .config import ENV_VARS, Conf, conf
from .cube import CutoutCube, make_cube_hdu, read_cutout_cube
from .exceptions import (
    ErrorPageError,
    FetchError,
    InvalidResponseError,
    OutsideFootprintError,
    ServiceError,
    TruncatedResponseError,
)
from .hips import HIPS_PRESETS, Hips2FitsClient
from .legacysurvey import LegacySurveyClient
from .registry import SURVEYS, get_client
from .sdss import SDSSClient

__all__ = [
    "ENV_VARS",
    "HIPS_PRESETS",
    "SURVEYS",
    "Conf",
    "CutoutCube",
    "CutoutRequest",
    "ErrorPageError",
    "FetchError",
    "FetchResult",
    "Hips2FitsClient",
    "InvalidResponseError",
    "LegacySurveyClient",
    "OutsideFootprintError",
    "SDSSClient",
    "ServiceError",
    "SurveyClient",
    "TruncatedResponseError",
    "conf",
    "fetch_cutouts",
    "find_coord_columns",
    "get_client",
    "iter_fetch",
    "make_cube_hdu",
    "read_cutout_cube",
    "read_targets",
]
