"""The whole ``mia investigate`` run: pre-flight → directory → licence → searches → exports →
MailItemsAccessed analysis → findings → timeline → report, each step with its outcome.

Data flows bridge → collect (raw evidence written and hashed first) → analysis → exports/report.
A failing search is recorded and the others go on; Ctrl-C propagates (the collector's journal makes
a rerun of the same command resume). Every file written is registered in the case manifest, so
``mia verify`` checks the whole package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from mia_bridge.bridge.backend import ExoBackend, Secret
from mia_bridge.collect.engine import CollectOptions, Progress
from mia_bridge.csv_safety import write_rows
from mia_bridge.enrich.api import EnrichOptions
from mia_bridge.enrich.outputs import Redactor, write_json
from mia_bridge.enrich.redaction import CHAIN_OF_CUSTODY, RAW_EVIDENCE, Scrubber
from mia_bridge.errors import ExitCode, MiaError, UsageError
from mia_bridge.evidence import manifest
from mia_bridge.exports.timeline import write_timeline
from mia_bridge.investigate import audit_fields as af
from mia_bridge.investigate.directory import DirectoryData, collect_directory, save_raw
from mia_bridge.investigate.enrich_report import enrich_report_tables
from mia_bridge.investigate.enrich_step import run_enrich_step
from mia_bridge.investigate.findings import FindingInputs, FindingSet, build_findings
from mia_bridge.investigate.license import (
    LicenseDecision,
    LicenseFacts,
    LicensePolicy,
    decide,
    detect_license,
    retention_days,
)
from mia_bridge.investigate.preflight import IngestionState, ensure_ingestion
from mia_bridge.investigate.report_model import build_report_model
from mia_bridge.investigate.searches import SearchRun, all_records, plan_searches, run_searches, write_sparrow_exports
from mia_bridge.investigate.steps import StepLog, StepOutcome
from mia_bridge.report.html import write_report
from mia_bridge.safe_files import make_dir

SPARROW_DIR = "sparrow"
ANALYSIS_DIR = "analysis"
REPORT_NAME = "report.html"
TIMELINE_NAME = "timeline.csv"
FINDINGS_NAME = "findings.json"
EXPOSED_NAME = "exposed_messages.csv"
INVESTIGATION_NAME = "investigation.json"


@dataclass
class InvestigateOptions:
    """Everything the command line decides."""

    tenant: str
    out_dir: Path
    start: datetime | None  # None: as far back as the licence's retention reaches
    end: datetime
    users: tuple[str, ...] = ()
    app_id: str | None = None
    all_apps: bool = False
    enable_ingestion: bool = False
    assume_yes: bool = False
    license_policy: LicensePolicy = LicensePolicy.DETECT
    delimiter: str = ","  # Sparrow's -Delimiter for sparrow/ (Export-Csv takes one character)
    end_is_now: bool = False  # the end was not given: the default period is measured from that same instant
    message_ids: list[str] | None = None
    suspicious_ips: tuple[str, ...] = ()
    known_good_ips: tuple[str, ...] = ()
    collect_options: CollectOptions = field(default_factory=CollectOptions)
    # affected parties (the enrichment step) and sharing the package with third parties
    allow_mailbox_metadata: bool = False
    redact_subjects: bool = False
    hash_addresses: bool = False
    hash_key: Secret | None = None  # default: MIA_HASH_KEY, else a random key for this run (never recorded)
    enrich_options: EnrichOptions | None = None  # tests: clocks and limits; the flags above still apply
    # --from-exports: investigate these files instead of the tenant (investigate/offline_run.py)
    exports: tuple[Path, ...] = ()
    tenant_domains: tuple[str, ...] = ()  # the organisation's domains (--tenant-domain); else inferred

    def describe(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat(),
            "users": list(self.users),
            "app_id": self.app_id,
            "all_apps": self.all_apps,
            "enable_ingestion": self.enable_ingestion,
            "license_policy": self.license_policy.value,
            "delimiter": self.delimiter,
            "message_ids": len(self.message_ids or []),
            "suspicious_ips": list(self.suspicious_ips),
            "known_good_ips": list(self.known_good_ips),
            "allow_mailbox_metadata": self.allow_mailbox_metadata,
            "redact_subjects": self.redact_subjects,
            "hash_addresses": self.hash_addresses,
            **({"from_exports": [str(p) for p in self.exports], "tenant_domains": list(self.tenant_domains)}
               if self.exports else {}),
        }


class InvestigationUI(Protocol):
    """What the pipeline needs from the console (the CLI implements it; tests use a plain object)."""

    progress: Progress | None

    def confirm(self, question: str) -> bool: ...

    def outcome(self, outcome: StepOutcome) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class InvestigationResult:
    case_dir: Path
    steps: StepLog
    report_path: Path | None = None
    findings: FindingSet | None = None
    searches: list[SearchRun] = field(default_factory=list)
    ingestion: IngestionState | None = None
    license: LicenseDecision | None = None
    analysis_summary: dict[str, Any] = field(default_factory=dict)
    analysis: Any = None  # mia_bridge.analysis.api.AnalysisResult when the analysis ran
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, str] = field(default_factory=dict)  # level and headline, as the report states them
    redaction: dict[str, Any] = field(default_factory=dict)  # the settings (never the key) and which files
    enrichment: Any = None  # mia_bridge.enrich.api.EnrichResult when the affected-parties step ran
    sparrow: Any = None  # mia_bridge.investigate.searches.SparrowExports when the Sparrow step ran
    exports: Any = None  # mia_bridge.investigate.offline.ExportSet when investigated from exports
    limits: list[str] = field(default_factory=list)  # what the exports cannot answer (never "nothing found")

    @property
    def exit_code(self) -> int:
        ran = [s for s in self.searches if not s.skipped]
        if ran and all(s.error for s in ran):
            return int(ExitCode.FAILURE)
        if self.steps.failures or self.steps.needs_attention:
            return int(ExitCode.ATTENTION)
        return int(ExitCode.OK)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _write_exposed(path: Path, findings: FindingSet, redactor: Redactor) -> Path:
    header = ["mailbox", "internet_message_id", "folder", "first_read", "client_ip", "app_id", "app_name", "record_id"]
    write_rows(path, header, ([redactor.address(m.mailbox), m.internet_message_id, m.folder,
                               m.first_read.isoformat() if m.first_read else "", m.client_ip, m.app_id, m.app_name,
                               m.record_id] for m in findings.exposed))
    return path


def begin_case(
    options: InvestigateOptions, ui: InvestigationUI
) -> tuple[Path, StepLog, InvestigationResult, Redactor, Scrubber]:
    """The case folder, the step log, the result and the run's one redactor; the settings are written first."""
    # absolute: the collector's manifest joins relative evidence paths onto the case folder again
    options.out_dir = case_dir = options.out_dir.resolve()
    make_dir(case_dir)  # 0700: the case holds mail subjects and addresses
    steps = StepLog(ui.outcome)
    result = InvestigationResult(case_dir, steps)
    # one redactor (one hash key) for every file of the run, so pseudonyms join across files
    redactor = Redactor(redact_subjects=options.redact_subjects, hash_addresses=options.hash_addresses,
                        key=options.hash_key)
    scrub = Scrubber(redactor)
    result.redaction = redaction_record(redactor)
    write_json(case_dir / "investigation.settings.json", scrub.value(options.describe()))
    return case_dir, steps, result, redactor, scrub


