"""Message trace lookups: many ids per query, 10-day windows across the 90-day reach, paging past the
5,000-row cap, a rate limit under ~100 queries per 5 minutes, and retries through the collector's policy.

``Get-MessageTraceV2`` pages with ``-EndDate`` (the last row's Received) and ``-StartingRecipientAddress``
(its recipient); rows come newest first, one per recipient. Where V2 does not exist (CommandNotFound) the
older ``Get-MessageTrace`` is used: 10 days of reach, ``-Page``/``-PageSize``. Every row is handed to
``raw_sink`` (written to the case) before it is used; each query is logged without any address.
Paging continues at the last row's Received and recipient, as the service's own next-page command does,
but with ``-EndDate`` rounded up to the whole second: ``Received`` has sub-second precision while how
the service compares ``-EndDate`` is not documented (a date cut to the second would drop the other
recipients of the boundary's second). The rows of that second come again and are deduplicated on
MessageTraceId + RecipientAddress, so nothing is lost whichever way the service compares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, CmdletResult, ExoBackend
from mia_bridge.collect.retry import RetryPolicy, call_with_retry
from mia_bridge.enrich.model import SOURCE_TRACE, SOURCE_TRACE_V2, MessageMeta, bracketed, normalise_id
from mia_bridge.enrich.ratelimit import TokenBucket
from mia_bridge.errors import AccessDeniedError, CommandNotFoundError

log = logging.getLogger(__name__)

V2 = "Get-MessageTraceV2"
LEGACY = "Get-MessageTrace"
TRACE_LIMIT = 100  # queries ...
TRACE_WINDOW_S = 300.0  # ... per 5 minutes (documented; the service throttles beyond)
MORE_RESULTS = "There are more results"
_MARGIN = timedelta(minutes=5)  # stay inside the reach: the service refuses a StartDate beyond it


class TraceUnavailable(Exception):
    """Message trace cannot be used at all (no permission, or neither cmdlet exists)."""


@dataclass
class TraceSettings:
    batch_size: int = 50  # ids per -MessageId query
    window: timedelta = timedelta(days=10)
    reach: timedelta = timedelta(days=90)
    legacy_reach: timedelta = timedelta(days=10)
    result_size: int = 5000


RawSink = Callable[[dict[str, Any], list[dict[str, Any]]], None]


class MessageTrace:
    """Message trace of one tenant through an open backend."""

    def __init__(
        self,
        backend: ExoBackend,
        *,
        now: datetime,
        limiter: TokenBucket,
        retry: RetryPolicy,
        internal_domains: Iterable[str] = (),
        settings: TraceSettings | None = None,
        raw_sink: RawSink | None = None,
    ) -> None:
        self.backend = backend
        self.now = now
        self.limiter = limiter
        self.retry = retry
        self.internal_domains = {d.lower() for d in internal_domains}
        self.settings = settings or TraceSettings()
        self.raw_sink = raw_sink
        self.legacy = False
        self.unavailable: str | None = None
        self.query_log: list[dict[str, Any]] = []
        self.retries = 0

    @property
    def cmdlet(self) -> str:
        return LEGACY if self.legacy else V2

    @property
    def source(self) -> str:
        return SOURCE_TRACE if self.legacy else SOURCE_TRACE_V2

    @property
    def reach(self) -> timedelta:
        return self.settings.legacy_reach if self.legacy else self.settings.reach

    @property
    def horizon(self) -> datetime:
        """The oldest time message trace still covers."""
        return self.now - self.reach + _MARGIN

    # --- lookups ----------------------------------------------------------------------------------

    def find_ids(self, wanted: dict[str, tuple[str, datetime | None]]) -> dict[str, MessageMeta]:
        """Metadata for each id (key -> (id as spelt, latest time it can have been received)).

        Windows go back from the newest bound to the reach; each id is asked only in windows that
        start before its bound, and no more once found.
        """
        found: dict[str, MessageMeta] = {}
        pending = {k: (raw, bound or self.now) for k, (raw, bound) in wanted.items()}
        if not pending:
            return found
        top = min(self.now, max(b for _, b in pending.values()) + timedelta(minutes=1))
        while pending and top > self.horizon:
            start = max(self.horizon, top - self.settings.window)
            candidates = sorted(k for k, (_, bound) in pending.items() if bound >= start)
            for i in range(0, len(candidates), self.settings.batch_size):
                batch = [k for k in candidates[i:i + self.settings.batch_size] if k in pending]
                if not batch:
                    continue
                params = {"MessageId": [bracketed(pending[k][0]) for k in batch]}
                for meta in self._query(params, start, top, what=f"{len(batch)} ids"):
                    key = normalise_id(meta.internet_message_id)
                    if key in pending:
                        found[key] = meta
                        del pending[key]
            top = start
        return found

    def by_party(self, address: str, role: str, before: datetime) -> list[MessageMeta]:
        """Messages ``address`` received (role "recipient") or sent ("sender") before ``before``, within reach."""
        param = "RecipientAddress" if role == "recipient" else "SenderAddress"
        out: dict[str, MessageMeta] = {}
        top = min(self.now, before)
        while top > self.horizon:
            start = max(self.horizon, top - self.settings.window)
            for meta in self._query({param: [address]}, start, top, what=f"by {role}"):
                key = normalise_id(meta.internet_message_id)
                if key not in out:
                    out[key] = meta
            top = start
        return list(out.values())

    # --- one query, all its pages -----------------------------------------------------------------

    def _query(self, filters: dict[str, Any], start: datetime, end: datetime, *, what: str) -> list[MessageMeta]:
        if self.unavailable:
            raise TraceUnavailable(self.unavailable)
        if not self.legacy:
            try:
                rows = self._pages_v2(filters, start, end, what)
                return self._messages(rows)
            except CommandNotFoundError:
                log.warning("%s is not available; falling back to %s (10 days of reach)", V2, LEGACY)
                self.legacy = True
        start = max(start, self.horizon)
        if end <= start:
            return []
        return self._messages(self._pages_legacy(filters, start, end, what))

    def _pages_v2(self, filters: dict[str, Any], start: datetime, end: datetime, what: str) -> list[dict[str, Any]]:
        size = self.settings.result_size
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, ...]] = set()
        tried: set[tuple[Any, str]] = set()
        params: dict[str, Any] = {**filters, "StartDate": start, "EndDate": end, "ResultSize": size}
        page = 1
        while True:
            result = self._invoke(CmdletCall(V2, dict(params)), what, page)
            fresh = [r for r in result.output if _row_key(r) not in seen]
            seen.update(_row_key(r) for r in fresh)
            rows.extend(fresh)
            more = any(MORE_RESULTS in w for w in result.warnings) or len(result.output) >= size
            if not more or not result.output:
                return rows
            last = result.output[-1]
            received = last.get("Received")
            next_end = _ceil_second(received) if isinstance(received, datetime) else received
            recipient = str(last.get("RecipientAddress") or "")
            if (next_end, recipient.lower()) in tried and size < TRACE_MAX_RESULT_SIZE:
                # A whole page inside one second: ask again for more rows at once.
                size = min(TRACE_MAX_RESULT_SIZE, size * 2)
                tried.discard((next_end, recipient.lower()))
            elif (next_end, recipient.lower()) in tried and isinstance(received, datetime):
                next_end = received  # still one second at the largest page: try the exact time
            if (next_end, recipient.lower()) in tried:  # the service repeats itself: stop rather than loop
                log.warning("message trace paging made no progress at %s; stopping", received)
                return rows
            tried.add((next_end, recipient.lower()))
            params = {**filters, "StartDate": start, "EndDate": next_end, "StartingRecipientAddress": recipient,
                      "ResultSize": size}
            page += 1

    def _pages_legacy(
        self, filters: dict[str, Any], start: datetime, end: datetime, what: str
    ) -> list[dict[str, Any]]:
        size = self.settings.result_size
        rows: list[dict[str, Any]] = []
        for page in range(1, 1001):
            params = {**filters, "StartDate": start, "EndDate": end, "PageSize": size, "Page": page}
            result = self._invoke(CmdletCall(LEGACY, params), what, page)
            rows.extend(result.output)
            if len(result.output) < size:
                break
        return rows

    def _invoke(self, call: CmdletCall, what: str, page: int) -> CmdletResult:
        entry: dict[str, Any] = {
            "cmdlet": call.name, "what": what, "page": page,
            "start": _iso(call.parameters.get("StartDate")), "end": _iso(call.parameters.get("EndDate")),
        }
        attempts: list[float] = []

        def once() -> CmdletResult:
            attempts.append(self.limiter.acquire())
            return self.backend.invoke(call)

        def on_retry(attempt: int, exc: BaseException) -> None:
            self.retries += 1
            log.info("message trace query retried (attempt %d): %s", attempt + 1, getattr(exc, "message", exc))

        try:
            result = call_with_retry(once, self.retry, on_retry=on_retry)
        except AccessDeniedError as exc:
            self.unavailable = f"{call.name}: permission denied ({exc.message})"
            raise TraceUnavailable(self.unavailable) from None
        except CommandNotFoundError:
            if call.name == LEGACY:
                self.unavailable = f"neither {V2} nor {LEGACY} is available on the endpoint"
                raise TraceUnavailable(self.unavailable) from None
            raise
        finally:
            for stamp in attempts:  # every attempt is a query the service counts
                self.query_log.append({**entry, "t": round(stamp, 3), "attempts": len(attempts)})
        log.info("message trace query %s (%s, page %d, %s..%s): %d rows", call.name, what, page, entry["start"],
                 entry["end"], len(result.output))
        if self.raw_sink is not None:
            self.raw_sink(call.describe(), result.output)
        return result

    # --- rows to messages -------------------------------------------------------------------------

    def _messages(self, rows: list[dict[str, Any]]) -> list[MessageMeta]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            mid = str(row.get("MessageId") or "")
            if mid:
                grouped.setdefault(normalise_id(mid), []).append(row)
        out = []
        for group in grouped.values():
            first = group[0]
            sender = str(first.get("SenderAddress") or "").lower()
            recipients = tuple(sorted({str(r.get("RecipientAddress") or "").lower() for r in group} - {""}))
            received = [r["Received"] for r in group if isinstance(r.get("Received"), datetime)]
            statuses = sorted({str(r.get("Status") or "") for r in group} - {""})
            size = first.get("Size")
            out.append(MessageMeta(
                internet_message_id=str(first.get("MessageId")),
                sender=sender,
                to=recipients,
                subject=str(first.get("Subject") or ""),
                received=min(received) if received else None,
                size=int(size) if isinstance(size, int | float) else None,
                status=";".join(statuses),
                direction=direction(sender, recipients, self.internal_domains),
                source=self.source,
            ))
        return out


def direction(sender: str, recipients: Iterable[str], internal_domains: set[str]) -> str:
    """Inbound (from outside), Outbound (from inside, to someone outside) or Internal."""
    if not internal_domains:
        return ""

    def inside(address: str) -> bool:
        return address.rsplit("@", 1)[-1].lower() in internal_domains

    if not inside(sender):
        return "Inbound"
    return "Outbound" if any(not inside(r) for r in recipients) else "Internal"


TRACE_MAX_RESULT_SIZE = 5000  # Get-MessageTraceV2 -ResultSize maximum


def _row_key(row: dict[str, Any]) -> tuple[str, ...]:
    """One row per message and recipient: MessageTraceId + RecipientAddress (or what identifies it)."""
    recipient = str(row.get("RecipientAddress") or "").lower()
    trace_id = str(row.get("MessageTraceId") or "").lower()
    if trace_id:
        return (trace_id, recipient)
    return (normalise_id(str(row.get("MessageId") or "")), recipient, str(row.get("Received")))


def _ceil_second(moment: datetime) -> datetime:
    return moment if not moment.microsecond else moment.replace(microsecond=0) + timedelta(seconds=1)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")
