"""Search-UnifiedAuditLog for one window: a validated ReturnLargeSet session (or a plain call, which
proves nothing).

What counts as evidence that a window is complete must hold against the service's worst observed
behaviour (sim/quirks.py): plain calls may be silently capped far below ``-ResultSize`` (so a short
plain page proves nothing and plain calls never complete a window), ``ResultCount`` may echo
``ResultSize`` (so it is never needed), rows and pages come unsorted (so ``ResultIndex`` is checked as
a set, not a sequence), a session may silently restart (a ``ResultIndex`` served twice), and a page may
carry rows of another concurrent search. A window is complete when its session's ``ResultIndex``
values are exactly 1..n, each once, a page shorter than ``ResultSize`` (or an empty one) has been
seen, and every row lies in the window and matches the filters. A page holding a row that does not
fails the session: its rows are not kept (counted as rejected) and the window is fetched again.

Whether a row at exactly EndDate's second belongs to the window is undocumented. Accepting it blindly
would let another search's row at that second pass for one of ours and the row it displaced go
missing unnoticed, so the first time a session serves one, a plain call (never mixed with other
searches' rows) asks the service which it is (``EndDateRule``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, CmdletResult
from mia_bridge.collect.rowcheck import RowCheck
from mia_bridge.collect.windows import PLAIN_CAP, SESSION_CAP, Mode, Window
from mia_bridge.errors import BridgeTimeoutError, CmdletError, IngestionDisabledError
from mia_bridge.evidence.store import AuditRow, parse_row

CMDLET = "Search-UnifiedAuditLog"
PAGE_SIZE = PLAIN_CAP
MAX_PAGES = SESSION_CAP // PAGE_SIZE + 2  # a session that pages on past its cap is broken
# Without an honest ResultCount, a window holding more than one session returns costs ten pages to
# find out. After this many full pages, one page of a second session over the same window estimates
# the total (capture-recapture: both sessions serve the window in their own random order); a window
# estimated above ESTIMATE_LIMIT is given up at once, its rows a sample that sizes the pieces.
RECAPTURE_AFTER = 3
ESTIMATE_LIMIT = 45_000
# Only what collection needs crosses the wire (Select-Object on the server side).
SELECT = ("AuditData", "CreationDate", "Identity", "ResultIndex", "ResultCount")

Invoke = Callable[[CmdletCall], CmdletResult]


@dataclass
class Fetch:
    """What one window fetch produced. ``status``: complete | capped | session_failed | unverified."""

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
    rejected: int = 0  # rows of failed pages (foreign rows among them), not kept: the window is refetched


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
    """One call without a session. Never proof of completeness: a plain call may be silently capped
    (quirk plain-cap), so a short page is ``unverified`` and a full one ``capped``. Rows that are not
    the query's are dropped and counted (``rejected``)."""
    began = time.monotonic()
    call = CmdletCall(
        CMDLET,
        {**params, "StartDate": _dt(window.start), "EndDate": _dt(window.end), "ResultSize": PAGE_SIZE},
        select=SELECT,
    )
    result = invoke(call)
    _check_streams(result)
    rows = _rows(result)
    check = RowCheck(params, window)
    kept = [r for r in rows if not check.problem(r)]
    fetch = Fetch(window, Mode.PLAIN, rows=kept, calls=1, pages=1, rejected=len(rows) - len(kept))
    if len(result.output) >= PAGE_SIZE:
        fetch.status, fetch.cap = "capped", PLAIN_CAP
    else:
        fetch.status = "unverified"
        fetch.detail = (f"a plain call returned {len(result.output)} rows; plain calls may be silently capped, so "
                        "this does not prove the window complete (use sessions)")
    fetch.seconds = time.monotonic() - began
    return fetch