def run_investigation(
    backend: ExoBackend, options: InvestigateOptions, ui: InvestigationUI, *, now: Callable[[], datetime] = _now
) -> InvestigationResult:
    """Run every step against an open backend; returns outcomes, findings and the files written."""
    if (options.out_dir / manifest.MANIFEST_NAME).exists() and "exports" in manifest.load_manifest(options.out_dir):
        raise UsageError(f"{options.out_dir} holds a case investigated from exports: the tenant's records need a "
                         "case of their own", hint="give a new --out folder")  # fmt: skip
    case_dir, steps, result, redactor, scrub = begin_case(options, ui)

    # 1. pre-flight: ingestion (raises IngestionDisabledError: a clear stop)
    state = ensure_ingestion(
        backend, enable=options.enable_ingestion, confirm=lambda q: options.assume_yes or ui.confirm(q), now=now
    )
    result.ingestion = state
    _keep_raw(case_dir, result, [save_raw(case_dir, "admin_audit_log_config", state.raw or {})])
    if state.enabled_by_us_at is not None:
        steps.done(
            "Pre-flight: audit ingestion",
            f"was OFF; enabled at {state.enabled_by_us_at:%Y-%m-%d %H:%M} UTC"
            + (" (after Enable-OrganizationCustomization: the tenant was dehydrated)"
               if state.customization_enabled_by_us else "")
            + f"; {state.readback}. It takes up to 60 minutes and "
            "records only from then on: searches below cannot see activity from before",
            attention=True,
        )
    elif state.enabled_before is None:
        steps.done("Pre-flight: audit ingestion", "could not read UnifiedAuditLogIngestionEnabled", attention=True)
    else:
        steps.done("Pre-flight: audit ingestion", "unified audit log ingestion is on")

    # 2. directory
    directory = collect_directory(backend, case_dir)
    _keep_raw(case_dir, result, directory.files)
    if directory.errors:
        steps.done(
            "Directory: domains, service principals, Graph permissions",
            "partly: " + "; ".join(f"{k}: {v}" for k, v in directory.errors.items()),
            attention=True,
        )
    else:
        steps.done(
            "Directory: domains, service principals, Graph permissions",
            f"{len(directory.domains)} domains, {len(directory.service_principals)} service principals, "
            f"{len(directory.graph_permissions)} Graph permissions; SAML check (federated IdP MFA not accepted): "
            + (", ".join(directory.flagged_domains) or "no domain flagged"),
        )

    # 3. licence
    facts: LicenseFacts = detect_license(backend, options.users)
    _keep_raw(case_dir, result, [save_raw(case_dir, "license", facts.to_dict())])
    # The retention check measures from "now"; a default period is measured from its own end, which is
    # that same instant (taking a later now() would put the default start seconds "before the retention").
    instant = now()
    if options.start is None:
        if options.end_is_now:
            instant = options.end
        options.start = options.end - timedelta(days=retention_days(options.license_policy, facts))
        ui.note(f"period: {options.start:%Y-%m-%d %H:%M} to {options.end:%Y-%m-%d %H:%M} UTC (the licence's retention)")
    result.files.append(write_json(case_dir / "investigation.settings.json", scrub.value(options.describe())))
    decision = decide(options.license_policy, facts, start=options.start, now=instant)
    result.license = decision
    licence_text = f"policy {decision.policy.value}: Audit {'Premium' if decision.premium else 'Standard'}"
    if facts.premium_skus:
        licence_text += f" ({', '.join(facts.premium_skus)})"
    steps.done("Licence", licence_text, attention=bool(decision.warnings))
    for warning in decision.warnings:
        ui.note(f"warning: {warning}")

    # 4. searches
    runs = plan_searches(users=options.users, app_id=options.app_id, all_apps=options.all_apps, directory=directory,
                         decision=decision, steps=steps)  # fmt: skip
    result.searches = runs
    run_searches(backend, runs, start=options.start, end=options.end, case_dir=case_dir,
                 collect_options=options.collect_options, progress=ui.progress, steps=steps)  # fmt: skip
    for user in options.users:  # beyond Sparrow, best effort: the cmdlet is announced for retirement
        _mailbox_audit_step(backend, user, options.start, options.end, case_dir, steps)

    records = all_records(runs)
    domains = set(directory.domain_names) | {options.tenant.lower()}
    domains |= {u.rsplit("@", 1)[1].lower() for u in options.users if "@" in u}

    def analyse(analysis_options: Any) -> Any:
        from mia_bridge.analysis.api import analyze_records

        mail_records = [r for r in records if str(r.get("Operation")) == "MailItemsAccessed"]
        return analyze_records(mail_records, analysis_options, source="collected MailItemsAccessed records")

    record = {"license": decision.to_dict(), "license_facts": facts.to_dict(), "ingestion": state.to_dict()}
    shared = SharedSteps(options=options, ui=ui, steps=steps, result=result, redactor=redactor, scrub=scrub,
                         runs=runs, records=records, domains=domains, directory=directory,
                         flagged_saml_domains=set(directory.flagged_domains), analyse=analyse,
                         backend=backend, record=record,
                         manifest_record={"license": decision.to_dict(), "ingestion": state.to_dict()})  # fmt: skip
    return complete_investigation(shared, now=now)


