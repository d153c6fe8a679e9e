"""Collection orchestration: plan windows, fetch them concurrently, commit, journal, report.

The scheduler (the calling thread) owns the planners, the evidence files and the journals; worker
threads only run fetches. A fetch's rows are committed to evidence (flushed, fsynced) and then
journalled, in that order, before the planner hears about the result, so an interruption at any
point leaves a case folder that a rerun of the same command completes to the same record set.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mia_bridge import __version__
from mia_bridge.bridge.backend import CmdletCall, CmdletResult, ExoBackend
from mia_bridge.collect.graph_audit import collect_graph_query
from mia_bridge.collect.graph_options import SOURCES, GraphAuditOptions
from mia_bridge.collect.query import AuditQuery
from mia_bridge.collect.retry import RetryPolicy, call_with_retry
from mia_bridge.collect.state import STATE_DIR, Journal, JournalEntry
from mia_bridge.collect.ual import EndDateRule, Fetch, fetch_plain, fetch_session
from mia_bridge.collect.windows import Mode, Planned, SessionPolicy, Window, WindowPlanner
from mia_bridge.errors import CmdletError, CommandNotFoundError, EvidenceError, IngestionDisabledError, MiaError
from mia_bridge.evidence import manifest, seal
from mia_bridge.evidence.store import EVIDENCE_DIR, EvidenceFile
from mia_bridge.safe_files import make_dir

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4  # BENCHMARKS.md: 2 to 4 workers halve wall time; more bring nothing measurable
# A window whose sessions keep carrying other searches' rows is fetched alone after this much quiet. How long
# the service mixes in rows of searches paged before is not documented; the simulator counts 30 s
# (sim/handlers/unified_audit_log.py, CROSSTALK_WINDOW_S), so the pause is twice that.
QUIET_S = 60.0


@dataclass
class CollectOptions:
    """How to collect. ``backend_factory`` makes the extra connections concurrency needs."""

    concurrency: int = DEFAULT_CONCURRENCY
    sessions: SessionPolicy = SessionPolicy.AUTO
    compress: bool = False
    plain_target: int = 3500
    session_target: int = 25000
    floor_s: int = 1
    quiet_s: float = QUIET_S  # pause, with nothing in flight, before a failing window is fetched alone
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check_ingestion: bool = True
    backend_factory: Callable[[], ExoBackend] | None = None
    source: str = "ual"  # ual (Search-UnifiedAuditLog) | graph-audit (collect/graph_audit.py)
    graph: GraphAuditOptions | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "sessions": self.sessions.value,
            "compress": self.compress,
            "plain_target": self.plain_target,
            "session_target": self.session_target,
            "floor_s": self.floor_s,
            "quiet_s": self.quiet_s,
            "retry_attempts": self.retry.attempts,
            "retry_base_s": self.retry.base_s,
            "retry_cap_s": self.retry.cap_s,
            "source": self.source,
            **({"graph": (self.graph or GraphAuditOptions()).describe()} if self.source == "graph-audit" else {}),
        }


class Progress(Protocol):
    """Receives progress; the CLI renders it with rich, ``--json`` as lines, ``--quiet`` not at all."""

    def query_started(self, name: str, total_seconds: int, done_seconds: int) -> None: ...

    def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None: ...

    def query_finished(self, name: str, result: QueryResult) -> None: ...


@dataclass
class Gap:
    """A window not proven complete: it still hit a cap at the floor, its sessions kept failing, or only
    a plain call (which may be silently capped) covered it. Records beyond those received may be missing."""

    start: datetime
    end: datetime
    received: int
    cap: int
    reason: str = ""

    def describe(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "received": self.received,
                "cap": self.cap, **({"reason": self.reason} if self.reason else {})}

    def explain(self) -> str:
        return self.reason or (f"still {self.received} records at the {self.cap} cap in the smallest window; "
                               "records there may be missing")


@dataclass
class QueryCounts:
    retrieved: int = 0  # rows received, every fetch included
    unique: int = 0  # records kept (evidence + unparsed side file)
    duplicates_removed: int = 0
    refetch_overlap: int = 0  # duplicates whose first copy came from a capped or failed fetch
    out_of_window: int = 0  # kept, but CreationTime outside the query period
    unparseable: int = 0  # AuditData that is not a JSON object with an Id (kept in the side file)
    rejected: int = 0  # rows of pages that carried another search's rows: not kept, their windows refetched
    id_conflicts: int = 0  # kept rows whose Id was already stored with other content

    @property
    def service_duplicates(self) -> int:
        return self.duplicates_removed - self.refetch_overlap


@dataclass
class QueryResult:
    query: AuditQuery
    path: Path
    counts: QueryCounts
    calls: int
    retries: int
    windows: list[dict[str, Any]]
    gaps: list[Gap]
    resumed: bool
    resume: dict[str, Any] | None = None  # what a resume verified and trusted (manifest: collection.runs[].resumed)
    end_date: dict[str, Any] | None = None  # whether EndDate's second is inside a window, as the service answered

    @property
    def complete(self) -> bool:
        return not self.gaps

    def describe(self) -> dict[str, Any]:
        c = self.counts
        return {
            "parameters": self.query.describe(),
            "file": self.path.name,
            "counts": {
                "retrieved": c.retrieved,
                "unique": c.unique,
                "duplicates_removed": c.duplicates_removed,
                "refetch_overlap": c.refetch_overlap,
                "service_duplicates": c.service_duplicates,
                "out_of_window": c.out_of_window,
                "unparseable": c.unparseable,
                "rejected": c.rejected,
                "id_conflicts": c.id_conflicts,
            },
            "calls": self.calls,
            "retries": self.retries,
            "complete": self.complete,
            "gaps": [g.describe() for g in self.gaps],
            **({"end_date": self.end_date} if self.end_date else {}),
            "windows": self.windows,
        }


@dataclass
class CollectionResult:
    queries: list[QueryResult]
    manifest_path: Path
    started: datetime
    finished: datetime

    @property
    def complete(self) -> bool:
        return all(q.complete for q in self.queries)

    @property
    def calls(self) -> int:
        return sum(q.calls for q in self.queries)

    def by_name(self, name: str) -> QueryResult:
        for q in self.queries:
            if q.query.name == name:
                return q
        raise KeyError(name)


class _Connections:
    """One backend per worker thread; the first is the caller's. Without a factory all share it."""

    def __init__(self, backend: ExoBackend, factory: Callable[[], ExoBackend] | None) -> None:
        self.primary = backend
        self.factory = factory
        self._local = threading.local()
        self._opened: list[ExoBackend] = []
        self._lock = threading.Lock()
        self._shared_lock = threading.Lock()
        self._primary_taken = False

    def get(self) -> ExoBackend:
        backend: ExoBackend | None = getattr(self._local, "backend", None)
        if backend is None:
            with self._lock:
                if self.factory is None or not self._primary_taken:
                    backend = self.primary
                    self._primary_taken = True
                else:
                    backend = self.factory()
                    backend.open()
                    self._opened.append(backend)
            self._local.backend = backend
        return backend

    def invoke(self, call: CmdletCall) -> CmdletResult:
        backend = self.get()
        if backend is self.primary and self.factory is None:
            with self._shared_lock:  # a backend is not assumed to be thread-safe
                return backend.invoke(call)
        return backend.invoke(call)

    def reconnect(self) -> None:
        """Throw a broken connection away and open it again (Connect-ExchangeOnline included)."""
        backend = self.get()
        with contextlib.suppress(MiaError, OSError):
            backend.close()  # closing a dropped connection may fail too; a fresh open is what matters
        backend.open()

    def close(self) -> None:
        for backend in self._opened:
            with contextlib.suppress(MiaError):
                backend.close()


