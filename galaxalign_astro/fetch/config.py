"""Persistent settings of the survey clients (an astropy `~astropy.config.ConfigNamespace`).

Values can be changed for a session (``conf.timeout = 30``), temporarily
(``with conf.set_temp("rate_limit", 1): ...``) or permanently in the
``[fetch]`` section of ``~/.astropy/config/galaxalign_astro.cfg``. The base
URL of every service can also be set with an environment variable, which
wins over the configuration file; an explicit ``base_url=`` argument wins
over both.
"""

from __future__ import annotations

import os
from pathlib import Path

from astropy import config as _config

__all__ = ["ENV_VARS", "Conf", "conf", "default_cache_dir", "resolve_base_url"]

# the items belong to the [fetch] section whichever module defines them
_SECTION = "galaxalign_astro.fetch"

#: environment variables holding a service base URL (scheme, host and any path prefix)
ENV_VARS = {
    "legacysurvey": "GALAXALIGN_ASTRO_LEGACYSURVEY_URL",
    "sdss": "GALAXALIGN_ASTRO_SDSS_URL",
    "hips": "GALAXALIGN_ASTRO_HIPS2FITS_URL",
}


class Conf(_config.ConfigNamespace):
    """Configuration of `galaxalign_astro.fetch`."""

    legacysurvey_url = _config.ConfigItem(
        "https://www.legacysurvey.org",
        "Base URL (scheme, host, optional path prefix) of the Legacy Surveys viewer; "
        "'/viewer/fits-cutout' is appended.",
        module=_SECTION,
    )
    sdss_url = _config.ConfigItem(
        "",
        "Base URL of an SDSS mirror serving both SkyServer ('/dr17/en/tools/search/...') and "
        "the SAS ('/sas/dr17/...'); empty: use astroquery.sdss.conf (skyserver_baseurl, "
        "sas_baseurl).",
        module=_SECTION,
    )
    hips2fits_url = _config.ConfigItem(
        "https://alasky.cds.unistra.fr",
        "Base URL of the CDS hips2fits service; '/hips-image-services/hips2fits' is appended.",
        module=_SECTION,
    )
    timeout = _config.ConfigItem(
        60.0,
        "Seconds to wait for a connection or for the next bytes of a response.",
        module=_SECTION,
    )
    max_retries = _config.ConfigItem(
        4,
        "Retries after a connection error, a timeout, HTTP 429 or 5xx, or a truncated body.",
        module=_SECTION,
    )
    backoff_factor = _config.ConfigItem(
        1.0,
        "Seconds before the first retry; each further retry waits twice as long.",
        module=_SECTION,
    )
    max_backoff = _config.ConfigItem(
        60.0,
        "Longest wait between retries, in seconds (Retry-After may ask for more).",
        module=_SECTION,
    )
    max_retry_after = _config.ConfigItem(
        600.0,
        "A Retry-After longer than this many seconds ends the retries with an error.",
        module=_SECTION,
    )
    rate_limit = _config.ConfigItem(
        5.0, "Most requests per second one client sends (0: no limit).", module=_SECTION
    )
    max_workers = _config.ConfigItem(
        4, "Most requests one client has open at once; threads of a batch fetch.", module=_SECTION
    )
    cache = _config.ConfigItem(
        True, "Keep fetched cutouts in the on-disk cache and reuse them.", module=_SECTION
    )
    cache_dir = _config.ConfigItem(
        "",
        "Directory of the on-disk cache; empty: 'cutouts' in the astropy cache directory of "
        "galaxalign_astro.",
        module=_SECTION,
    )


conf = Conf()


def resolve_base_url(survey: str, base_url: str | None = None) -> str:
    """Return the base URL of a survey service: argument, environment variable or config.

    Parameters
    ----------
    survey : {'legacysurvey', 'sdss', 'hips'}
        Service name.
    base_url : str, optional
        Explicit URL; wins over everything else.

    Returns
    -------
    url : str
        Scheme, host and any path prefix, without a trailing slash; empty
        when nothing is configured (SDSS then uses ``astroquery.sdss.conf``).
    """
    if survey not in ENV_VARS:
        msg = f"unknown survey {survey!r}; expected one of {sorted(ENV_VARS)}"
        raise ValueError(msg)
    if base_url is None:
        base_url = os.environ.get(ENV_VARS[survey]) or None
    if base_url is None:
        item = {"legacysurvey": "legacysurvey_url", "sdss": "sdss_url", "hips": "hips2fits_url"}
        base_url = getattr(conf, item[survey])
    base_url = str(base_url).strip()
    if base_url and not base_url.startswith(("http://", "https://")):
        msg = f"base URL {base_url!r} of {survey} must start with http:// or https://"
        raise ValueError(msg)
    return base_url.rstrip("/")


def default_cache_dir() -> Path:
    """Return the cache directory: ``conf.cache_dir``, or ``cutouts`` in the astropy cache dir."""
    if conf.cache_dir:
        return Path(conf.cache_dir).expanduser()
    return Path(_config.get_cache_dir_path("galaxalign_astro", ensure_exists=False)) / "cutouts"