@dataclass
class SharedSteps:
    """What the steps after the records (findings onwards) need, whichever source gave the records."""

    options: InvestigateOptions
    ui: InvestigationUI
    steps: StepLog
    result: InvestigationResult
    redactor: Redactor
    scrub: Scrubber
    runs: list[SearchRun]
    records: list[dict[str, Any]]
    domains: set[str]  # the organisation's own domains
    directory: DirectoryData  # service principals (app names and ids) and, for Sparrow's files, the domains
    flagged_saml_domains: set[str]
    analyse: Callable[[Any], Any]  # AnalysisOptions -> AnalysisResult (the MailItemsAccessed analysis)
    backend: ExoBackend | None  # None: no tenant access (the affected-parties step is skipped, with the reason)
    record: dict[str, Any] = field(default_factory=dict)  # source-specific sections of investigation.json
    manifest_record: dict[str, Any] = field(default_factory=dict)  # and of the manifest's investigation section
    sparrow_directory: DirectoryData | None = None  # default: ``directory``
    no_backend_reason: str = ""
    analysis_cannot_answer: str = ""  # why the MailItemsAccessed analysis cannot answer (no such records)


def complete_investigation(shared: SharedSteps, *, now: Callable[[], datetime] = _now) -> InvestigationResult:
    """Findings and attribution, the MailItemsAccessed analysis, affected parties, Sparrow's files, the
    timeline and the report, over the records of either source."""
    options, steps, result, scrub, redactor = shared.options, shared.steps, shared.result, shared.scrub, shared.redactor
    case_dir, runs, records, directory = result.case_dir, shared.runs, shared.records, shared.directory

    # 5. findings (attribution first: the analysis is told the attacker's IPs and apps)
    findings = build_findings(
        FindingInputs(
            records=records,
            tenant_domains=shared.domains,
            service_principals=directory.service_principals,
            flagged_saml_domains=shared.flagged_saml_domains,
            suspicious_ips=options.suspicious_ips,
            suspicious_apps=[options.app_id] if options.app_id else [],
            known_good_ips=options.known_good_ips,
        )
    )
    result.findings = findings
    findings_doc = {
        "attacker_context": {
            "ips": sorted(findings.context.ips),
            "apps": sorted(findings.context.apps),
            "users": sorted(findings.context.users),
            "reasons": findings.context.reasons,
        },
        "findings": [f.to_dict() for f in findings.findings],
    }
    result.files.append(write_json(case_dir / FINDINGS_NAME, scrub.value(findings_doc)))
    result.files.append(_write_exposed(case_dir / EXPOSED_NAME, findings, redactor))
    attacker = findings.attacker_findings
    steps.done(
        "Findings",
        f"{len(attacker)} attacker finding(s), {len(findings.findings) - len(attacker)} for review; "
        f"{len(findings.exposed)} message(s) read by the attacker",
    )

    # 6. MailItemsAccessed analysis
    result.analysis_summary = _analyse(case_dir, shared.analyse, options, findings, steps, result,
                                      shared.analysis_cannot_answer)
    # 6b. who and what was exposed: message trace (a skip with the reason without the permission)
    enriched = None
    if attacker and shared.backend is not None:
        enrich_options = replace(options.enrich_options or EnrichOptions(),
                                 allow_mailbox_metadata=options.allow_mailbox_metadata,
                                 redact_subjects=options.redact_subjects, hash_addresses=options.hash_addresses,
                                 redactor=redactor)
        enriched = run_enrich_step(shared.backend, case_dir, steps, enrich_options)
        result.enrichment = enriched
    elif attacker:
        steps.skipped("Affected parties (message trace)", shared.no_backend_reason, attention=False)
    else:  # without an attacker context the scope would be every mailbox's mail, at 100 queries / 5 min
        steps.skipped("Affected parties (message trace)", "no message was attributed to an attacker; "
                      "`mia enrich CASE` lists the parties of every accessed message", attention=False)
    if enriched is not None:  # now the exposed subjects are known: redact them wherever they occur
        scrub.add_subjects(m.meta.subject for m in enriched.messages if m.meta)
    if scrub.active:
        # The analysis tables stayed clear until the enrichment had read the mailboxes from them.
        for path in [case_dir / FINDINGS_NAME, *(p for p in result.files if p.parent == case_dir / ANALYSIS_DIR)]:
            scrub.rewrite(path)
    export_runs, export_records = _shareable_records(runs, records, scrub)

    # 7. exports
    _sparrow_step(case_dir, export_runs, shared.sparrow_directory or directory, options.delimiter, result, steps,
                  flagged=sorted(shared.flagged_saml_domains))
    searches_by_id: dict[str, list[str]] = {}
    for run in runs:
        for rec in run.records:
            searches_by_id.setdefault(af.record_id(rec), []).append(run.spec.name)
    findings_by_id: dict[str, list[str]] = {}
    for finding in findings.findings:
        for rid in finding.record_ids:
            findings_by_id.setdefault(rid, []).append(scrub.text(finding.title) if scrub.active else finding.title)
    stats = write_timeline(
        case_dir / TIMELINE_NAME, export_records, searches_by_id=searches_by_id, findings_by_id=findings_by_id
    )
    result.files.append(case_dir / TIMELINE_NAME)
    steps.done(
        "Timeline",
        f"{stats.rows} rows (Timesketch CSV)" + (f", {stats.undated} undated" if stats.undated else ""),
        attention=bool(stats.undated),
    )

    # 8. report, then the investigation record; everything into the manifest
    raw = {p for p in result.files if p.parent.name == "directory"}
    manifest.add_files(case_dir, [p for p in result.files if p.exists() and p not in raw], kind="investigation")
    result.summary = scrub.value(summarise(result, options))
    model = build_report_model(result, options, now())
    model.tables.extend(enrich_report_tables(enriched, redactor))  # the "Affected parties" section
    model = scrub.value(model)  # every text the report shows: verdict, findings' rows, steps, file names
    result.verdict = {"level": model.verdict_level, "headline": model.verdict_headline}
    result.report_path = write_report(model, case_dir / REPORT_NAME)
    steps.done("Report", str(result.report_path))
    result.summary = scrub.value(summarise(result, options))
    record_path = write_json(
        case_dir / INVESTIGATION_NAME,
        scrub.value({
            "options": options.describe(),
            "summary": result.summary,
            "steps": steps.to_list(),
            **shared.record,
            "redaction": result.redaction,
        }),
    )
    result.files.extend([result.report_path, record_path])
    manifest.add_files(case_dir, [result.report_path, record_path], kind="report")
    # the manifest itself says what ran, what was skipped and why (the files above carry the details)
    for key, value in (
        ("options", options.describe()),
        ("steps", steps.to_list()),
        *shared.manifest_record.items(),
        ("verdict", result.verdict),
        ("exit_code", result.exit_code),
        ("redaction", result.redaction),
    ):
        manifest.update_section(case_dir, "investigation", key, scrub.value(value))
    return result


