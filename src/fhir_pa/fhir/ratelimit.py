"""A per-payer request rate limit shared by every flow in the process.

Polling many pended requests against one payer must stay under the rate that payer allows, whichever
tracker (sync, async, thread) asks. :meth:`RateLimiter.reserve` books the next free slot and says how long to
wait for it, so the waiting happens in the caller's own style (``time.sleep`` or ``asyncio.sleep``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """At most ``rate`` calls per second per key (evenly spaced)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def reserve(self, key: str, rate: float) -> float:
        """Book a slot for ``key``; returns the seconds to wait before using it (0 when free now)."""
        if rate <= 0:
            return 0.0
        interval = 1.0 / rate
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(key, now))
            self._next[key] = slot + interval
        return slot - now


#: The process-wide limiter that polling uses unless given another.
shared_limiter = RateLimiter()
