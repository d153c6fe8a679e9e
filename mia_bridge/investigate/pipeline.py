"""The whole ``mia investigate`` run as a list of steps: pre-flight → directory → licence → searches →
mailbox audit → findings → MailItemsAccessed analysis → affected parties → Sparrow's files → timeline →
report → the investigation record.

Each ``Step`` says when it is skipped and why (``skip``), what it does (``run``) and what it records (its
outcomes in the step log, its files in ``result.files``). ``run_steps`` is the loop: a step that raises is
recorded as failed (the run's exit code says so) and the steps after it go on; when a step the later ones
need fails (``needed``), those are skipped with the reason, and the ``always`` steps (registering the files,
``investigation.json`` and the manifest's record) still run, so a failure never loses what earlier steps
recorded. The options are frozen: a step that settles a value (the licence's period) replaces
``ctx.options``.

Data flows bridge → collect (raw evidence written and hashed first) → analysis → exports/report. A failing
search is recorded and the others go on; Ctrl-C propagates (the collector's journal makes a rerun of the
same command resume). Every file written is registered in the case manifest, so ``mia verify`` checks the
whole package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from mia_bridge.bridge.backend import ExoBackend, Secret
from mia_bridge.collect.engine import CollectOptions, Progress
from mia_bridge.enrich.api import EnrichOptions
from mia_bridge.enrich.model import ACCESSED, ExposedMessage, normalise_id
from mia_bridge.enrich.outputs import write_exposed
from mia_bridge.errors import ExitCode, MiaError, UsageError
from mia_bridge.evidence.case import Case, write_json
from mia_bridge.evidence.layout import (
    ANALYSIS_DIR,
    EXPOSED_NAME,
    FINDINGS_NAME,
    INVESTIGATION_NAME,
    MANIFEST_NAME,
    REPORT_NAME,
    SETTINGS_NAME,
    SPARROW_DIR,
    TIMELINE_NAME,
    Label,
)
from mia_bridge.evidence.redaction import Redactor, Scrubber, redaction_record
from mia_bridge.exports.timeline import write_timeline
from mia_bridge.investigate.directory import DirectoryData, collect_directory, save_raw
from mia_bridge.investigate.enrich_report import enrich_report_tables
from mia_bridge.investigate.enrich_step import STEP_NAME as AFFECTED_PARTIES
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
from mia_bridge.investigate.record_views import MappedRecords, Records
from mia_bridge.investigate.report_model import build_report_model
from mia_bridge.investigate.searches import SearchRun, all_records, plan_searches, run_searches, write_sparrow_exports
from mia_bridge.investigate.steps import StepLog, StepOutcome
from mia_bridge.records import fields as af
from mia_bridge.report.html import write_report

log = logging.getLogger(__name__)

__all__ = [
    "ANALYSIS_DIR", "EXPOSED_NAME", "FINDINGS_NAME", "INVESTIGATION_NAME", "REPORT_NAME", "SHARED_STEPS",
    "SPARROW_DIR", "TENANT_STEPS", "TIMELINE_NAME", "InvestigateOptions", "InvestigationResult",
    "InvestigationUI", "RunContext", "Step", "begin_case", "complete_investigation", "redaction_record",
    "run_investigation", "run_steps", "summarise", "write_json",
]  # fmt: skip


@dataclass(frozen=True)
class InvestigateOptions:
    """Everything the command line decides (frozen: a step that settles a value makes a new one)."""

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
    options: InvestigateOptions | None = None  # as the run settled them (the period the licence gave)
    broken: list[str] = field(default_factory=list)  # steps that raised: the run did not complete

    @property
    def exit_code(self) -> int:
        if self.broken:
            return int(ExitCode.FAILURE)
        ran = [s for s in self.searches if not s.skipped]
        if ran and all(s.error for s in ran):
            return int(ExitCode.FAILURE)
        if self.steps.failures or self.steps.needs_attention:
            return int(ExitCode.ATTENTION)
        return int(ExitCode.OK)


def _now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class RunContext:
    """What the steps share: the run's settings and tools, then what each step found for the next ones."""

    options: InvestigateOptions
    case: Case
    ui: InvestigationUI
    steps: StepLog
    result: InvestigationResult
    redactor: Redactor  # one redactor (one hash key) for every file of the run: pseudonyms join across files
    scrub: Scrubber
    now: Callable[[], datetime] = _now  # the run's clock (when ingestion was enabled, the report's date)
    # the tenant's present, which the retention and message trace's reach count back from: the run's clock, or
    # the simulated tenant's (``Tenant.now``)
    tenant_now: Callable[[], datetime] = _now
    backend: ExoBackend | None = None  # None: no tenant access (the affected-parties step is skipped)
    # the records and what the findings need, whichever source gave them
    runs: list[SearchRun] = field(default_factory=list)
    records: Records = field(default_factory=list)  # each Id once; MailItemsAccessed streamed (record_views)
    domains: set[str] = field(default_factory=set)  # the organisation's own domains
    directory: DirectoryData = field(default_factory=DirectoryData)  # service principals; Sparrow's domains
    flagged_saml_domains: set[str] = field(default_factory=set)
    # (AnalysisOptions, OutputWriter | None) -> AnalysisResult (MailItemsAccessed): the writer takes the tables
    # as they are made, as in `mia analyze`
    analyse: Callable[[Any, Any], Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)  # source-specific sections of investigation.json
    manifest_record: dict[str, Any] = field(default_factory=dict)  # and of the manifest's investigation section
    sparrow_directory: DirectoryData | None = None  # default: ``directory``
    no_backend_reason: str = ""
    analysis_cannot_answer: str = ""  # why the MailItemsAccessed analysis cannot answer (no such records)
    # found by the tenant steps
    ingestion: IngestionState | None = None
    facts: LicenseFacts | None = None
    decision: LicenseDecision | None = None
    # found by the shared steps
    findings: FindingSet | None = None
    export_runs: list[SearchRun] | None = None  # the records as the derived exports show them (scrubbed copies)
    export_records: Records | None = None

    @property
    def case_dir(self) -> Path:
        return self.case.folder

    def settle(self, **changes: Any) -> InvestigateOptions:
        """A value a step settles (the period, the tenant's name): new options (the step rewrites the settings)."""
        self.options = self.result.options = replace(self.options, **changes)
        return self.options

    def write_settings(self) -> Path:
        return write_json(self.case.path(SETTINGS_NAME), self.scrub.value(self.options.describe()))