def _sparrow_step(
    case_dir: Path, runs: list[SearchRun], directory: Any, delimiter: str, result: InvestigationResult, steps: StepLog,
    *, flagged: list[str] | None = None,
) -> None:
    """sparrow/: Sparrow's exact (lossy) files; a file that fails is a gap, the others are kept."""
    exports = write_sparrow_exports(case_dir / SPARROW_DIR, runs, directory, delimiter, flagged=flagged)
    result.files.extend(exports.written)
    result.sparrow = exports
    detail = (f"{len(exports.written)} file(s) in {SPARROW_DIR}/, byte for byte as Sparrow.ps1 writes them "
              "(deliberately lossy: JSON cut at depth 2, non-ASCII as ?; the full records are in evidence/, "
              "the analysis in analysis/)")
    if exports.failed:
        steps.failed("Sparrow exports", detail + "; NOT written: "
                     + "; ".join(f"{name}: {why}" for name, why in exports.failed.items()))
    else:
        steps.done("Sparrow exports", detail)
    if exports.unreadable:
        files = ", ".join(f"{name} ({n})" for name, n in sorted(exports.unreadable.items()))
        steps.done(
            "Sparrow exports: records Sparrow cannot read",
            f"{sum(exports.unreadable.values())} record(s) have AuditData that Windows PowerShell 5.1's "
            f"ConvertFrom-Json rejects (names equal but for case, or empty), so, as in Sparrow, they are not in "
            f"{files}; they are in evidence/ and in every other output",
            attention=True,
        )
    if exports.formula_total:
        files = ", ".join(f"{name} ({n})" for name, n in sorted(exports.formula_cells.items()))
        steps.done(
            "Sparrow exports: formula-like cells",
            f"{exports.formula_total} cell(s) start with = + - @ or a tab/CR in {files}. The CSVs are kept exact "
            f"(not neutralised), so do not open them in a spreadsheet: open {SPARROW_DIR}/Summary_Export.xlsx, "
            "where every such cell is text",
            attention=True,
        )


