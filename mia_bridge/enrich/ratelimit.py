"""A token bucket that keeps a client under a service's documented query rate, and logs every wait."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class TokenBucket:
    """At most ``limit`` acquisitions in any ``window_s`` seconds.

    A bucket of capacity C refilled at C per window lets C + C through in a window at worst (a full
    bucket, then the refill), so capacity is half the limit: the documented rate is never exceeded,
    even in the sliding-window sense the service counts in.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "queries",
    ) -> None:
        if limit < 2 or window_s <= 0:
            raise ValueError("a rate limit needs limit >= 2 and a positive window")
        self.capacity = limit // 2
        self.rate = self.capacity / window_s  # tokens per second
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        self.name = name
        self._tokens = float(self.capacity)
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0
        self.waits = 0
        self.acquired = 0

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the clock time of the acquisition."""
        with self._lock:
            while True:
                now = self.clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                # A sleep of exactly the computed wait can leave 0.999999...: without the tolerance
                # the loop would spin on ever smaller waits that no longer move the clock.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    self.acquired += 1
                    return now
                wait = (1 - self._tokens) / self.rate
                self.waits += 1
                self.waited_s += wait
                log.info("rate limit: waiting %.1f s before the next %s (%d per %d s)", wait, self.name,
                         self.limit, int(self.window_s))
                self.sleep(wait)
