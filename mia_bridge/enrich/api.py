"""``enrich_case(backend, case_dir, options) -> EnrichResult``: the whole enrichment of one case.

Scope (analysis + attacker context) → message trace for the accessed ids (raw answers written first) →
mail potentially exposed by syncs and throttled windows → opt-in mailbox metadata for what trace lacks →
affected parties → ``exposed_messages.csv``, ``affected_parties.csv``, ``enrich/summary.json`` and the
query log, every file registered in the case manifest. Counts reconcile: every accessed id of the scope
is one row, with metadata or a note saying why there is none.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import ExoBackend, Secret
from mia_bridge.collect.retry import RetryPolicy
from mia_bridge.enrich.mailbox_metadata import MailboxMetadata
from mia_bridge.enrich.message_trace import TRACE_LIMIT, TRACE_WINDOW_S, MessageTrace, TraceSettings, TraceUnavailable
from mia_bridge.enrich.model import ACCESSED, NOTE_NOT_IN_TRACE, NOTE_OLDER, POTENTIAL, ExposedMessage
from mia_bridge.enrich.outputs import EXPOSED_NAME, PARTIES_NAME, PARTY_COLUMNS, RawWriter, party_row, write_exposed
from mia_bridge.enrich.parties import Party, affected_parties
from mia_bridge.enrich.potential import potential_exposure, potential_from_mailbox
from mia_bridge.enrich.ratelimit import TokenBucket
from mia_bridge.enrich.scope import Scope, load_scope
from mia_bridge.evidence import manifest
from mia_bridge.evidence.case import Case, write_csv, write_json
from mia_bridge.evidence.layout import ENRICH_SUMMARY_NAME, FINDINGS_NAME, QUERY_LOG_NAME
from mia_bridge.evidence.redaction import Redactor
from mia_bridge.safe_files import open_private

log = logging.getLogger(__name__)


__all__ = ["EnrichOptions", "EnrichResult", "enrich_case"]


@dataclass
class EnrichOptions:
    allow_mailbox_metadata: bool = False
    redact_subjects: bool = False
    hash_addresses: bool = False
    hash_key: Secret | None = None  # default: MIA_HASH_KEY, else a random key for this run
    redactor: Redactor | None = None  # given by mia investigate: one key for every file of the run
    potential: bool = True  # list mail potentially exposed by syncs and throttled windows
    suspicious_ips: tuple[str, ...] = ()
    suspicious_apps: tuple[str, ...] = ()
    now: datetime | None = None  # the present message trace's 90 days count back from (default: now)
    trace: TraceSettings = field(default_factory=TraceSettings)
    rate_limit: int = TRACE_LIMIT
    rate_window_s: float = TRACE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class EnrichResult:
    case_dir: Path
    messages: list[ExposedMessage]
    parties: list[Party]
    summary: dict[str, Any]
    files: list[Path]
    trace_unavailable: str | None = None
    mailbox_unavailable: str | None = None
    query_log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accessed(self) -> list[ExposedMessage]:
        return [m for m in self.messages if m.exposure == ACCESSED]

    @property
    def potential(self) -> list[ExposedMessage]:
        return [m for m in self.messages if m.exposure == POTENTIAL]


def enrich_case(backend: ExoBackend, case_dir: Path, options: EnrichOptions | None = None) -> EnrichResult:
    """Enrich the exposure scope of ``case_dir`` through an open backend; writes and registers the outputs."""
    options = options or EnrichOptions()
    case = Case(case_dir)
    case_dir = case.folder
    scope = load_scope(case_dir, suspicious_ips=options.suspicious_ips, suspicious_apps=options.suspicious_apps)
    now = options.now or datetime.now(tz=UTC)
    raw = RawWriter(case.enrich_raw_dir)
    limiter = TokenBucket(options.rate_limit, options.rate_window_s, clock=options.clock, sleep=options.sleep,
                          name="message trace query")
    trace = MessageTrace(backend, now=now, limiter=limiter, retry=options.retry,
                         internal_domains=scope.internal_domains, settings=options.trace,
                         raw_sink=raw.sink("message_trace"))
    messages: dict[str, ExposedMessage] = dict(scope.accessed)
    potential: dict[str, ExposedMessage] = {}
    try:
        found = trace.find_ids({k: (m.internet_message_id, m.first_access) for k, m in messages.items()})
        for key, meta in found.items():
            messages[key].meta = meta
        if options.potential:
            potential = potential_exposure(scope, trace, set(messages))
    except TraceUnavailable:
        log.warning("message trace unavailable: %s", trace.unavailable)
    graph: MailboxMetadata | None = None
    if options.allow_mailbox_metadata:
        graph = MailboxMetadata(backend, retry=options.retry, internal_domains=scope.internal_domains,
                                raw_sink=raw.sink("graph_messages"))
        for message in messages.values():
            if message.meta is None and not graph.unavailable:
                message.meta = graph.lookup(message.internet_message_id, message.mailboxes)
        if options.potential:
            potential_from_mailbox(scope, graph, set(messages), potential)
    for message in messages.values():
        if message.meta is None:
            message.note = _note(message, trace, graph)
    # raw answers are hashed into the manifest before the outputs built from them
    raw_files = [p for p in raw.paths.values() if p.exists()]
    if raw_files:
        manifest.add_files(case_dir, raw_files, kind="evidence-enrich",
                           records={str(p): raw.lines.get(n, 0) for n, p in raw.paths.items()})
    ordered = sorted(messages.values(), key=lambda m: (m.first_access or now, m.key))
    ordered += sorted(potential.values(), key=lambda m: (m.meta.received if m.meta and m.meta.received else now,
                                                          m.key))
    parties = affected_parties(ordered, scope.internal_domains)
    redactor = options.redactor or Redactor(redact_subjects=options.redact_subjects,
                                            hash_addresses=options.hash_addresses, key=options.hash_key)
    result = EnrichResult(case_dir, ordered, parties, {}, [], trace.unavailable,
                          graph.unavailable if graph else None, trace.query_log)
    result.summary = _summary(scope, result, trace, limiter, graph, options, redactor)
    exposed_path, parties_path = case.path(EXPOSED_NAME), case.path(PARTIES_NAME)
    rows = write_exposed(exposed_path, ordered, redactor)
    party_rows = write_csv(parties_path, PARTY_COLUMNS, (party_row(p, redactor) for p in parties))
    query_log = case.path(QUERY_LOG_NAME)
    _jsonl(query_log, trace.query_log)
    summary_path = write_json(case.path(ENRICH_SUMMARY_NAME), result.summary)
    result.files = [exposed_path, parties_path, query_log, summary_path]
    # CSV rows are counted in the summary (a quoted cell may span lines; the manifest counts lines)
    result.summary["files"] = {EXPOSED_NAME: rows, PARTIES_NAME: party_rows}
    write_json(summary_path, result.summary)
    inputs = _unregistered_inputs(case_dir, scope.analysis_dir)
    if inputs:  # a folder of mia analyze: its tables are what this enrichment derives from (mia verify lists all)
        manifest.add_files(case_dir, inputs, kind="input")
    manifest.add_files(case_dir, result.files, kind="enrich", records={str(query_log): len(trace.query_log)})
    return result


def _unregistered_inputs(case_dir: Path, analysis_dir: Path | None) -> list[Path]:
    """The analysis outputs (and findings.json) the enrichment read that the manifest does not list yet."""
    from mia_bridge.analysis.outputs import TABLES

    names = [f"{t}.{ext}" for t in TABLES for ext in ("csv", "parquet")]
    names += ["records.parquet", "summary.json", "quarantine.jsonl"]
    known = manifest.registered(case_dir)
    paths = [analysis_dir / n for n in names] if analysis_dir is not None else []
    paths.append(case_dir / FINDINGS_NAME)
    return [p for p in paths if p.is_file() and not p.is_symlink()
            and p.relative_to(case_dir).as_posix() not in known]


def _note(message: ExposedMessage, trace: MessageTrace, graph: MailboxMetadata | None) -> str:
    if trace.unavailable:
        note = f"no metadata (message trace unavailable: {trace.unavailable})"
    elif message.first_access is not None and message.first_access < trace.horizon:
        note = NOTE_OLDER
    else:
        note = NOTE_NOT_IN_TRACE
    if graph is None:
        return note
    if graph.unavailable:
        return f"{note}; mailbox metadata unavailable: {graph.unavailable}"
    return f"{note}; not found in the mailbox either (deleted since?)"


def _jsonl(path: Path, entries: list[dict[str, Any]]) -> Path:
    with open_private(path, "w") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    return path


def _summary(scope: Scope, result: EnrichResult, trace: MessageTrace, limiter: TokenBucket,
             graph: MailboxMetadata | None, options: EnrichOptions, redactor: Redactor) -> dict[str, Any]:
    accessed, potential = result.accessed, result.potential
    sources = Counter(m.meta.source for m in accessed if m.meta)
    notes = Counter(m.note.split(";")[0] for m in accessed if m.meta is None)
    return {
        "scope": {
            "analysis": str(scope.analysis_dir),
            "bind_item_rows_read": scope.bind_rows,
            "attacker_ips": sorted(scope.attacker_ips),
            "attacker_apps": sorted(scope.attacker_apps),
            "internal_domains": sorted(scope.internal_domains),
            "folder_syncs": len(scope.syncs),
            "throttled_windows": len(scope.throttled),
            "notes": [redactor.text(n) for n in scope.notes],
        },
        "counts": {
            "accessed_ids": len(scope.accessed),
            "accessed_rows": len(accessed),  # equals accessed_ids: one row per id
            "accessed_with_metadata": sum(sources.values()),
            "accessed_metadata_sources": dict(sources),
            "accessed_without_metadata": sum(notes.values()),
            "accessed_without_metadata_reasons": {redactor.text(k): v for k, v in notes.items()},
            "potentially_exposed": len(potential),
            "affected_addresses": sum(1 for p in result.parties if p.party_type == "address"),
            "affected_external_domains": sum(1 for p in result.parties if p.party_type != "address"),
        },
        "message_trace": {
            "cmdlet": trace.cmdlet,
            "reach_days": trace.reach.days,
            "searched_from": trace.horizon.isoformat(),
            "now": trace.now.isoformat(),
            "queries": len(trace.query_log),
            "retries": trace.retries,
            "rate_limit": f"{limiter.limit} queries per {int(limiter.window_s)} s",
            "rate_limit_waits": limiter.waits,
            "rate_limit_waited_s": round(limiter.waited_s, 1),
            "unavailable": redactor.text(trace.unavailable or "") or None,
            "not_listed": "potentially exposed mail older than the reach is not listed" if options.potential else "",
        },
        "mailbox_metadata": {
            "allowed": options.allow_mailbox_metadata,
            "calls": graph.calls if graph else 0,
            "unavailable": redactor.text(graph.unavailable or "") if graph and graph.unavailable else None,
            "potential_listing": ("potentially exposed mail found through the mailbox is the mailbox as it is "
                                  "now: mail deleted (or moved away) since then is not listed"
                                  if graph is not None and options.potential else None),
            "hint": None if options.allow_mailbox_metadata or not notes else
            "--allow-mailbox-metadata reads what message trace lacks from the mailbox (Graph, metadata only)",
        },
        "redaction": redactor.describe(),
    }