@dataclass(frozen=True)
class Step:
    """One step of the run: when it is skipped and why, what it does, what it records."""

    name: str  # its outcome's name (a step may record several outcomes, e.g. one per search)
    run: Callable[[RunContext], None]  # does the work; records its outcome(s) in ctx.steps, its files in result
    does: str = ""
    records: str = ""
    skip: Callable[[RunContext], str | None] | None = None  # the reason it does not run (recorded, no attention)
    needed: bool = False  # the steps after it need what it makes: if it fails, they are skipped
    always: bool = False  # runs even after a needed step failed (what keeps the record of the run)


def run_steps(ctx: RunContext, steps: Sequence[Step]) -> InvestigationResult:
    """Run ``steps`` in order; returns the result. A needed step's error is raised again once the ``always``
    steps have recorded it (the command's error message and exit code stay those of that error)."""
    stopped: BaseException | None = None
    for step in steps:
        if stopped is not None and not step.always:
            continue  # the failure is the log's last outcome; what ran before it is kept and recorded
        reason = step.skip(ctx) if step.skip is not None else None
        if reason is not None:
            ctx.steps.skipped(step.name, reason, attention=False)
            continue
        try:
            step.run(ctx)
        except Exception as exc:
            message = exc.message if isinstance(exc, MiaError) else f"{type(exc).__name__}: {exc}"
            log.debug("step %s failed", step.name, exc_info=True)
            ctx.steps.failed(step.name, message, error=type(exc).__name__)
            ctx.result.broken.append(step.name)
            if step.needed and stopped is None:
                stopped = exc
    if stopped is not None:
        raise stopped
    return ctx.result