def _sparrow_summary(result: InvestigationResult) -> dict[str, Any] | None:
    exports = result.sparrow
    if exports is None:
        return None
    return {
        "files": len(exports.written),
        "rows": dict(exports.rows),
        "not_written": dict(exports.failed),
        "formula_like_cells": dict(exports.formula_cells),
        "records_sparrow_cannot_read": dict(exports.unreadable),
    }


def redaction_record(redactor: Redactor) -> dict[str, Any]:
    """The run's redaction settings (never the key) and which files they cover, for the manifest and report."""
    record = redactor.describe()
    active = redactor.redact_subjects or redactor.hash_addresses
    record["raw_evidence_not_redacted"] = list(RAW_EVIDENCE)
    record["chain_of_custody_not_redacted"] = list(CHAIN_OF_CUSTODY)
    record["redacted_files"] = (
        "every other file of the case: report.html, exposed_messages.csv, affected_parties.csv, findings.json, "
        "timeline.csv, investigation.json, investigation.settings.json, enrich/summary.json, "
        "enrich/message_trace_queries.jsonl, sparrow/, analysis/ (and the manifest's investigation section)"
        if active else "none: every file names the parties and subjects as found"
    )
    return record


def _shareable_records(
    runs: list[SearchRun], records: list[dict[str, Any]], scrub: Scrubber
) -> tuple[list[SearchRun], list[dict[str, Any]]]:
    """The records as the derived exports (Sparrow's files, the timeline) show them: scrubbed copies when
    redacting; the evidence files keep the records as received."""
    if not scrub.active:
        return runs, records
    cache: dict[int, dict[str, Any]] = {}

    def clean(record: dict[str, Any]) -> dict[str, Any]:
        key = id(record)
        if key not in cache:
            cache[key] = scrub.value(record)
        return cache[key]

    return [replace(run, records=[clean(r) for r in run.records]) for run in runs], [clean(r) for r in records]


