"""Backoff with jitter, fail-fast on permanent errors, reconnect on broken transports."""

from __future__ import annotations

import random

import pytest

from mia_bridge.collect.retry import RetryPolicy, call_with_retry
from mia_bridge.errors import AccessDeniedError, BridgeTransportError, ThrottledError


def _policy(sleeps: list[float], attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_s=1.0, cap_s=8.0, sleep=sleeps.append, rng=random.Random(1))


def test_transient_errors_are_retried_with_growing_jittered_delays() -> None:
    sleeps: list[float] = []
    calls = iter([ThrottledError("busy", cmdlet="X")] * 4 + [None])

    def func() -> str:
        exc = next(calls)
        if exc:
            raise exc
        return "ok"

    assert call_with_retry(func, _policy(sleeps)) == "ok"
    assert len(sleeps) == 4
    for n, delay in enumerate(sleeps):
        assert min(8.0, 2**n) * 0.5 <= delay <= min(8.0, 2**n)
    assert len(set(sleeps)) == 4


def test_retry_after_is_honoured() -> None:
    sleeps: list[float] = []
    seq = iter([ThrottledError("wait", cmdlet="X", retry_after=7.0), None])

    def func() -> int:
        exc = next(seq)
        if exc:
            raise exc
        return 1

    call_with_retry(func, _policy(sleeps))
    assert sleeps[0] >= 7.0


def test_permanent_errors_fail_at_once() -> None:
    sleeps: list[float] = []
    count = 0

    def func() -> None:
        nonlocal count
        count += 1
        raise AccessDeniedError("no role", cmdlet="Search-UnifiedAuditLog")

    with pytest.raises(AccessDeniedError):
        call_with_retry(func, _policy(sleeps))
    assert count == 1 and sleeps == []


def test_gives_up_after_the_attempts_and_reconnects_on_transport_errors() -> None:
    sleeps: list[float] = []
    reconnects: list[int] = []

    def func() -> None:
        raise BridgeTransportError("dropped")

    with pytest.raises(BridgeTransportError):
        call_with_retry(func, _policy(sleeps, attempts=3), reconnect=lambda: reconnects.append(1))
    assert len(sleeps) == 2 and len(reconnects) == 2