def begin_case(
    options: InvestigateOptions, ui: InvestigationUI, *, backend: ExoBackend | None = None,
    now: Callable[[], datetime] = _now, tenant_now: Callable[[], datetime] = _now,
) -> RunContext:
    """The case folder, the step log, the result and the run's one redactor; the settings are written first."""
    case = Case(options.out_dir).create()
    options = replace(options, out_dir=case.folder)
    steps = StepLog(ui.outcome)
    result = InvestigationResult(case.folder, steps, options=options)
    redactor = Redactor(redact_subjects=options.redact_subjects, hash_addresses=options.hash_addresses,
                        key=options.hash_key)
    scrub = Scrubber(redactor)
    result.redaction = redaction_record(redactor)
    ctx = RunContext(options=options, case=case, ui=ui, steps=steps, result=result, redactor=redactor, scrub=scrub,
                     now=now, tenant_now=tenant_now, backend=backend)  # fmt: skip
    result.files.append(ctx.write_settings())  # registered with the rest, whatever step stops the run
    return ctx


def run_investigation(
    backend: ExoBackend, options: InvestigateOptions, ui: InvestigationUI, *, now: Callable[[], datetime] = _now,
    tenant_now: Callable[[], datetime] = _now,
) -> InvestigationResult:
    """Run every step against an open backend; returns outcomes, findings and the files written. ``tenant_now``:
    the tenant's present (``RunContext.tenant_now``)."""
    if (options.out_dir / MANIFEST_NAME).exists() and "exports" in Case(options.out_dir).manifest():
        raise UsageError(f"{options.out_dir} holds a case investigated from exports: the tenant's records need a "
                         "case of their own", hint="give a new --out folder")  # fmt: skip
    ctx = begin_case(options, ui, backend=backend, now=now, tenant_now=tenant_now)

    def analyse(analysis_options: Any, writer: Any = None) -> Any:
        from mia_bridge.analysis.api import analyze_files
        from mia_bridge.investigate.searches import mail_items_files

        # the evidence files, as `mia analyze` reads them (and writes the tables as they are made)
        return analyze_files(mail_items_files(ctx.runs), analysis_options, writer)

    ctx.analyse = analyse
    return run_steps(ctx, [*TENANT_STEPS, *SHARED_STEPS])


def complete_investigation(ctx: RunContext) -> InvestigationResult:
    """Findings and attribution, the MailItemsAccessed analysis, affected parties, Sparrow's files, the
    timeline and the report, over the records of either source."""
    return run_steps(ctx, SHARED_STEPS)


# --- the tenant's steps ------------------------------------------------------------------------------------


def _keep_raw(ctx: RunContext, paths: list[Path]) -> None:
    """Raw tenant output is hashed into the manifest as soon as it is written, before anything uses it."""
    ctx.case.register(paths, kind="evidence-directory")
    ctx.result.files.extend(paths)


def _backend(ctx: RunContext) -> ExoBackend:
    assert ctx.backend is not None, "a tenant step needs the backend"
    return ctx.backend


def _preflight(ctx: RunContext) -> None:
    options, steps = ctx.options, ctx.steps
    state = ensure_ingestion(_backend(ctx), enable=options.enable_ingestion,
                             confirm=lambda q: options.assume_yes or ctx.ui.confirm(q), now=ctx.now)  # fmt: skip
    ctx.result.ingestion = ctx.ingestion = state
    ctx.record["ingestion"] = ctx.manifest_record["ingestion"] = state.to_dict()
    _keep_raw(ctx, [save_raw(ctx.case_dir, "admin_audit_log_config", state.raw or {})])
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


