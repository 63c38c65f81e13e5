"""Survey name -> client class, and the one factory `get_client`."""

from __future__ import annotations

from typing import Any

from .client import SurveyClient
from .hips import Hips2FitsClient
from .legacysurvey import LegacySurveyClient
from .sdss import SDSSClient

__all__ = ["SURVEYS", "get_client", "survey_name"]

#: canonical survey names and their clients
SURVEYS: dict[str, type[SurveyClient]] = {
    "legacysurvey": LegacySurveyClient,
    "sdss": SDSSClient,
    "hips": Hips2FitsClient,
}

_ALIASES = {
    "legacy": "legacysurvey",
    "ls": "legacysurvey",
    "hips2fits": "hips",
    "desi": "legacysurvey",
}


def survey_name(survey: str) -> str:
    """Return the canonical name of a survey (``'legacy'`` -> ``'legacysurvey'``)."""
    name = str(survey).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in SURVEYS:
        msg = f"unknown survey {survey!r}; choose from {', '.join(SURVEYS)}"
        raise ValueError(msg)
    return name


def get_client(survey: str, **options: Any) -> SurveyClient:
    """Return a cutout client for ``survey``.

    Parameters
    ----------
    survey : {'legacysurvey', 'sdss', 'hips'}
        Service (aliases: ``'legacy'``, ``'ls'``, ``'hips2fits'``).
    **options
        Client options: ``base_url``, ``layer``, ``timeout``,
        ``max_retries``, ``backoff_factor``, ``rate_limit``, ``max_workers``,
        ``cache``, ``cache_dir``, and the survey's own (``hips_ids`` for
        hips; ``sas_url``, ``search_radius`` for sdss).

    Returns
    -------
    client : `~galaxalign_astro.fetch.client.SurveyClient`

    Examples
    --------
    >>> from galaxalign_astro.fetch import get_client
    >>> client = get_client("legacysurvey", layer="ls-dr9")
    >>> client.layer
    'ls-dr9'
    """
    return SURVEYS[survey_name(survey)](**options)