def _keep_raw(case_dir: Path, result: InvestigationResult, paths: list[Path]) -> None:
    """Raw tenant output is hashed into the manifest as soon as it is written, before anything uses it."""
    manifest.add_files(case_dir, paths, kind="evidence-directory")
    result.files.extend(paths)


def _mailbox_audit_step(
    backend: ExoBackend, user: str, start: datetime, end: datetime, case_dir: Path, steps: StepLog
) -> None:
    """Search-MailboxAuditLog for one mailbox, kept as evidence (the collector registers it)."""
    from mia_bridge.collect.mailbox_audit import collect_mailbox_audit

    name = f"Mailbox audit log: {user}"
    status = collect_mailbox_audit(backend, user, start, end, case_dir)
    if status.get("status") == "retired":
        steps.skipped(name, str(status.get("detail", "")), attention=False)
    elif status.get("status") == "failed":
        steps.failed(name, str(status.get("detail", "")))
    else:
        gaps = len(status.get("gaps", []))
        detail = f"{status.get('records', 0)} MailItemsAccessed rows in {status.get('file')}"
        steps.done(name, detail + (f"; {gaps} period(s) still at the cap" if gaps else ""), attention=bool(gaps))


def _analyse(
    case_dir: Path,
    analyse: Callable[[Any], Any],
    options: InvestigateOptions,
    findings: FindingSet,
    steps: StepLog,
    result: InvestigationResult,
    cannot_answer: str = "",
) -> dict[str, Any]:
    from mia_bridge.analysis.api import AnalysisOptions, write_outputs

    analysis_options = AnalysisOptions(
        start=options.start,
        end=options.end,
        message_ids=options.message_ids,
        suspicious_ips=sorted(findings.context.ips),
        suspicious_apps=sorted(findings.context.apps),
        known_good_ips=list(options.known_good_ips),
    )
    try:
        analysis = analyse(analysis_options)
        written = write_outputs(analysis, case_dir / ANALYSIS_DIR)
    except MiaError as exc:
        steps.failed("MailItemsAccessed analysis", exc.message)
        return {}
    result.files.extend(written.values())
    summary = analysis.summary
    result.analysis = analysis
    # Microsoft's order: throttling first, then sync, then bind, then the message ids
    steps.done(
        "MailItemsAccessed analysis",
        (f"{cannot_answer}; " if cannot_answer else "")
        + f"{len(analysis.throttled_windows)} throttled 24 h window(s); {len(analysis.synced_folders)} folder syncs; "
        f"{len(analysis.items)} item accesses (bind) in {len(analysis.events)} events"
        + (f"; {len(analysis.message_lookup)} message id(s) looked up" if analysis.message_lookup is not None else ""),
        attention=bool(cannot_answer),
    )
    for user in options.users:
        steps.done(f"MailItemsAccessed for {user}", _mailbox_story(analysis, findings, user))
    return summary