def _directory_step(ctx: RunContext) -> None:
    directory = ctx.directory = collect_directory(_backend(ctx), ctx.case_dir)
    ctx.flagged_saml_domains = set(directory.flagged_domains)
    _keep_raw(ctx, directory.files)
    if directory.errors:
        ctx.steps.done(
            "Directory: domains, service principals, Graph permissions",
            "partly: " + "; ".join(f"{k}: {v}" for k, v in directory.errors.items()),
            attention=True,
        )
    else:
        ctx.steps.done(
            "Directory: domains, service principals, Graph permissions",
            f"{len(directory.domains)} domains, {len(directory.service_principals)} service principals, "
            f"{len(directory.graph_permissions)} Graph permissions; SAML check (federated IdP MFA not accepted): "
            + (", ".join(directory.flagged_domains) or "no domain flagged"),
        )


def _licence(ctx: RunContext) -> None:
    options = ctx.options
    facts: LicenseFacts = detect_license(_backend(ctx), options.users)
    ctx.facts = facts
    _keep_raw(ctx, [save_raw(ctx.case_dir, "license", facts.to_dict())])
    # The retention check measures from the tenant's present; a default period is measured from its own end, which
    # is that same instant (taking a later now() would put the default start seconds "before the retention").
    instant = ctx.tenant_now()
    if options.start is None:
        if options.end_is_now:
            instant = options.end
        options = ctx.settle(start=options.end - timedelta(days=retention_days(options.license_policy, facts)))
        ctx.ui.note(f"period: {options.start:%Y-%m-%d %H:%M} to {options.end:%Y-%m-%d %H:%M} UTC "
                    "(the licence's retention)")
    ctx.write_settings()
    assert options.start is not None
    decision = decide(options.license_policy, facts, start=options.start, now=instant)
    ctx.result.license = ctx.decision = decision
    # investigation.json's and the manifest's sections, in this order
    ctx.record = {"license": decision.to_dict(), "license_facts": facts.to_dict(), **ctx.record}
    ctx.manifest_record = {"license": decision.to_dict(), **ctx.manifest_record}
    licence_text = f"policy {decision.policy.value}: Audit {'Premium' if decision.premium else 'Standard'}"
    if facts.premium_skus:
        licence_text += f" ({', '.join(facts.premium_skus)})"
    ctx.steps.done("Licence", licence_text, attention=bool(decision.warnings))
    for warning in decision.warnings:
        ctx.ui.note(f"warning: {warning}")


def _searches(ctx: RunContext) -> None:
    options = ctx.options
    assert options.start is not None and ctx.decision is not None
    runs = plan_searches(users=options.users, app_id=options.app_id, all_apps=options.all_apps,
                         directory=ctx.directory, decision=ctx.decision, steps=ctx.steps)  # fmt: skip
    ctx.result.searches = ctx.runs = runs
    run_searches(_backend(ctx), runs, start=options.start, end=options.end, case_dir=ctx.case_dir,
                 collect_options=options.collect_options, progress=ctx.ui.progress, steps=ctx.steps)  # fmt: skip
    ctx.records = all_records(runs)
    domains = set(ctx.directory.domain_names) | {options.tenant.lower()}
    ctx.domains = domains | {u.rsplit("@", 1)[1].lower() for u in options.users if "@" in u}


def _mailbox_audit(ctx: RunContext) -> None:
    """Beyond Sparrow, best effort: the cmdlet is announced for retirement."""
    options = ctx.options
    assert options.start is not None
    for user in options.users:
        _mailbox_audit_step(_backend(ctx), user, options.start, options.end, ctx.case_dir, ctx.steps)