@dataclass
class _Counter:
    calls: int = 0
    retries: int = 0


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def clone_factory(backend: ExoBackend) -> Callable[[], ExoBackend] | None:
    """More connections like ``backend`` for concurrent workers: its ``clone()``, or the same class
    built from its ``settings`` (the pypsrp backend). None when neither exists: calls then share it."""
    clone = getattr(backend, "clone", None)
    if callable(clone):
        return clone  # type: ignore[no-any-return]
    settings = getattr(backend, "settings", None)
    if settings is None:
        return None
    kind = type(backend)

    def make() -> ExoBackend:
        return kind(settings)  # type: ignore[call-arg]

    return make


def check_ingestion(backend: ExoBackend) -> dict[str, Any]:
    """Stop early when unified audit log ingestion is off; say so when it cannot be checked."""
    try:
        result = backend.invoke(CmdletCall("Get-AdminAuditLogConfig"))
    except (CommandNotFoundError, CmdletError) as exc:
        if isinstance(exc, IngestionDisabledError):
            raise
        return {"checked": False, "reason": exc.message}
    enabled = None
    for item in result.output:
        if "UnifiedAuditLogIngestionEnabled" in item:
            enabled = item["UnifiedAuditLogIngestionEnabled"]
    if enabled is False or (isinstance(enabled, str) and enabled.lower() == "false"):
        raise IngestionDisabledError(
            "unified audit log ingestion is turned off for this tenant (UnifiedAuditLogIngestionEnabled: False)",
            cmdlet="Get-AdminAuditLogConfig",
            hint="nothing was recorded while it was off; enable it with Set-AdminAuditLogConfig "
            "-UnifiedAuditLogIngestionEnabled $true (mia investigate --enable-ingestion) and collect later",
        )
    return {"checked": True, "enabled": enabled}


