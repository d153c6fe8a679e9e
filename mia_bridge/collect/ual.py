"""Search-UnifiedAuditLog for one window: a plain capped call, or a validated ReturnLargeSet session.

A plain call asks for ``ResultSize 5000`` without a session; fewer rows than that means the window
is complete, exactly 5,000 means "more may exist" (``ResultCount`` is not trusted: since 2026 it
can simply echo ``ResultSize``). A session pages the same query 5,000 at a time; each page's
``ResultIndex`` values must continue the previous page exactly, otherwise the session restarted or
skipped and the whole window is reported as failed (its rows are still kept, then refetched).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, CmdletResult
from mia_bridge.collect.windows import PLAIN_CAP, SESSION_CAP, Mode, Window
from mia_bridge.errors import BridgeTimeoutError, CmdletError, IngestionDisabledError
from mia_bridge.evidence.store import AuditRow, parse_row

CMDLET = "Search-UnifiedAuditLog"
PAGE_SIZE = PLAIN_CAP
# Only what collection needs crosses the wire (Select-Object on the server side).
SELECT = ("AuditData", "CreationDate", "Identity", "ResultIndex", "ResultCount")

Invoke = Callable[[CmdletCall], CmdletResult]


@dataclass
class Fetch:
    """What one window fetch produced. ``status``: complete | capped | session_failed."""

    window: Window
    mode: Mode
    rows: list[AuditRow] = field(default_factory=list)
    status: str = "complete"
    cap: int = 0
    calls: int = 0
    pages: int = 0
    detail: str = ""
    seconds: float = 0.0
    announced: int | None = None  # a session's ResultCount, when it is not just an echo of ResultSize


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _check_streams(result: CmdletResult) -> None:
    """Warnings like "task was canceled" and non-terminating errors mean the page may be partial."""
    for warning in result.warnings:
        low = warning.lower()
        if "unifiedauditlogingestionenabled" in low or "audit log search is turned off" in low:
            raise IngestionDisabledError(
                warning,
                cmdlet=CMDLET,
                hint="nothing was recorded while ingestion was off; enable it with Set-AdminAuditLogConfig "
                "-UnifiedAuditLogIngestionEnabled $true and collect again later",
            )
        if "canceled" in low or "cancelled" in low or "timed out" in low:
            raise BridgeTimeoutError(f"{CMDLET} warned: {warning}")
    if result.errors:
        first = result.errors[0]
        raise CmdletError(
            f"non-terminating error, page may be partial: {first.message}",
            cmdlet=CMDLET,
            category=first.category,
            error_id=first.error_id,
            retryable=True,
        )


def _rows(result: CmdletResult) -> list[AuditRow]:
    return [
        parse_row(item.get("AuditData"), item.get("CreationDate"), item.get("Identity")) for item in result.output
    ]


def fetch_plain(invoke: Invoke, params: dict[str, Any], window: Window) -> Fetch:
    """One call without a session; complete when it returns fewer than 5,000 rows."""
    began = time.monotonic()
    call = CmdletCall(
        CMDLET,
        {**params, "StartDate": _dt(window.start), "EndDate": _dt(window.end), "ResultSize": PAGE_SIZE},
        select=SELECT,
    )
    result = invoke(call)
    _check_streams(result)
    fetch = Fetch(window, Mode.PLAIN, rows=_rows(result), calls=1, pages=1)
    if len(result.output) >= PAGE_SIZE:
        fetch.status, fetch.cap = "capped", PLAIN_CAP
    fetch.seconds = time.monotonic() - began
    return fetch


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def fetch_session(invoke: Invoke, params: dict[str, Any], window: Window) -> Fetch:
    """Page a ReturnLargeSet session until a short page; validate ResultIndex continuity."""
    began = time.monotonic()
    session_id = str(uuid.uuid4())  # random: Hawk's HHmmss ids collide across runs
    base = {
        **params,
        "StartDate": _dt(window.start),
        "EndDate": _dt(window.end),
        "SessionId": session_id,
        "SessionCommand": "ReturnLargeSet",
        "ResultSize": PAGE_SIZE,
    }
    fetch = Fetch(window, Mode.SESSION)
    last_index = 0
    announced: int | None = None
    while True:
        result = invoke(CmdletCall(CMDLET, base, select=SELECT))
        fetch.calls += 1
        _check_streams(result)
        output = result.output
        fetch.rows.extend(_rows(result))
        if not output:
            break
        fetch.pages += 1
        indexes = [_int(item.get("ResultIndex")) for item in output]
        problem = _continuity_problem(indexes, last_index)
        if problem:
            fetch.status, fetch.detail = "session_failed", problem
            break
        last_index = indexes[-1] or last_index
        count = _int(output[0].get("ResultCount"))
        # ResultCount is only a consistency check, and only when it is not just echoing ResultSize.
        if count is not None and count > 0 and count != PAGE_SIZE:
            if announced is None:
                announced = fetch.announced = count
                if count > SESSION_CAP:
                    # This session would stop at 50,000: give up after one page instead of ten. The
                    # page is a random sample that, with the announced total, sizes the pieces.
                    fetch.status, fetch.cap = "capped", SESSION_CAP
                    fetch.detail = f"session announced {count} records, more than one session returns"
                    break
            # Duplicates get their own ResultIndex, so compare distinct records with the announcement.
            distinct = len({r.key for r in fetch.rows})
            if distinct > announced:
                fetch.status = "session_failed"
                fetch.detail = f"session returned {distinct} distinct records, more than the announced {announced}"
                break
        if last_index >= SESSION_CAP:
            fetch.status, fetch.cap = "capped", SESSION_CAP
            break
        if len(output) < PAGE_SIZE:
            break
    fetch.seconds = time.monotonic() - began
    return fetch


def _continuity_problem(indexes: list[int | None], last_index: int) -> str:
    if any(i is None for i in indexes):
        return "rows without a ResultIndex"
    first = indexes[0]
    assert first is not None
    if last_index and first <= 1:
        return f"session restarted (ResultIndex back to {first} after {last_index})"
    if first != last_index + 1:
        return f"ResultIndex jumped from {last_index} to {first}"
    for prev, cur in itertools.pairwise(indexes):
        if prev is None or cur != prev + 1:
            return f"ResultIndex not continuous within a page ({prev} then {cur})"
    return ""