TENANT_STEPS: tuple[Step, ...] = (
    Step("Pre-flight: audit ingestion", _preflight, needed=True,
         does="reads UnifiedAuditLogIngestionEnabled; turns it on when asked and confirmed; else stops the run "
         "(IngestionDisabledError)", records="directory/admin_audit_log_config.json (raw); the outcome"),
    Step("Directory: domains, service principals, Graph permissions", _directory_step, needed=True,
         does="the tenant's domains, federation settings, service principals and app role assignments",
         records="directory/*.json (raw); the outcome; partial answers as attention"),
    Step("Licence", _licence, needed=True,
         does="detects Audit Premium; settles the period (the retention) when --start was not given",
         records="directory/license.json (raw), investigation.settings.json; the licence decision"),
    Step("Searches", _searches, needed=True,
         does="plans Sparrow's searches (and mia's) and collects them (the collector writes evidence/ first)",
         records="evidence/, state/ (the collector); one outcome per search"),
    Step("Mailbox audit log", _mailbox_audit,
         does="Search-MailboxAuditLog for each --user (announced for retirement: a skip when gone)",
         records="evidence/ (the collector); one outcome per mailbox"),
)


# --- the steps after the records, whichever source gave them ------------------------------------------------


def _findings(ctx: RunContext) -> None:
    """Attribution first: the analysis is told the attacker's IPs and apps."""
    options, directory = ctx.options, ctx.directory
    findings = build_findings(
        FindingInputs(
            records=ctx.records,
            tenant_domains=ctx.domains,
            service_principals=directory.service_principals,
            flagged_saml_domains=ctx.flagged_saml_domains,
            suspicious_ips=options.suspicious_ips,
            suspicious_apps=[options.app_id] if options.app_id else [],
            known_good_ips=options.known_good_ips,
        )
    )
    ctx.result.findings = ctx.findings = findings
    findings_doc = {
        "attacker_context": {
            "ips": sorted(findings.context.ips),
            "apps": sorted(findings.context.apps),
            "users": sorted(findings.context.users),
            "reasons": findings.context.reasons,
        },
        "findings": [f.to_dict() for f in findings.findings],
    }
    ctx.result.files.append(write_json(ctx.case.path(FINDINGS_NAME), ctx.scrub.value(findings_doc)))
    attacker = findings.attacker_findings
    ctx.steps.done(
        "Findings",
        f"{len(attacker)} attacker finding(s), {len(findings.findings) - len(attacker)} for review; "
        f"{len(findings.exposed)} message(s) read by the attacker",
    )


def _analysis(ctx: RunContext) -> None:
    assert ctx.findings is not None and ctx.analyse is not None
    ctx.result.analysis_summary = _analyse(ctx.case_dir, ctx.analyse, ctx.options, ctx.findings, ctx.steps,
                                           ctx.result, ctx.analysis_cannot_answer)  # fmt: skip


def _why_no_enrichment(ctx: RunContext) -> str | None:
    assert ctx.findings is not None
    if not ctx.findings.attacker_findings:  # the scope would be every mailbox's mail, at 100 queries / 5 min
        return ("no message was attributed to an attacker; `mia enrich CASE` lists the parties of every "
                "accessed message")
    if ctx.backend is None:
        return ctx.no_backend_reason
    return None


def _affected_parties(ctx: RunContext) -> None:
    """Message trace (a skip with the reason without the permission) for the messages the attacker read."""
    options = ctx.options
    given = options.enrich_options or EnrichOptions()
    enrich_options = replace(given, now=given.now or ctx.tenant_now(),
                             allow_mailbox_metadata=options.allow_mailbox_metadata,
                             redact_subjects=options.redact_subjects, hash_addresses=options.hash_addresses,
                             redactor=ctx.redactor)  # fmt: skip
    enriched = run_enrich_step(_backend(ctx), ctx.case_dir, ctx.steps, enrich_options)
    ctx.result.enrichment = enriched


def _exposed_messages(ctx: RunContext) -> None:
    """exposed_messages.csv when the affected-parties step did not write it: the messages the attacker read,
    in the same columns, without sender and recipients (header only when none was read)."""
    path = ctx.case.path(EXPOSED_NAME)
    if ctx.result.enrichment is None:
        assert ctx.findings is not None
        write_exposed(path, exposed_from_findings(ctx.findings, _no_metadata_note(ctx)), ctx.redactor)
    if path not in ctx.result.files:
        ctx.result.files.append(path)