def collect(
    backend: ExoBackend,
    queries: Sequence[AuditQuery],
    case_dir: Path,
    options: CollectOptions | None = None,
    progress: Progress | None = None,
) -> CollectionResult:
    """Collect every record of every query into ``case_dir``; resumes what an earlier run started."""
    options = options or CollectOptions()
    case_dir = Path(case_dir).absolute()  # evidence paths must not depend on the working directory
    make_dir(case_dir)
    if options.source not in SOURCES:
        raise MiaError(f"unknown collection source {options.source!r}; expected one of {', '.join(SOURCES)}")
    names = [q.name for q in queries]
    if len(set(names)) != len(names):
        raise MiaError(f"query names must be unique: {names}")
    started = _now()
    ingestion = check_ingestion(backend) if options.check_ingestion else {"checked": False, "reason": "disabled"}
    connections = _Connections(backend, options.backend_factory or clone_factory(backend))
    results: list[QueryResult] = []
    pool = ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="mia-collect")
    refused: str | None = None
    begun: list[AuditQuery] = []
    try:
        for query in queries:
            begun.append(query)
            if options.source == "graph-audit":
                results.append(collect_graph_query(backend, query, case_dir, options, progress))
            else:
                results.append(_collect_query(query, case_dir, options, connections, pool, progress))
    except EvidenceError as exc:  # a resume that failed its checks: the manifest records the refusal
        refused = exc.message
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        connections.close()
        finished = _now()
        done = {r.query.name for r in results}
        # a query that failed (denied, Ctrl-C) keeps what it committed: registered as partial evidence; one whose
        # resume was refused registers nothing (its journal and evidence did not match: left as found)
        unfinished = [q for q in begun if q.name not in done] if refused is None else []
        manifest.record_collection(
            case_dir,
            tool_version=__version__,
            backend=backend.describe(),
            options=options.describe(),
            ingestion=ingestion,
            started=started,
            finished=finished,
            queries={r.query.name: r.describe() for r in results},
            files={r.path: r.counts.unique - r.counts.unparseable for r in results},
            side_files=[_unparsed_path(r) for r in results],
            resumed={r.query.name: r.resume for r in results if r.resume},
            state_files=_state_files(case_dir, [*(r.query for r in results), *unfinished]),
            partial_files=[case_dir / EVIDENCE_DIR / f"{q.name}{suffix}" for q in unfinished
                           for suffix in (".jsonl.gz" if options.compress else ".jsonl", ".unparsed.jsonl")],
            refused=refused,
        )
    return CollectionResult(results, case_dir / manifest.MANIFEST_NAME, started, finished)


def _state_files(case_dir: Path, queries: Sequence[AuditQuery]) -> list[Path]:
    """The resume journal of each query and any evidence tails set aside on a resume (chain of custody)."""
    folder = case_dir / STATE_DIR
    paths = []
    for query in queries:
        paths += [folder / f"{query.name}.query.json", folder / f"{query.name}.journal.jsonl"]
        graph_ids = folder / f"{query.name}.graph-queries.jsonl"  # --source graph-audit: the service's query ids
        paths += [graph_ids] if graph_ids.exists() else []
        paths += sorted(folder.glob(f"{glob.escape(query.name)}.*.tail-at-*"))
    return paths


def _unparsed_path(result: QueryResult) -> Path:
    return result.path.with_name(f"{result.query.name}.unparsed.jsonl")


