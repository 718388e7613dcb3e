"""When and how long to wait before sending the very same request again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

#: Statuses that say "try again later" (5xx, and 429 too many requests / 408 request timeout).
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter; ``attempts`` counts the first try."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: Longest ``Retry-After`` we honour; a payer asking for more is treated as unavailable.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, response: httpx.Response | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if response is not None:
            after = retry_after(response)
            if after is not None:
                return min(after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, ceiling)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def is_retryable_error(exc: Exception) -> bool:
    """Transport failures worth another try: connection refused/reset, timeouts, broken responses."""
    return isinstance(exc, httpx.TransportError)


def nothing_was_sent(exc: Exception) -> bool:
    """True when the request certainly never reached the payer (the connection was never made)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
