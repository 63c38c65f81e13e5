"""Fixtures of the survey-client tests: the local fake services and fast client options."""

from __future__ import annotations

import pytest

from .fake_services import hermetic_fetch, serve_fake_surveys


@pytest.fixture
def survey_server():
    with serve_fake_surveys() as state:
        yield state


@pytest.fixture(autouse=True)
def _hermetic_fetch(tmp_path, monkeypatch):
    """No service URL from the environment, no cache in the home directory."""
    with hermetic_fetch(tmp_path / "default-cache", monkeypatch):
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