def _no_metadata_note(ctx: RunContext) -> str:
    outcome = next((o for o in reversed(list(ctx.steps)) if o.name == AFFECTED_PARTIES), None)
    why = outcome.reason if outcome is not None else "not run"
    return f"no metadata (the affected-parties step did not run: {why})"


def exposed_from_findings(findings: FindingSet, note: str) -> list[ExposedMessage]:
    """The messages the attacker read (``findings.exposed``, one row a read) as one row a message id."""
    messages: dict[str, ExposedMessage] = {}
    for read in findings.exposed:
        key = normalise_id(read.internet_message_id)
        message = messages.get(key)
        if message is None:
            message = messages[key] = ExposedMessage(key, read.internet_message_id, ACCESSED,
                                                     first_access=read.first_read, note=note)  # fmt: skip
            message.add_reason("read (MailItemsAccessed bind)")
        elif read.first_read is not None and (message.first_access is None or read.first_read < message.first_access):
            message.first_access = read.first_read
        message.mailboxes.add(read.mailbox)
        if read.folder:
            message.folders.add(read.folder)
        message.contexts.add(" | ".join((read.client_ip or "-", read.app_id or "-", "-")))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(messages.values(), key=lambda m: (m.first_access or far, m.key))


def _redaction(ctx: RunContext) -> None:
    """With --redact-subjects / --hash-addresses: the derived files written so far, rewritten redacted."""
    enriched, scrub = ctx.result.enrichment, ctx.scrub
    if enriched is not None:  # now the exposed subjects are known: redact them wherever they occur
        scrub.add_subjects(m.meta.subject for m in enriched.messages if m.meta)
    if scrub.active:
        # The analysis tables stayed clear until the enrichment had read the mailboxes from them.
        analysis = ctx.case.analysis_dir
        for path in [ctx.case.path(FINDINGS_NAME), *(p for p in ctx.result.files if p.parent == analysis)]:
            scrub.rewrite(path)
    ctx.export_runs, ctx.export_records = _shareable_records(ctx.runs, ctx.records, scrub)


def _sparrow(ctx: RunContext) -> None:
    _sparrow_step(ctx.case_dir, ctx.export_runs if ctx.export_runs is not None else ctx.runs,
                  ctx.sparrow_directory or ctx.directory, ctx.options.delimiter, ctx.result, ctx.steps,
                  flagged=sorted(ctx.flagged_saml_domains))  # fmt: skip


def _timeline(ctx: RunContext) -> None:
    scrub = ctx.scrub
    searches_by_id: dict[str, list[str]] = {}
    for run in ctx.runs:
        for rec in run.records:
            searches_by_id.setdefault(af.record_id(rec), []).append(run.spec.name)
    findings_by_id: dict[str, list[str]] = {}
    for finding in ctx.findings.findings if ctx.findings else []:
        for rid in finding.record_ids:
            findings_by_id.setdefault(rid, []).append(scrub.text(finding.title) if scrub.active else finding.title)
    path = ctx.case.path(TIMELINE_NAME)
    records = ctx.export_records if ctx.export_records is not None else ctx.records
    stats = write_timeline(path, records, searches_by_id=searches_by_id, findings_by_id=findings_by_id)
    ctx.result.files.append(path)
    ctx.steps.done(
        "Timeline",
        f"{stats.rows} rows (Timesketch CSV)" + (f", {stats.undated} undated" if stats.undated else ""),
        attention=bool(stats.undated),
    )


def _register(ctx: RunContext) -> None:
    """Every derived file written so far into the manifest (raw evidence was registered as it was written)."""
    derived = [p for p in dict.fromkeys(ctx.result.files) if p.exists() and ctx.case.label(p) is not Label.RAW_EVIDENCE]
    ctx.case.register(derived, kind="investigation")