class EndDateRule:
    """Does the service count a record at exactly EndDate's second as inside the window? Learned once per
    query, the first time a session serves such a row: a plain call over [second - 1, second] returns a
    row at that second only if it does. Plain calls are not mixed with other searches' rows (only paged
    sessions were seen to be, sim/quirks.py); should a capped plain answer hide the rows at that second,
    the rule is "exclusive" and windows with rows there fail and are reported as gaps, never lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inclusive: bool | None = None
        self.learned: dict[str, Any] | None = None  # the probe, for the manifest

    def at(self, invoke: Invoke, params: dict[str, Any], second: int) -> bool:
        with self._lock:
            if self.inclusive is None:
                result = invoke(CmdletCall(
                    CMDLET, {**params, "StartDate": _dt(second - 1), "EndDate": _dt(second), "ResultSize": PAGE_SIZE},
                    select=SELECT,
                ))
                _check_streams(result)
                rows = _rows(result)
                self.inclusive = any(r.time == second for r in rows)
                self.learned = {"inclusive": self.inclusive, "probe_end": _dt(second).isoformat(),
                                "probe_rows": len(rows)}
            return self.inclusive


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def fetch_session(
    invoke: Invoke, params: dict[str, Any], window: Window, *, estimate: bool = False,
    end_rule: EndDateRule | None = None,
) -> Fetch:
    """Page a ReturnLargeSet session over ``window`` until its ResultIndex set is 1..n after a short
    page; a foreign row, a ResultIndex served twice or missing fails the session (see the module doc).
    ``estimate``: the window's size is unknown; after ``RECAPTURE_AFTER`` full pages, estimate it.
    ``end_rule``: the query's (shared) knowledge of EndDate; without it, a row at the end second passes."""
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
    check = RowCheck(params, window)
    fetch = Fetch(window, Mode.SESSION)

    def counted(call: CmdletCall) -> CmdletResult:  # every call of this fetch goes through it
        fetch.calls += 1
        return invoke(call)

    seen: set[int] = set()
    short = False
    while True:
        result = counted(CmdletCall(CMDLET, base, select=SELECT))
        _check_streams(result)
        output = result.output
        rows = _rows(result)
        if end_rule is not None and check.end_inclusive and any(r.time == window.end for r in rows):
            check.end_inclusive = end_rule.at(counted, params, window.end)
        problem = next((p for p in map(check.problem, rows) if p), "")
        if problem:
            fetch.rejected += len(rows)
            fail(fetch, f"page {fetch.pages + 1} held {problem}: the page is not kept, the window is fetched again")
            break
        fetch.rows.extend(rows)
        if output:
            fetch.pages += 1
        indexes = [_int(item.get("ResultIndex")) for item in output]
        problem = _index_problem(indexes, seen)
        if problem:
            fail(fetch, problem)
            break
        seen.update(i for i in indexes if i is not None)
        short = short or len(output) < PAGE_SIZE
        if _announced_problem(fetch, output):
            break
        top = max(seen, default=0)
        if top >= SESSION_CAP:
            fetch.status, fetch.cap = "capped", SESSION_CAP
            break
        if short and len(seen) == top:  # 1..top, each once (duplicates were refused above)
            break
        if estimate and fetch.pages == RECAPTURE_AFTER and not short and fetch.announced is None and _recapture(
            counted, {**base, "SessionId": str(uuid.uuid4())}, check, fetch
        ):
            break
        if not output:
            fail(fetch, f"session ran dry with {top - len(seen)} ResultIndex values between 1 and {top} never served")
            break
        if fetch.calls >= MAX_PAGES:
            fail(fetch, f"session still paging after {fetch.calls} pages")
            break
    fetch.seconds = time.monotonic() - began
    return fetch


def _recapture(invoke: Invoke, params: dict[str, Any], check: RowCheck, fetch: Fetch) -> bool:
    """One page of a second session: estimate the window's total from how many of its rows the first
    session already served. True (and the fetch capped) when the estimate exceeds ESTIMATE_LIMIT.
    ``invoke`` counts its calls in ``fetch``."""
    result = invoke(CmdletCall(CMDLET, params, select=SELECT))
    _check_streams(result)
    rows = _rows(result)
    if not rows or any(check.problem(r) for r in rows):
        return False  # no estimate; the session goes on (its own pages are what counts)
    marked = {r.key for r in fetch.rows}
    caught = {r.key for r in rows}
    recaptured = len(caught & marked)
    estimate = len(marked) * len(caught) // max(recaptured, 1)
    if recaptured and estimate <= ESTIMATE_LIMIT:
        return False
    fetch.rows.extend(rows)  # a sample like the others: kept, the window is fetched again in pieces
    fetch.status, fetch.cap, fetch.announced = "capped", SESSION_CAP, max(estimate, SESSION_CAP + 1)
    fetch.detail = (f"about {estimate} records estimated ({recaptured} of a second session's {len(caught)} rows "
                    f"seen among the first {len(marked)}), more than one session returns")
    return True


def fail(fetch: Fetch, detail: str) -> None:
    fetch.status, fetch.detail = "session_failed", detail


def _announced_problem(fetch: Fetch, output: list[dict[str, Any]]) -> bool:
    """ResultCount, only where it is not just echoing ResultSize: a hint and a consistency check."""
    if not output:
        return False
    count = _int(output[0].get("ResultCount"))
    if count is None or count <= 0 or count == PAGE_SIZE:
        return False
    if fetch.announced is None:
        fetch.announced = count
        if count > SESSION_CAP:
            # This session would stop at 50,000: give up after one page instead of ten. The page is
            # a random sample that, with the announced total, sizes the pieces.
            fetch.status, fetch.cap = "capped", SESSION_CAP
            fetch.detail = f"session announced {count} records, more than one session returns"
            return True
    # Duplicates get their own ResultIndex, so compare distinct records with the announcement.
    distinct = len({r.key for r in fetch.rows})
    if distinct > fetch.announced:
        fail(fetch, f"session returned {distinct} distinct records, more than the announced {fetch.announced}")
        return True
    return False


def _index_problem(indexes: list[int | None], seen: set[int]) -> str:
    """A ResultIndex missing, out of range, or served twice (a silent restart)."""
    if any(i is None for i in indexes):
        return "rows without a ResultIndex"
    page: set[int] = set()
    for index in indexes:
        assert index is not None
        if index < 1:
            return f"ResultIndex {index} is not a row number"
        if index in seen or index in page:
            return f"session restarted or repeated itself (ResultIndex {index} served twice)"
        page.add(index)
    return ""