def _collect_query(
    query: AuditQuery,
    case_dir: Path,
    options: CollectOptions,
    connections: _Connections,
    pool: ThreadPoolExecutor,
    progress: Progress | None,
) -> QueryResult:
    streams = query.streams()
    header = {"query": query.describe(), "fingerprint": query.fingerprint(), "compress": options.compress,
              "name": query.name, "tool": "mia-bridge"}
    journal = Journal(case_dir, query.name, key=seal.case_key())
    state = journal.load(header)
    period = (query.start_s, query.end_s)
    # resume verifies before it trusts: the journal against itself, then against the evidence and the manifest
    state.check(journal.path, period, len(streams))
    evidence = EvidenceFile(case_dir, query.name, compress=options.compress)
    evidence.open(state.offset, state.unparsed_offset, state.expected(manifest.registered(case_dir)))
    planners = [
        WindowPlanner(
            query.start_s, query.end_s, policy=options.sessions, plain_target=options.plain_target,
            session_target=options.session_target, floor=options.floor_s,
        )
        for _ in streams
    ]
    counts = QueryCounts()
    totals = _Counter()
    windows: list[dict[str, Any]] = []
    gaps: list[Gap] = []
    done_seconds = 0
    for entry in state.entries:
        _account(entry, counts, totals, windows, gaps)
        if entry.status in ("complete", "gap", "unverified"):
            planners[entry.stream].exclude(Window(entry.start, entry.end))
            if entry.status in ("complete", "unverified"):
                planners[entry.stream].observe(Window(entry.start, entry.end), entry.in_window)
            done_seconds += entry.end - entry.start
    total_seconds = (query.end_s - query.start_s) * len(streams)
    if progress:
        progress.query_started(query.name, total_seconds, done_seconds)

    end_rule = EndDateRule()

    def run(stream: int, planned: Planned) -> tuple[Fetch, _Counter]:
        counter = _Counter()

        def invoke(call: CmdletCall) -> CmdletResult:
            def attempt() -> CmdletResult:
                counter.calls += 1
                return connections.invoke(call)

            def on_retry(_n: int, _exc: BaseException) -> None:
                counter.retries += 1

            return call_with_retry(attempt, options.retry, on_retry=on_retry, reconnect=connections.reconnect)

        params = streams[stream]
        if planned.mode is Mode.SESSION:
            return fetch_session(invoke, params, planned.window, estimate=planned.probe, end_rule=end_rule), counter
        return fetch_plain(invoke, params, planned.window), counter

    inflight: dict[Future[tuple[Fetch, _Counter]], tuple[int, Planned]] = {}
    alone: list[tuple[int, Planned]] = []  # windows to fetch by themselves once nothing else is in flight
    failure: BaseException | None = None
    try:
        while True:
            if failure is None and alone and not inflight:
                # Its sessions kept carrying other searches' rows: no other search runs until it is done.
                lone = alone.pop(0)
                log.warning("%s: the %d-second window at %s kept carrying other searches' rows; fetching it "
                            "alone after %.0f s with no search running", query.name, lone[1].window.seconds,
                            _utc(lone[1].window.start).isoformat(), options.quiet_s)
                time.sleep(options.quiet_s)
                inflight[pool.submit(run, *lone)] = lone
            elif failure is None and not alone and not any(p.alone_tries for _, p in inflight.values()):
                for stream, planner in enumerate(planners):
                    while not alone and len(inflight) < max(1, options.concurrency):
                        planned = planner.next()
                        if planned is None:
                            break
                        if planned.alone_tries:
                            alone.append((stream, planned))
                        else:
                            inflight[pool.submit(run, stream, planned)] = (stream, planned)
            if not inflight:
                if alone and failure is None:
                    continue
                break
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                stream, planned = inflight.pop(future)
                try:
                    fetch, counter = future.result()
                except BaseException as exc:
                    failure = failure or exc
                    planners[stream].in_flight -= 1
                    continue
                seconds = _commit(query, stream, planned, fetch, counter, evidence, journal, planners[stream],
                                  period, counts, totals, windows, gaps)
                if progress:
                    progress.window_done(query.name, seconds, len(fetch.rows), counter.calls, counter.retries)
    except BaseException:
        # Ctrl-C: finish and commit nothing more; what is journalled is consistent for a rerun.
        for future in inflight:
            future.cancel()
        raise
    if failure is not None:
        raise failure
    result = QueryResult(query, evidence.path, counts, totals.calls, totals.retries, windows, gaps,
                         resumed=bool(state.entries), end_date=end_rule.learned)
    if state.entries:  # recorded in the manifest's run: what was trusted, after which checks, what was cut
        result.resume = {"journal_entries": len(state.entries), "records": evidence.records,
                         "unparsed_records": evidence.unparsed_records, "offset": state.offset,
                         "sha256": evidence.sha256, "verified": "journal offsets, record counts, SHA-256, manifest",
                         "discarded_unjournalled_bytes": evidence.discarded,
                         "kept_in": [p.relative_to(case_dir).as_posix() for p in evidence.set_aside]}
    if progress:
        progress.query_finished(query.name, result)
    return result