def _report(ctx: RunContext) -> None:
    result, options, scrub = ctx.result, ctx.options, ctx.scrub
    result.summary = scrub.value(summarise(result, options))
    model = build_report_model(result, options, ctx.now())
    model.tables.extend(enrich_report_tables(result.enrichment, ctx.redactor))  # the "Affected parties" section
    model = scrub.value(model)  # every text the report shows: verdict, findings' rows, steps, file names
    result.verdict = {"level": model.verdict_level, "headline": model.verdict_headline}
    result.report_path = write_report(model, ctx.case.path(REPORT_NAME))
    ctx.steps.done("Report", str(result.report_path))


def _record(ctx: RunContext) -> None:
    """investigation.json and the manifest's investigation section: what ran, what was skipped and why, what
    failed (the files above carry the details)."""
    result, options, scrub = ctx.result, ctx.options, ctx.scrub
    result.summary = scrub.value(summarise(result, options))
    record_path = write_json(
        ctx.case.path(INVESTIGATION_NAME),
        scrub.value({
            "options": options.describe(),
            "summary": result.summary,
            "steps": ctx.steps.to_list(),
            **ctx.record,
            "redaction": result.redaction,
        }),
    )
    written = [p for p in (result.report_path, record_path) if p is not None]
    result.files.extend(written)
    ctx.case.register(written, kind="report")
    for key, value in (
        ("options", options.describe()),
        ("steps", ctx.steps.to_list()),
        *ctx.manifest_record.items(),
        ("verdict", result.verdict),
        ("exit_code", result.exit_code),
        ("redaction", result.redaction),
    ):
        ctx.case.update_record("investigation", key, scrub.value(value))


SHARED_STEPS: tuple[Step, ...] = (
    Step("Findings", _findings, needed=True,
         does="attribution (the attacker's IPs, apps and accounts) and the findings over every record",
         records="findings.json; the outcome"),
    Step("MailItemsAccessed analysis", _analysis,
         does="throttling, folder syncs, binds and message-id lookups, told the attacker's context",
         records="analysis/; one outcome, and one per --user"),
    Step(AFFECTED_PARTIES, _affected_parties, skip=_why_no_enrichment,
         does="message trace (and, allowed, the mailbox) for the parties of the mail the attacker read; skipped "
         "without an attacker context or without the tenant",
         records="enrich/raw/ (raw), exposed_messages.csv, affected_parties.csv, enrich/; the outcome"),
    Step("Exposed messages", _exposed_messages,
         does="exposed_messages.csv from the findings when the affected-parties step did not write it",
         records="exposed_messages.csv (the same 19 columns; header only when no message was read)"),
    Step("Redaction", _redaction, needed=True,  # never a derived file unredacted when redaction was asked
         does="with --redact-subjects / --hash-addresses: rewrites the derived files written so far",
         records="nothing new (findings.json and analysis/ redacted in place)"),
    Step("Sparrow exports", _sparrow, does="Sparrow.ps1's CSV files and its workbook",
         records="sparrow/; the outcome (files not written as a failure)"),
    Step("Timeline", _timeline, does="every record as a Timesketch CSV", records="timeline.csv; the outcome"),
    Step("Register", _register, always=True, does="hashes every derived file into the manifest",
         records="manifest.json"),
    Step("Report", _report, does="the HTML report", records="report.html; the outcome"),
    Step("Investigation record", _record, always=True,
         does="the run's record, written whatever failed before it",
         records="investigation.json; the manifest's investigation section (steps, verdict, exit code)"),
)


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


