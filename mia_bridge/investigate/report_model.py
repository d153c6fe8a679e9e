"""Turns an investigation's results into the report model: verdict, findings, exposure, steps, gaps."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from mia_bridge.evidence import manifest
from mia_bridge.evidence.layout import SHAREABLE
from mia_bridge.investigate.record_views import UniqueRecords
from mia_bridge.investigate.steps import StepStatus
from mia_bridge.records import fields as af
from mia_bridge.report.html import (
    SEVERITIES,
    TIMELINE_BUCKETS,
    EvidenceFile,
    ReportFinding,
    ReportModel,
    ReportStep,
    ReportTable,
    TimelinePoint,
)

if TYPE_CHECKING:
    from mia_bridge.investigate.findings import FindingSet
    from mia_bridge.investigate.pipeline import InvestigateOptions, InvestigationResult

MAX_ROWS_PER_FINDING = 200
MAILBOX_COLUMNS = [
    "Mailbox",
    "Messages read by attacker",
    "Folders synced by attacker",
    "Throttled (24 h windows)",
    "MailItemsAccessed records",
    "Distinct IPs",
    "Attacker IPs seen",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _verdict(findings: FindingSet | None) -> tuple[str, str, list[str]]:
    if findings is None:
        return "no evidence", "The investigation did not get as far as the findings.", []
    attacker = findings.attacker_findings
    if not attacker:
        review = len(findings.findings)
        return (
            "no evidence",
            f"No activity was attributed to an attacker; {review} change(s) are listed for review.",
            [],
        )
    per_mailbox = Counter(m.mailbox for m in findings.exposed)
    times = [f.first_seen for f in attacker if f.first_seen]
    when = f" between {min(times):%Y-%m-%d %H:%M} and {max(times):%Y-%m-%d %H:%M} UTC" if times else ""
    ips = ", ".join(sorted(findings.context.ips)) or "unknown addresses"
    if per_mailbox or findings.synced_folders:
        read = "; ".join(f"{n} message(s) of {mb}" for mb, n in per_mailbox.most_common())
        synced = "; ".join(
            f"folders {', '.join(sorted(f))} of {mb} synced" for mb, f in sorted(findings.synced_folders.items()) if f
        )
        what = " and ".join(part for part in (read, synced) if part)
        headline = f"An attacker read mail: {what}, from {ips}{when}."
        level = "compromised"
    else:
        headline = f"Attacker activity found from {ips}{when}; no mail read in attacker context was recorded."
        level = "compromised" if any(f.severity == "critical" for f in attacker) else "suspicious"
    points = []
    if findings.context.users:
        points.append("Accounts used by the attacker: " + ", ".join(sorted(findings.context.users)))
    if findings.context.apps:
        points.append(
            "Applications used by the attacker: "
            + ", ".join(findings.app_label(a) for a in sorted(findings.context.apps))
        )
    ordered = sorted(
        attacker,
        key=lambda f: (
            SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 9,
            f.first_seen.isoformat() if f.first_seen else "~",
        ),
    )
    points.extend(f.title for f in ordered if f.category != "mail-access")
    return level, headline, points[:12]


def _mailbox_rows(result: InvestigationResult) -> list[dict[str, Any]]:
    findings = result.findings
    # read as it comes: a MailItemsAccessed search's records are streamed from its evidence file
    mail = (r for run in result.searches for r in run.records if str(r.get("Operation")) == "MailItemsAccessed")
    seen: set[str] = set()
    per_mailbox: dict[str, dict[str, Any]] = {}
    for record in mail:
        rid = af.record_id(record)
        if rid in seen:
            continue
        seen.add(rid)
        mailbox = af.mailbox_of(record)
        row = per_mailbox.setdefault(mailbox, {"records": 0, "ips": set()})
        row["records"] += 1
        if af.record_ip(record):
            row["ips"].add(af.record_ip(record))
    if findings is not None:
        for mailbox in {m.mailbox for m in findings.exposed} | set(findings.synced_folders) | set(findings.throttled):
            per_mailbox.setdefault(mailbox, {"records": 0, "ips": set()})
    rows = []
    for mailbox, data in sorted(per_mailbox.items()):
        read = sum(1 for m in findings.exposed if m.mailbox == mailbox) if findings else 0
        folders = sorted(findings.synced_folders.get(mailbox, set())) if findings else []
        throttled = len(findings.throttled.get(mailbox, [])) if findings else 0
        attacker_ips = sorted(data["ips"] & findings.context.ips) if findings else []
        rows.append(
            {
                "Mailbox": mailbox,
                "Messages read by attacker": read,
                "Folders synced by attacker": ", ".join(folders) or "—",
                "Throttled (24 h windows)": throttled,
                "MailItemsAccessed records": data["records"],
                "Distinct IPs": len(data["ips"]),
                "Attacker IPs seen": ", ".join(attacker_ips) or "—",
            }
        )
    rows.sort(key=lambda r: (-int(r["Messages read by attacker"]), r["Mailbox"]))
    return rows


def _export_completeness(result: InvestigationResult) -> tuple[list[tuple[str, str]], list[str]]:
    """Offline: what the exports held, what the searches matched, and what the exports cannot answer."""
    exports = result.exports
    ran = [s for s in result.searches if s.result is not None]
    files = ", ".join(f"{f.source} ({f.format or 'unreadable'}, {f.records_read} records)" for f in exports.files)
    span = (f"{exports.first:%Y-%m-%d %H:%M} to {exports.last:%Y-%m-%d %H:%M} UTC"
            if exports.first and exports.last else "no dated record")  # fmt: skip
    rows = [
        ("Source", "audit-log exports, without tenant access"),
        ("Exports", files),
        ("Records read / parsed / quarantined", f"{exports.read} / {exports.parsed} / {len(exports.quarantined)}"),
        ("Reconciles (read = parsed + quarantined)", "yes" if exports.read == exports.parsed +
         len(exports.quarantined) else "NO"),
        ("Duplicates (same Id) counted once / unique records", f"{exports.duplicates} / {exports.unique}"),
        ("Unique records a search can return", str(len(exports.records))),
        ("Period the exports cover", span),
        ("Searches run / skipped", f"{len(ran)} / {sum(1 for s in result.searches if s.skipped)}"),
        ("Records matched by the searches (one record may match several)", str(sum(len(s.records) for s in ran))),
    ]  # fmt: skip
    summary = result.analysis_summary
    if summary:
        rows.append(("Analysis: records read / parsed / quarantined",
                     f"{summary.get('records_read')} / {summary.get('records_parsed')} / "
                     f"{summary.get('records_quarantined')}"))  # fmt: skip
    gaps = [f"What the exports cannot answer: {limit}" for limit in result.limits]
    gaps += [f"Export {f.source}: {f.error}" for f in exports.files if f.error]
    if exports.quarantined:
        gaps.append(f"{len(exports.quarantined)} record(s) could not be read and were quarantined (file, line and "
                    "reason in analysis/quarantine.jsonl): "
                    + "; ".join(q.message() for q in exports.quarantined[:5]))  # fmt: skip
    gaps += [f"Search {s.spec.name} skipped: {s.skipped}" for s in result.searches if s.skipped]
    return rows, gaps


def _completeness(result: InvestigationResult) -> tuple[list[tuple[str, str]], list[str]]:
    if result.exports is not None:
        return _export_completeness(result)
    ran = [s for s in result.searches if s.result is not None]
    skipped = [s for s in result.searches if s.skipped]
    failed = [s for s in result.searches if s.error]
    retrieved = sum(s.result.counts.retrieved for s in ran if s.result)
    unique = sum(s.result.counts.unique for s in ran if s.result)
    dups = sum(s.result.counts.duplicates_removed for s in ran if s.result)
    unparseable = sum(s.result.counts.unparseable for s in ran if s.result)
    calls = sum(s.result.calls for s in ran if s.result)
    rows = [
        ("Searches run / skipped / failed", f"{len(ran)} / {len(skipped)} / {len(failed)}"),
        ("Records retrieved", str(retrieved)),
        ("Unique records kept (evidence)", str(unique)),
        ("Duplicates removed", str(dups)),
        ("Reconciles (retrieved = unique + duplicates removed)", "yes" if retrieved == unique + dups else "NO"),
        ("Unparseable AuditData kept aside", str(unparseable)),
        ("Search-UnifiedAuditLog calls", str(calls)),
    ]
    summary = result.analysis_summary
    if summary:
        rows.append(
            (
                "Analysis: records read / parsed / quarantined",
                f"{summary.get('records_read')} / {summary.get('records_parsed')} / "
                f"{summary.get('records_quarantined')}",
            )
        )
    gaps: list[str] = []
    for s in failed:
        gaps.append(f"Search {s.spec.name} failed: {s.error}")
    for s in skipped:
        gaps.append(f"Search {s.spec.name} skipped: {s.skipped}")
    for s in ran:
        assert s.result is not None
        for gap in s.result.gaps:
            gaps.append(
                f"Search {s.spec.name}: window {gap.start:%Y-%m-%d %H:%M:%S}–{gap.end:%H:%M:%S} UTC still returned "
                f"{gap.received} records at the cap of {gap.cap}: records beyond these may be missing"
            )
    if result.license is not None:
        gaps.extend(result.license.warnings)
    if result.ingestion is not None and result.ingestion.enabled_by_us_at is not None:
        gaps.append("Audit ingestion was off until this run enabled it: activity from before was never recorded.")
    exports = result.sparrow
    if exports is not None:
        gaps.extend(f"Sparrow file sparrow/{name} not written: {why}" for name, why in exports.failed.items())
    return rows, gaps


def _evidence(result: InvestigationResult) -> list[EvidenceFile]:
    try:
        data = manifest.load_manifest(result.case_dir)
    except Exception:  # the report still renders; the gap shows as "no evidence files"
        return []
    return [
        EvidenceFile(rel, str(e.get("sha256", "")), int(e.get("bytes", 0))) for rel, e in sorted(data["files"].items())
    ]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    try:
        if value != value:  # NaN / NaT
            return ""
    except (TypeError, ValueError):
        pass
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _frame_table(title: str, note: str, head: Any, total: int, columns: list[str], limit: int) -> ReportTable:
    """A report table of ``head`` (a table's first rows, at least ``limit`` of them when it has them)."""
    rows = [{c: _cell(row.get(c)) for c in columns} for row in head.head(limit).to_dict("records")]
    if total > limit:
        note += f" Showing {limit} of {total}; the full table is in analysis/."
    return ReportTable(title, note, columns, rows)


def _analysis_tables(result: InvestigationResult) -> list[ReportTable]:
    analysis = result.analysis
    if analysis is None:
        return []
    tables = []
    lookup = analysis.message_lookup
    if lookup is not None:
        columns = ["internet_message_id", "status", "accesses", "first_access", "mailboxes", "client_ips",
                   "exposure_reasons"]  # fmt: skip
        tables.append(_frame_table("Message-id lookups (--message-ids)", "Each listed message: read (bind), possibly "
                                   "exposed (folder synced or mailbox throttled), or not seen.", lookup, len(lookup),
                                   [c for c in columns if c in lookup.columns], 500))  # fmt: skip
    total = analysis.rows("leads")  # millions on a tenant-wide pull: only the first rows are read
    if total:
        leads = analysis.head("leads", 10)
        columns = ["rank", "score", "mailbox", "client_ip", "app_id", "events", "reasons"]
        note = ("Access contexts ranked by suspicion, with the reasons that scored them (heuristics, not verdicts). "
                "The IPs and apps attributed to the attacker are scored as if given with --suspicious-ip / "
                "--app-id.")  # fmt: skip
        tables.append(_frame_table("MailItemsAccessed leads", note, leads, total,
                                   [c for c in columns if c in leads.columns], 10))  # fmt: skip
    return tables


def _sharing(redaction: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """What the package redacts (one line for the top of the report) and which files may be shared."""
    subjects, addresses = bool(redaction.get("redact_subjects")), bool(redaction.get("hash_addresses"))
    raw = ", ".join(f"{d}" for d in redaction.get("raw_evidence_not_redacted", []))
    evidence = (raw, "Raw evidence, kept exactly as received (audit records, the tenant's directory output, the "
                "message-trace and mailbox answers): it names every party and subject. Never share it.")
    custody = (", ".join(redaction.get("chain_of_custody_not_redacted", [])),
               "Chain of custody: the evidence index (file hashes, the queries as sent) and the collector's resume "
               "journal. Not redacted (with --user they name those mailboxes; a resume compares them): do not share. "
               "The evidence hashes below let a recipient check the shared files.")
    if not (subjects or addresses):
        line = ("Not redacted: this report and every file of the case name the senders, recipients and subjects "
                "as found. To share with a third party, rerun with --redact-subjects and --hash-addresses.")
        return line, [("every file", "Not redacted: for the responders only."), custody, evidence]
    done = []
    if subjects:
        done.append("the subjects of exposed messages are replaced with [redacted]")
    if addresses:
        done.append(f"every e-mail address is replaced with addr-<16 hex> and every external party domain with "
                    f"domain-<16 hex> ({redaction.get('hash')}, key: {redaction.get('hash_key')}; the same "
                    "address has the same pseudonym in every file of this run)")
    line = "Redacted for sharing: " + "; ".join(done) + "."
    if not subjects:
        line += " Subjects are NOT redacted."
    if not addresses:
        line += " Addresses are NOT hashed."
    shared = (", ".join(SHAREABLE), "Redacted as stated above: these may be shared.")
    return line, [shared, custody, evidence]


def build_report_model(result: InvestigationResult, options: InvestigateOptions, now: datetime) -> ReportModel:
    findings = result.findings
    level, headline, points = _verdict(findings)
    exports = result.exports
    if exports is not None and not any(op.lower() == "mailitemsaccessed" for op in exports.operations):
        headline = headline.replace("no mail read in attacker context was recorded",
                                    "whether mail was read cannot be told: the exports hold no MailItemsAccessed "
                                    "records")  # fmt: skip
    if result.limits:  # offline: what the exports cannot tell comes with the verdict, not only in the gaps
        headline += " The exports cannot answer everything: see the limits below."
        points = [*(f"Cannot be told from the exports: {limit}" for limit in result.limits), *points]
    report_findings = []
    timeline: list[TimelinePoint] = []
    markers = [f.first_seen for f in (findings.findings if findings else []) if f.first_seen]
    timeline += record_points(UniqueRecords([run.records for run in result.searches]), markers)
    if findings is not None:
        for f in findings.findings:
            rows = f.rows[:MAX_ROWS_PER_FINDING]
            summary = f.summary
            if len(f.rows) > MAX_ROWS_PER_FINDING:
                summary += f" Showing {MAX_ROWS_PER_FINDING} of {len(f.rows)} evidence rows; all are in findings.json."
            title = f.title if f.attacker or "(for review)" in f.title else f"{f.title} (for review)"
            report_findings.append(ReportFinding(f.severity, title, summary, f.columns, rows, f.category))
            if f.first_seen:
                timeline.append(TimelinePoint(f.first_seen, f.title, f.severity if f.attacker else "info"))
    exposed = [
        {
            "InternetMessageId": m.internet_message_id,
            "Mailbox": m.mailbox,
            "Folder": m.folder,
            "First read (UTC)": m.first_read.strftime("%Y-%m-%d %H:%M:%S") if m.first_read else "",
            "Client IP": m.client_ip,
            "App": f"{m.app_name} ({m.app_id})" if m.app_name else m.app_id,
        }
        for m in (findings.exposed if findings else [])
    ]
    completeness, gaps = _completeness(result)
    redaction_line, sharing = _sharing(result.redaction)
    notes: list[str] = []
    if findings is not None and findings.context.reasons:
        notes.extend(f"Attacker indicator {k}: {v}" for k, v in sorted(findings.context.reasons.items()))
    if result.exports is not None:
        notes.append(
            "Investigated from audit-log exports, without tenant access: the searches, findings, attribution and "
            "analysis read only what the exports hold. Tenant access would add: the tenant's domains, federation "
            "and MFA settings (Get-MgDomain) and applications (Get-MgServicePrincipal, Graph permissions), here "
            "inferred from the records; the licence and audit-ingestion state; records outside the exports' period "
            "or workloads; and, with `mia enrich CASE`, the senders, recipients and subjects of the mail read."
        )
    notes.append(
        "sparrow/ holds exactly what CISA's Sparrow.ps1 writes (for tools and playbooks that read it), and so is "
        "deliberately lossy: nested JSON cut at depth 2, every non-ASCII character written as ?, only Sparrow's "
        "columns. The full records are in evidence/ (raw AuditData, hashed), the MailItemsAccessed analysis in "
        "analysis/, the attributed findings in findings.json."
    )
    if result.sparrow is not None and result.sparrow.formula_total:
        files = ", ".join(f"sparrow/{name}" for name in sorted(result.sparrow.formula_cells))
        notes.append(
            f"{result.sparrow.formula_total} cell(s) of the Sparrow CSVs start with = + - @ or a tab/CR ({files}); "
            "they are kept exact, so a spreadsheet opening those CSVs could run them as formulas. Open "
            "sparrow/Summary_Export.xlsx instead: there every cell is a value, never a formula."
        )
    notes.append(
        "Attribution pivots from self-evident attacker actions (forwarding outside the organisation, "
        "federation changes, SAML anomalies) and --suspicious-ip/--app-id to the IPs and apps involved; "
        "items marked 'for review' were not attributed."
    )
    return ReportModel(
        tenant=options.tenant,
        generated_at=now,
        period_start=options.start,
        period_end=options.end,
        verdict_level=level,
        verdict_headline=headline,
        verdict_points=points,
        findings=report_findings,
        timeline=timeline,
        mailbox_columns=list(MAILBOX_COLUMNS),
        mailboxes=_mailbox_rows(result),
        exposed_message_ids=exposed,
        tables=_analysis_tables(result),
        steps=[
            ReportStep(o.name, o.status.value, o.reason)
            for o in result.steps
            if o.status in (StepStatus.DONE, StepStatus.SKIPPED, StepStatus.FAILED)
        ],
        completeness=completeness,
        gaps=gaps,
        evidence=_evidence(result),
        manifest_sha256=manifest.manifest_sha256(result.case_dir) or "",
        notes=notes,
        redaction=redaction_line,
        sharing=sharing,
    )


def record_points(records: Iterable[Mapping[str, Any]], markers: Sequence[datetime]) -> list[TimelinePoint]:
    """The records' bars of the report's timeline chart as one point per bar, weighted by its records (the
    chart counts them as it counted one point a record). One pass over ``records`` (read from the evidence
    files again, never held) keeps each record's time as 8 bytes (microseconds); the bars are counted from
    those once the span is known (with the findings' ``markers``), with the same arithmetic as
    ``(when - start).total_seconds() / span * TIMELINE_BUCKETS``. Two weightless points keep the first and the
    last record's time, where the chart's axis starts and ends."""
    micros = array("q")
    for record in records:
        when = af.record_time(record)  # aware UTC
        if when is not None:
            micros.append((when - _EPOCH) // _MICROSECOND)
    if not micros:
        return []
    first, last = (_EPOCH + _MICROSECOND * value for value in (min(micros), max(micros)))
    start, end = min([first, *markers]), max([last, *markers])  # markers may be empty: no finding has a time
    span = max((end - start).total_seconds(), 60.0)  # as build_timeline_chart
    # int microseconds -> float64 is exact below 2**53 (285 years), and each operation rounds as Python's does
    seconds = (np.frombuffer(micros, dtype=np.int64) - (start - _EPOCH) // _MICROSECOND) / 1e6
    bars = np.minimum((seconds / span * TIMELINE_BUCKETS).astype(np.int64), TIMELINE_BUCKETS - 1)
    counts = np.bincount(bars, minlength=TIMELINE_BUCKETS).tolist()
    points = [TimelinePoint(first, "", count=0), TimelinePoint(last, "", count=0)]
    points += [TimelinePoint(start + timedelta(seconds=span * (index + 0.5) / TIMELINE_BUCKETS), "", count=count)
               for index, count in enumerate(counts) if count]  # the middle of its bar: counted in it
    return points
