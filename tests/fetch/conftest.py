"""Fixtures of the survey-client tests: the local fake services and fast client options."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest

from galaxalign_astro.fetch import conf

from .fake_services import FakeSurveyServer, Handler


@pytest.fixture
def survey_server():
    state = FakeSurveyServer()
    handler = type("BoundHandler", (Handler,), {"server_state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.httpd = httpd
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _hermetic_fetch(tmp_path, monkeypatch):
    """No service URL from the environment, no cache in the home directory."""
    for name in (
        "GALAXALIGN_ASTRO_LEGACYSURVEY_URL",
        "GALAXALIGN_ASTRO_SDSS_URL",
        "GALAXALIGN_ASTRO_HIPS2FITS_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with conf.set_temp("cache_dir", str(tmp_path / "default-cache")):
        yield


@pytest.fixture
def fast(tmp_path):
    """Client options for tests: short timeout, tiny back-off, no rate limit, a private cache."""
    return {
        "timeout": 0.5,
        "max_retries": 2,
        "backoff_factor": 0.01,
        "max_backoff": 0.05,
        "rate_limit": 0,
        "cache_dir": tmp_path / "cache",
    }