def _shareable_records(runs: list[SearchRun], records: Records, scrub: Scrubber) -> tuple[list[SearchRun], Records]:
    """The records as the derived exports (Sparrow's files, the timeline) show them: scrubbed copies when
    redacting, made as each record is read (a streamed search's are never held); the evidence files keep the
    records as received."""
    if not scrub.active:
        return runs, records
    return ([replace(run, records=MappedRecords(run.records, scrub.value)) for run in runs],
            MappedRecords(records, scrub.value))


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
    analyse: Callable[[Any, Any], Any],
    options: InvestigateOptions,
    findings: FindingSet,
    steps: StepLog,
    result: InvestigationResult,
    cannot_answer: str = "",
) -> dict[str, Any]:
    from mia_bridge.analysis.api import AnalysisOptions, OutputWriter

    analysis_options = AnalysisOptions(
        start=options.start,
        end=options.end,
        message_ids=options.message_ids,
        suspicious_ips=sorted(findings.context.ips),
        suspicious_apps=sorted(findings.context.apps),
        known_good_ips=list(options.known_good_ips),
    )
    try:
        with OutputWriter(case_dir / ANALYSIS_DIR) as writer:  # as `mia analyze`: tables written as they are made
            analysis = analyse(analysis_options, writer)
            written = writer.finish(analysis)
    except MiaError as exc:
        steps.failed("MailItemsAccessed analysis", exc.message)
        return {}
    result.files.extend(written.values())
    summary = analysis.summary
    counts = summary["mail_items_accessed"]
    result.analysis = analysis
    # Microsoft's order: throttling first, then sync, then bind, then the message ids
    steps.done(
        "MailItemsAccessed analysis",
        (f"{cannot_answer}; " if cannot_answer else "")
        + f"{analysis.rows('throttled_windows')} throttled 24 h window(s); {analysis.rows('synced_folders')} folder "
        f"syncs; {counts['items_accessed']} item accesses (bind) in {counts['events']} events"
        + (f"; {len(analysis.message_lookup)} message id(s) looked up" if analysis.message_lookup is not None else ""),
        attention=bool(cannot_answer),
    )
    for user, figures in _mailbox_figures(analysis.files, options.users).items():
        steps.done(f"MailItemsAccessed for {user}", _mailbox_story(figures, findings, user))
    return summary


@dataclass(frozen=True)
class _MailboxFigures:
    throttled_windows: int
    synced_folders: list[str]
    bound_message_ids: int  # distinct


def _mailbox_figures(files: dict[str, Path], mailboxes: tuple[str, ...]) -> dict[str, _MailboxFigures]:
    """Each mailbox's throttled windows, synced folders and distinct bound message ids: aggregates over the
    analysis's Parquet files (items has millions of rows on a large case: never in Python), the mailboxes
    compared lower-cased with the names as given."""
    if not mailboxes:
        return {}
    import duckdb

    wanted = sorted(set(mailboxes))
    where = "lower(mailbox) IN (SELECT unnest(?)) GROUP BY 1"
    queries = {  # kind -> (table, aggregate per lower-cased mailbox)
        "throttled": ("throttled_windows", f"SELECT lower(mailbox), count(*) FROM read_parquet(?) WHERE {where}"),
        "synced": ("synced_folders", "SELECT lower(mailbox), list(DISTINCT folder_path) FROM read_parquet(?) "
                   f"WHERE folder_path IS NOT NULL AND {where}"),
        "bound": ("items", "SELECT lower(mailbox), count(DISTINCT internet_message_id) FROM read_parquet(?) "
                  f"WHERE {where}"),
    }
    found: dict[str, dict[str, Any]] = {}
    with duckdb.connect(":memory:", config={"threads": 2, "memory_limit": "256MB"}) as con:
        for kind, (table, query) in queries.items():
            found[kind] = dict(con.execute(query, [str(files[table]), wanted]).fetchall())
    return {m: _MailboxFigures(int(found["throttled"].get(m, 0)), sorted(str(f) for f in found["synced"].get(m) or []),
                               int(found["bound"].get(m, 0))) for m in mailboxes}


def _mailbox_story(figures: _MailboxFigures, findings: FindingSet, mailbox: str) -> str:
    """One mailbox in the guidance's order: throttled, synced, bound, and what of it was the attacker's."""
    by_attacker = sum(1 for m in findings.exposed if m.mailbox == mailbox)
    attacker_synced = sorted(findings.synced_folders.get(mailbox, set()))
    text = (f"throttled {figures.throttled_windows} time(s); synced folders: "
            f"{', '.join(figures.synced_folders) or 'none'}; {figures.bound_message_ids} message(s) bound")
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
