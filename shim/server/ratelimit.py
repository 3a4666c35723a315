"""Per-client rate limiting: a token bucket per caller, answered with 429 and Retry-After.

A caller is its credential fingerprint when authentication is on (one client behind many
addresses is still one client) and its remote address otherwise. Buckets live in the worker's
memory and the ASGI app runs on one event loop, so no locking is needed; with several workers
each enforces the limit separately (the effective limit is ``workers`` times the setting).
Written here rather than taken from a library because it is a dozen lines of arithmetic and the
server must compute Retry-After itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Most buckets kept; idle full buckets are dropped first, so a flood of new addresses is bounded.
MAX_CLIENTS = 10_000


class RateLimiter:
    """Token bucket: ``rate`` tokens per second refill up to ``burst``; each request takes one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, burst or math.ceil(rate))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill time)

    def acquire(self, client: str) -> float:
        """Take one token for ``client``. Returns 0 if allowed, else seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._store(client, tokens - 1.0, now)
            return 0.0
        self._store(client, tokens, now)
        return (1.0 - tokens) / self.rate

    def _store(self, client: str, tokens: float, now: float) -> None:
        if client not in self._buckets and len(self._buckets) >= MAX_CLIENTS:
            self._evict(now)
        self._buckets[client] = (tokens, now)

    def _evict(self, now: float) -> None:
        refill_s = self.burst / self.rate
        idle = [c for c, (_, last) in self._buckets.items() if now - last >= refill_s]
        for client in idle or list(self._buckets)[: MAX_CLIENTS // 10]:
            del self._buckets[client]

    @staticmethod
    def retry_after_header(wait_s: float) -> bytes:
        """Retry-After takes whole seconds; never advertise 0 for a refused request."""
        return str(max(1, math.ceil(wait_s))).encode()