def _mailbox_story(analysis: Any, findings: FindingSet, mailbox: str) -> str:
    """One mailbox in the guidance's order: throttled, synced, bound, and what of it was the attacker's."""

    def rows(frame: Any) -> Any:
        return frame[frame["mailbox"].astype(str).str.lower() == mailbox] if len(frame) else frame

    throttled = len(rows(analysis.throttled_windows))
    synced = sorted({str(p) for p in rows(analysis.synced_folders).get("folder_path", [])})
    bound = rows(analysis.items)
    ids = bound["internet_message_id"].nunique() if len(bound) else 0
    by_attacker = sum(1 for m in findings.exposed if m.mailbox == mailbox)
    attacker_synced = sorted(findings.synced_folders.get(mailbox, set()))
    text = f"throttled {throttled} time(s); synced folders: {', '.join(synced) or 'none'}; {ids} message(s) bound"
    text += f"; by the attacker: {by_attacker} message(s) read"
    if attacker_synced:
        text += f", folders synced {', '.join(attacker_synced)}"
    return text


def summarise(result: InvestigationResult, options: InvestigateOptions) -> dict[str, Any]:
    """The machine-readable summary (``--json``)."""
    findings = result.findings
    searches = []
    for run in result.searches:
        entry: dict[str, Any] = {"name": run.spec.name, "sparrow_row": run.spec.sparrow_row}
        if run.skipped:
            entry.update(status="skipped", reason=run.skipped)
        elif run.error:
            entry.update(status="failed", reason=run.error)
        elif run.result is not None:
            c = run.result.counts
            entry.update(
                status="done",
                records=c.unique,
                retrieved=c.retrieved,
                duplicates_removed=c.duplicates_removed,
                gaps=len(run.result.gaps),
            )
        searches.append(entry)
    return {
        "tenant": options.tenant,
        "source": "exports" if options.exports else "tenant",
        "limits": list(result.limits),
        "verdict": result.verdict,
        "case_dir": str(result.case_dir),
        "report": str(result.report_path) if result.report_path else None,
        "exit_code": result.exit_code,
        "period": {"start": options.start.isoformat() if options.start else None, "end": options.end.isoformat()},
        "steps": result.steps.to_list(),
        "searches": searches,
        "attacker": {
            "ips": sorted(findings.context.ips) if findings else [],
            "apps": sorted(findings.context.apps) if findings else [],
            "accounts": sorted(findings.context.users) if findings else [],
        },
        "findings": [
            {"severity": f.severity, "title": f.title, "attacker": f.attacker, "records": len(f.record_ids)}
            for f in (findings.findings if findings else [])
        ],
        "sparrow": _sparrow_summary(result),
        "exposed_message_ids": [m.internet_message_id for m in findings.exposed] if findings else [],
        "synced_folders": {k: sorted(v) for k, v in findings.synced_folders.items()} if findings else {},
    }
