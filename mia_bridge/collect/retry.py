"""Retries for transient failures: exponential backoff with jitter, reconnect on a broken transport."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mia_bridge.errors import BridgeTransportError, MiaError, ThrottledError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """``attempts`` tries in all; delay ``base * 2**n`` capped at ``cap``, times a random 0.5–1.0.

    Jitter keeps concurrent workers from retrying in lockstep against a throttled service; a
    ``retry_after`` from the service is honoured when it is longer.
    """

    attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        delay = min(self.cap_s, self.base_s * (2**attempt)) * self.rng.uniform(0.5, 1.0)
        if isinstance(exc, ThrottledError) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, self.cap_s))
        return delay


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, MiaError) and exc.retryable


def call_with_retry(
    func: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException], None] | None = None,
    reconnect: Callable[[], None] | None = None,
) -> T:
    """Run ``func``; retry transient errors, re-raise permanent ones at once (fail fast)."""
    attempt = 0
    while True:
        try:
            return func()
        except MiaError as exc:
            if not is_transient(exc) or attempt + 1 >= policy.attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            policy.sleep(policy.delay(attempt, exc))
            if isinstance(exc, BridgeTransportError) and reconnect is not None:
                try:
                    reconnect()
                except MiaError as again:
                    if not is_transient(again):
                        raise
            attempt += 1