def _commit(
    query: AuditQuery, stream: int, planned: Planned, fetch: Fetch, counter: _Counter, evidence: EvidenceFile,
    journal: Journal, planner: WindowPlanner, period: tuple[int, int], counts: QueryCounts, totals: _Counter,
    windows: list[dict[str, Any]], gaps: list[Gap],
) -> int:
    """Write the rows, journal the fetch, then tell the planner. Returns seconds newly covered."""
    w = fetch.window
    superseded = fetch.status != "complete"
    # A session serves rows in no particular order (quirk unsorted): each fetch's rows are written in
    # CreationTime order (then Id), so the same records give the same file whichever order they came in.
    rows = sorted(fetch.rows, key=lambda r: (r.time if r.time is not None else -1, r.key))
    commit, offset, uoffset = evidence.commit(rows, superseded=superseded, period=period)
    in_window = len({r.key for r in fetch.rows if r.time is not None and w.contains(r.time)})
    entry = JournalEntry(
        stream=stream, start=w.start, end=w.end, mode=fetch.mode.value, status=fetch.status, rows=commit.rows,
        new=commit.new, duplicates=commit.duplicates, duplicates_of_superseded=commit.duplicates_of_superseded,
        unparseable=commit.unparseable, out_of_window=commit.out_of_window, in_window=in_window,
        calls=counter.calls, retries=counter.retries, offset=offset, unparsed_offset=uoffset,
        seconds=round(fetch.seconds, 3), detail=fetch.detail, rejected=fetch.rejected, sha256=evidence.sha256,
        unparsed_sha256=evidence.unparsed_sha256, id_conflicts=commit.id_conflicts,
    )
    journal.append(entry)
    _account(entry, counts, totals, windows, gaps)
    if fetch.status in ("complete", "unverified"):
        planner.complete(planned, in_window)
        return w.seconds
    if fetch.status == "session_failed":
        gap_window = planner.failed_session(planned)
        detail = (f"{in_window} records received; sessions on this {w.seconds}-second window kept failing "
                  f"({fetch.detail})")
    else:
        gap_window = planner.incomplete(planned, [r.time for r in fetch.rows if r.time is not None], fetch.cap,
                                        fetch.announced if fetch.mode is Mode.SESSION else None)
        detail = (f"{in_window} records received in a {w.seconds}-second window that still hit the "
                  f"{fetch.cap} cap")
    if gap_window is None:
        return 0
    gap = JournalEntry(
        stream=stream, start=gap_window.start, end=gap_window.end, mode=fetch.mode.value, status="gap",
        rows=0, new=0, duplicates=0, duplicates_of_superseded=0, unparseable=0, out_of_window=0,
        in_window=in_window, calls=0, retries=0, offset=offset, unparsed_offset=uoffset, seconds=0.0,
        sha256=evidence.sha256, unparsed_sha256=evidence.unparsed_sha256,
        detail=detail,
    )
    journal.append(gap)
    _account(gap, counts, totals, windows, gaps)
    return gap_window.seconds


def _account(
    entry: JournalEntry, counts: QueryCounts, totals: _Counter, windows: list[dict[str, Any]], gaps: list[Gap]
) -> None:
    counts.retrieved += entry.rows
    counts.unique += entry.new
    counts.duplicates_removed += entry.duplicates
    counts.refetch_overlap += entry.duplicates_of_superseded
    counts.out_of_window += entry.out_of_window
    counts.unparseable += entry.unparseable
    counts.rejected += entry.rejected
    counts.id_conflicts += entry.id_conflicts
    totals.calls += entry.calls
    totals.retries += entry.retries
    if entry.status == "gap":
        cap = 50000 if entry.mode == Mode.SESSION.value else 5000
        reason = entry.detail if "kept failing" in entry.detail else ""
        gaps.append(Gap(_utc(entry.start), _utc(entry.end), entry.in_window, cap, reason))
    elif entry.status == "unverified":
        gaps.append(Gap(_utc(entry.start), _utc(entry.end), entry.in_window, 0, entry.detail))
    windows.append({
        "stream": entry.stream, "start": _utc(entry.start).isoformat(), "end": _utc(entry.end).isoformat(),
        "mode": entry.mode, "status": entry.status, "rows": entry.rows, "new": entry.new,
        "duplicates": entry.duplicates, "in_window": entry.in_window, "calls": entry.calls,
        "retries": entry.retries, "seconds": entry.seconds, **({"detail": entry.detail} if entry.detail else {}),
        **({"rejected": entry.rejected} if entry.rejected else {}),
    })
