"""Politeness machinery shared by the survey clients: retry policy and rate limiter."""

from __future__ import annotations

import email.utils
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["RateLimiter", "RetryPolicy", "is_retryable_status", "parse_retry_after"]


def is_retryable_status(status: int) -> bool:
    """Return whether an HTTP status is worth retrying: 429 (too many requests) or any 5xx."""
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or None if absent or unreadable.

    The header holds either a number of seconds or an HTTP date.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before re-sending a failed request.

    Parameters
    ----------
    max_retries : int
        Retries after the first attempt (0: never retry).
    backoff_factor : float
        Seconds before the first retry; retry ``k`` (0-based) waits
        ``backoff_factor * 2**k``, at most ``max_backoff``.
    max_backoff : float
        Cap of the exponential back-off, in seconds.
    max_retry_after : float
        A server's ``Retry-After`` is honoured (the wait is at least that
        long) unless it exceeds this many seconds; then the request fails
        at once instead of blocking a worker for that long (ours).
    """

    max_retries: int = 4
    backoff_factor: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 600.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            msg = f"max_retries must be >= 0, got {self.max_retries}"
            raise ValueError(msg)
        for name in ("backoff_factor", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not value >= 0:
                msg = f"{name} must be >= 0, got {value}"
                raise ValueError(msg)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Return the seconds to wait before retry number ``retry`` (0-based)."""
        backoff = min(self.backoff_factor * 2.0**retry, self.max_backoff)
        if retry_after is not None:
            return max(backoff, retry_after)
        return backoff


class RateLimiter:
    """Space calls at least ``1 / rate`` seconds apart, across threads.

    Parameters
    ----------
    rate : float
        Most calls per second; 0 or None disables the limit.
    """

    def __init__(self, rate: float | None) -> None:
        if rate is not None and not rate >= 0:
            msg = f"rate_limit must be >= 0 requests per second, got {rate}"
            raise ValueError(msg)
        self.rate = float(rate or 0.0)
        self._interval = 1.0 / self.rate if self.rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next call may go out; return the seconds waited."""
        if self._interval == 0.0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        pause = start - now
        if pause > 0:
            time.sleep(pause)
        return pause
