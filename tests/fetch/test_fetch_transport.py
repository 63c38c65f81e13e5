"""Retry policy, Retry-After parsing, rate limiter and configuration of the survey clients."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest

from galaxalign_astro.fetch import conf, get_client
from galaxalign_astro.fetch.config import default_cache_dir, resolve_base_url
from galaxalign_astro.fetch.transport import (
    RateLimiter,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)


def test_exponential_backoff_is_capped_and_honours_retry_after():
    policy = RetryPolicy(max_retries=5, backoff_factor=0.5, max_backoff=3.0)
    assert [policy.delay(k) for k in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(0, retry_after=7.0) == 7.0
    assert policy.delay(3, retry_after=0.1) == 3.0


def test_bad_policy_values():
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="backoff_factor"):
        RetryPolicy(backoff_factor=float("nan"))


@pytest.mark.parametrize(
    ("status", "retry"),
    [(429, True), (500, True), (503, True), (599, True), (404, False), (400, False), (200, False)],
)
def test_retryable_statuses(status, retry):
    assert is_retryable_status(status) is retry


def test_parse_retry_after():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < parse_retry_after(future) <= 30
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_rate_limiter_spaces_calls_across_threads():
    limiter = RateLimiter(50.0)
    stamps = []
    lock = threading.Lock()

    def call():
        limiter.wait()
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(6)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(stamps) - start >= 5 / 50 - 0.005
    assert RateLimiter(0).wait() == 0.0
    with pytest.raises(ValueError, match="rate_limit"):
        RateLimiter(-1)


def test_config_items_are_client_defaults(tmp_path):
    with (
        conf.set_temp("timeout", 7.5),
        conf.set_temp("rate_limit", 2.0),
        conf.set_temp("max_workers", 3),
        conf.set_temp("cache_dir", str(tmp_path)),
    ):
        client = get_client("legacysurvey")
    assert client.timeout == 7.5
    assert client.limiter.rate == 2.0
    assert client.max_workers == 3
    assert client.cache_location == tmp_path
    assert default_cache_dir() != tmp_path


def test_base_url_precedence(monkeypatch):
    assert resolve_base_url("hips") == "https://alasky.cds.unistra.fr"
    with conf.set_temp("hips2fits_url", "http://conf.example/"):
        assert resolve_base_url("hips") == "http://conf.example"
        monkeypatch.setenv("GALAXALIGN_ASTRO_HIPS2FITS_URL", "http://env.example/p")
        assert resolve_base_url("hips") == "http://env.example/p"
        assert resolve_base_url("hips", "http://arg.example") == "http://arg.example"
    with pytest.raises(ValueError, match="unknown survey"):
        resolve_base_url("euclid")
