"""``--source graph-audit``: collect through the Microsoft Graph audit log query API instead of Search-UnifiedAuditLog.

One server-side query per time window: create it, poll its status with growing waits until it is
succeeded, failed or cancelled, then page its records. Each record's ``auditData`` goes into the same
evidence file, dedup, journal and manifest as the ``ual`` source (``evidence/store.py``,
``collect/state.py``). What is specific to this source:

- the query id is journalled the moment the service hands it out (``state/<name>.graph-queries.jsonl``):
  a rerun after a crash keeps polling that query instead of starting a new search, and only creates
  a new one when the service no longer knows it (404) or it ended failed/cancelled;
- a query that reports ``isRecordCountLimitExceeded`` (or an approximate count at its
  ``recordCountLimit``) holds only part of the window's records: its window is split in two and
  each half is searched again, down to one second; a one-second window still over the limit is
  collected and reported as a gap, never as complete;
- failed and cancelled queries are created again up to ``max_attempts`` times per window, then the
  run stops with an error (what was committed stays; a rerun resumes).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.bridge.graph_audit import (
    LONG_WAIT,
    TERMINAL,
    AuditLogQueryClient,
    RecordsLinkExpired,
    workload_warning,
)
from mia_bridge.collect.graph_options import MAX_CONCURRENT_QUERIES, GraphAuditOptions
from mia_bridge.collect.query import AuditQuery
from mia_bridge.collect.state import STATE_DIR, Journal, JournalEntry
from mia_bridge.collect.windows import Window
from mia_bridge.errors import BridgeTimeoutError, CollectError, ThrottledError, UsageError
from mia_bridge.evidence import manifest, seal
from mia_bridge.evidence.store import AuditRow, EvidenceFile, parse_row
from mia_bridge.records.timestamps import epoch_seconds

if TYPE_CHECKING:
    from mia_bridge.collect.engine import CollectOptions, Progress, QueryResult

log = logging.getLogger(__name__)

MODE = "graph"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_type_filter(value: str) -> str:
    """A record type as the auditLogRecordType enum spells it (camelCase: ExchangeItem → exchangeItem)."""
    text = value.strip()
    if not text or text.isdigit():
        raise UsageError(
            f"record type {value!r}: the Graph audit log query API takes record type names, not numbers",
            hint="give the name, e.g. --record-type ExchangeItem",
        )
    return text[:1].lower() + text[1:]


def query_body(query: AuditQuery, options: GraphAuditOptions, window: Window) -> dict[str, Any]:
    """The auditLogQuery to POST for one window (filters omitted when empty, as the SDK does)."""
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.security.auditLogQuery",
        "displayName": f"mia-bridge {query.name} {_iso(window.start)}",
        "filterStartDateTime": _iso(window.start),
        "filterEndDateTime": _iso(window.end),
    }
    lists = {
        "operationFilters": list(query.operations),
        "recordTypeFilters": [record_type_filter(r) for r in query.record_types],
        "userPrincipalNameFilters": list(query.user_ids),
        "ipAddressFilters": list(query.ip_addresses),
        "objectIdFilters": list(query.object_ids),
        "serviceFilters": list(options.service_filters),
        "administrativeUnitIdFilters": list(options.administrative_unit_ids),
    }
    body.update({k: v for k, v in lists.items() if v})
    if query.free_text:
        body["keywordFilter"] = query.free_text
    return body


class QueryIds:
    """Which service-side query serves which window, journalled (fsynced) as soon as it is created."""

    def __init__(self, case_dir: Path, name: str) -> None:
        self.path = case_dir / STATE_DIR / f"{name}.graph-queries.jsonl"
        self._lock = threading.Lock()
        self.current: dict[tuple[int, int], str] = {}
        self.created = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(line)
                    key = (int(event["start"]), int(event["end"]))
                except (ValueError, KeyError, TypeError):
                    break  # a torn last line: that query is created again
                if event.get("event") == "created":
                    self.current[key] = str(event["query_id"])
                elif self.current.get(key) == event.get("query_id"):
                    del self.current[key]

    def _append(self, event: dict[str, Any]) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def add(self, window: Window, query_id: str) -> None:
        self._append({"event": "created", "start": window.start, "end": window.end, "query_id": query_id})
        with self._lock:
            self.current[(window.start, window.end)] = query_id
            self.created += 1

    def drop(self, window: Window, query_id: str, reason: str) -> None:
        self._append({"event": "dropped", "start": window.start, "end": window.end, "query_id": query_id,
                      "reason": reason})
        with self._lock:
            if self.current.get((window.start, window.end)) == query_id:
                del self.current[(window.start, window.end)]

    def get(self, window: Window) -> str | None:
        with self._lock:
            return self.current.get((window.start, window.end))


@dataclass
class _Outcome:
    window: Window
    status: str  # complete | split | gap
    query_id: str
    rows: list[AuditRow] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    seconds: float = 0.0
    limit: int | None = None
    detail: str = ""


class _WindowRun:
    """Create (or resume), poll and read the query of one window, in a worker thread."""

    def __init__(self, client: AuditLogQueryClient, ids: QueryIds, query: AuditQuery, options: GraphAuditOptions,
                 sleep: Callable[[float], None]) -> None:
        self.client, self.ids, self.query, self.options, self.sleep = client, ids, query, options, sleep

    def __call__(self, window: Window) -> _Outcome:
        began = time.monotonic()
        calls = 0
        failures: list[str] = []
        query_id = self.ids.get(window)
        while True:
            if query_id is None:
                created, tries = self._create(window)
                calls += tries
                query_id = created.query_id
                self.ids.add(window, query_id)
            status, polls = self._poll(query_id, window)
            calls += polls
            if status is None:  # the service no longer knows it: search again
                self.ids.drop(window, query_id, "not found")
                failures.append(f"{query_id} not found")
            elif status.status != "succeeded":
                self.ids.drop(window, query_id, status.status)
                failures.append(f"{query_id} {status.status}")
            else:
                break
            if len(failures) >= self.options.max_attempts:
                raise CollectError(
                    f"Graph audit log query for {_iso(window.start)} .. {_iso(window.end)} did not succeed "
                    f"{len(failures)} times ({'; '.join(failures)})",
                    hint="what was collected is kept; rerun the same command later to resume",
                )
            query_id = None
        out = _Outcome(window, "complete", query_id, limit=status.record_count_limit)
        detail = [f"query {query_id}"] + ([f"earlier: {'; '.join(failures)}"] if failures else [])
        if status.truncated and window.seconds > 1:
            out.status = "split"
            detail.append(f"over the record-count limit ({status.approximate_count} ≈ records, limit "
                          f"{status.record_count_limit}): window split in two")
        else:
            out.rows, pages = self._records(query_id)
            calls += pages
            if status.truncated:
                out.status = "gap"
                detail.append(f"still over the record-count limit {status.record_count_limit} in one second")
        out.calls, out.detail, out.seconds = calls, "; ".join(detail), time.monotonic() - began
        return out

    def _create(self, window: Window) -> tuple[Any, int]:
        """Create the window's query; while the tenant's queue of queries is full (429 after the client's own
        retries) wait like a poll and try again, until ``poll_timeout_s``: our other queries free places."""
        wait_s, waited, tries = self.options.poll_initial_s, 0.0, 0
        while True:
            tries += 1
            try:
                return self.client.create(query_body(self.query, self.options, window)), tries
            except ThrottledError as exc:
                if exc.error_id == LONG_WAIT or waited >= self.options.poll_timeout_s:
                    raise
                log.info("query for %s: the service is busy (%s); trying again in %.1f s", _iso(window.start),
                         exc.message, wait_s)
            self.sleep(wait_s)
            waited += wait_s
            wait_s = min(wait_s * self.options.poll_factor, self.options.poll_max_s)

    def _poll(self, query_id: str, window: Window) -> tuple[Any, int]:
        """Wait until the query is terminal: (status or None when unknown to the service, calls made)."""
        wait_s, waited, calls = self.options.poll_initial_s, 0.0, 0
        while True:
            status = self.client.get(query_id)
            calls += 1
            if status is None or status.status in TERMINAL:
                return status, calls
            if waited >= self.options.poll_timeout_s:
                raise BridgeTimeoutError(
                    f"Graph audit log query {query_id} ({_iso(window.start)} .. {_iso(window.end)}) is still "
                    f"{status.status} after {waited:.0f} s",
                    hint="rerun the same command later: it keeps polling this query instead of starting over",
                )
            self.sleep(wait_s)
            waited += wait_s
            wait_s = min(wait_s * self.options.poll_factor, self.options.poll_max_s)

    def _records(self, query_id: str) -> tuple[list[AuditRow], int]:
        """Every record of the query; an expired page link restarts the paging from the first page."""
        calls = 0
        for attempt in range(self.options.link_restarts + 1):
            rows: list[AuditRow] = []
            try:
                for page in self.client.record_pages(query_id, self.options.page_size):
                    calls += 1
                    rows.extend(_row(record) for record in page)
                return rows, calls
            except RecordsLinkExpired as exc:
                calls += 1
                log.warning("query %s: records link expired (%s); paging again (%d)", query_id, exc, attempt + 1)
        raise CollectError(f"Graph audit log query {query_id}: the records paging link kept expiring",
                           hint="rerun the same command; it resumes")


def _row(record: dict[str, Any]) -> AuditRow:
    """auditData as received (serialised once, compact); a record without an auditData object with an ``Id`` goes
    through ``parse_row`` (kept whole in the side file when it has none)."""
    audit = record.get("auditData")
    if isinstance(audit, dict) and audit.get("Id"):
        when = epoch_seconds(audit.get("CreationTime"))
        return AuditRow(key=str(audit["Id"]).lower(), text=json.dumps(audit, separators=(",", ":"), ensure_ascii=False),
                        time=when if when is not None else epoch_seconds(record.get("createdDateTime")), parsed=True)
    if isinstance(audit, dict):
        return parse_row(audit, record.get("createdDateTime"), record.get("id"))
    return parse_row(json.dumps(record, ensure_ascii=False), record.get("createdDateTime"), record.get("id"))


def _halves(window: Window) -> list[Window]:
    middle = window.start + window.seconds // 2
    return [Window(window.start, middle), Window(middle, window.end)]


def _pending(window: Window, done: set[Window], split: set[Window]) -> list[Window]:
    if window in done:
        return []
    if window in split:
        return [w for half in _halves(window) for w in _pending(half, done, split)]
    return [window]


def audit_client(backend: ExoBackend) -> AuditLogQueryClient:
    make = getattr(backend, "audit_log_queries", None)
    if not callable(make):
        raise UsageError(
            "--source graph-audit needs --backend rest: the Graph audit log query API is called directly, "
            "not through the PowerShell jump host",
            hint="add --backend rest (app-only certificate or --auth device-code/browser), or use --source ual",
        )
    client = make()
    assert isinstance(client, AuditLogQueryClient)
    return client


def collect_graph_query(
    backend: ExoBackend,
    query: AuditQuery,
    case_dir: Path,
    options: CollectOptions,
    progress: Progress | None,
    sleep: Callable[[float], None] = time.sleep,
) -> QueryResult:
    """Collect one query through the Graph audit log query API; resumes what an earlier run started."""
    from mia_bridge.collect.engine import Gap, QueryCounts, QueryResult

    graph = options.graph or GraphAuditOptions()
    for record_type in query.record_types:
        record_type_filter(record_type)  # refuse bad input before anything is created
    client = audit_client(backend)
    warning = workload_warning(client.permissions())
    if warning:
        log.warning("%s", warning)
    header = {"query": query.describe(), "fingerprint": query.fingerprint(), "compress": options.compress,
              "name": query.name, "tool": "mia-bridge", "source": "graph-audit", "graph_filters": graph.filters()}
    journal = Journal(case_dir, query.name, key=seal.case_key())
    state = journal.load(header)
    # resume verifies before it trusts, as the ual source does (collect/state.py): journal, evidence, manifest
    state.check(journal.path, (query.start_s, query.end_s), 1)
    ids = QueryIds(case_dir, query.name)
    resumed = bool(state.entries) or bool(ids.current)
    evidence = EvidenceFile(case_dir, query.name, compress=options.compress)
    evidence.open(state.offset, state.unparsed_offset, state.expected(manifest.registered(case_dir)))
    period = (query.start_s, query.end_s)
    counts, windows, gaps = QueryCounts(), [], []
    totals = {"calls": 0, "retries": 0}
    done: set[Window] = set()
    split: set[Window] = set()

    def account(entry: JournalEntry, limit: int | None = None) -> None:
        counts.retrieved += entry.rows
        counts.unique += entry.new
        counts.duplicates_removed += entry.duplicates
        counts.out_of_window += entry.out_of_window
        counts.unparseable += entry.unparseable
        totals["calls"] += entry.calls
        totals["retries"] += entry.retries
        w = Window(entry.start, entry.end)
        (split if entry.status == "split" else done).add(w)
        if entry.status == "gap":
            if limit is None:  # resumed: the limit is in the journalled detail
                found = re.search(r"record-count limit (\d+)", entry.detail)
                limit = int(found.group(1)) if found else None
            gaps.append(Gap(datetime.fromtimestamp(w.start, UTC), datetime.fromtimestamp(w.end, UTC),
                            entry.in_window, limit or 0))
        windows.append({"stream": 0, "start": _iso(w.start), "end": _iso(w.end), "mode": MODE,
                        "status": entry.status, "rows": entry.rows, "new": entry.new,
                        "duplicates": entry.duplicates, "in_window": entry.in_window, "calls": entry.calls,
                        "retries": entry.retries, "seconds": entry.seconds,
                        **({"detail": entry.detail} if entry.detail else {})})

    for entry in state.entries:
        account(entry)
    root = Window(*period)
    queue = deque(_pending(root, done, split))
    if progress:
        progress.query_started(query.name, root.seconds, root.seconds - sum(w.seconds for w in queue))
    stop = threading.Event()

    def pause(seconds: float) -> None:
        """Poll waits end early when the run is interrupted (Ctrl-C must not wait for a 60-second poll)."""
        if stop.wait(0) or (sleep is time.sleep and stop.wait(seconds)):
            raise CollectError("interrupted")
        if sleep is not time.sleep:
            sleep(seconds)

    runner = _WindowRun(client, ids, query, graph, pause)
    workers = max(1, min(options.concurrency, MAX_CONCURRENT_QUERIES))
    inflight: dict[Future[_Outcome], Window] = {}
    failure: BaseException | None = None
    retries_before = client.retries
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mia-graph-audit")
    try:
        while queue or inflight:
            while failure is None and queue and len(inflight) < workers:
                window = queue.popleft()
                inflight[pool.submit(runner, window)] = window
            if not inflight:
                break
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                inflight.pop(future)
                try:
                    outcome = future.result()
                except BaseException as exc:
                    failure = failure or exc
                    continue
                retries_now = client.retries
                outcome.retries, retries_before = retries_now - retries_before, retries_now
                entry = _commit(outcome, evidence, journal, period)
                account(entry, outcome.limit)
                if outcome.status == "split":
                    queue.extend(_halves(outcome.window))
                if progress:
                    covered = 0 if outcome.status == "split" else outcome.window.seconds
                    progress.window_done(query.name, covered, len(outcome.rows), outcome.calls, outcome.retries)
    except BaseException:
        stop.set()
        for future in inflight:
            future.cancel()
        raise
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    result = QueryResult(query, evidence.path, counts, totals["calls"], totals["retries"], windows, gaps,
                         resumed=resumed)
    if progress:
        progress.query_finished(query.name, result)
    return result


def _commit(outcome: _Outcome, evidence: EvidenceFile, journal: Journal, period: tuple[int, int]) -> JournalEntry:
    """Evidence first (flushed, fsynced), then the journal line: a crash in between only redoes this window."""
    w = outcome.window
    commit, offset, uoffset = evidence.commit(outcome.rows, period=period)
    in_window = len({r.key for r in outcome.rows if r.time is not None and w.contains(r.time)})
    entry = JournalEntry(
        stream=0, start=w.start, end=w.end, mode=MODE, status=outcome.status, rows=commit.rows, new=commit.new,
        duplicates=commit.duplicates, duplicates_of_superseded=0, unparseable=commit.unparseable,
        out_of_window=commit.out_of_window, in_window=in_window, calls=outcome.calls, retries=outcome.retries,
        offset=offset, unparsed_offset=uoffset, seconds=round(outcome.seconds, 3), detail=outcome.detail,
        sha256=evidence.sha256, unparsed_sha256=evidence.unparsed_sha256,
    )
    journal.append(entry)
    return entry
