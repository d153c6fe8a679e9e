"""``mia investigate --from-exports``: the investigation's steps over audit-log exports, without the tenant.

Preserve the exports (copied and hashed before anything reads them) → read them → the tenant steps reported
as skipped with what they would have added → Sparrow's searches over the records → then the same steps as a
tenant run (``pipeline.SHARED_STEPS``): findings and attribution, the MailItemsAccessed analysis
(``analyze_files`` on the copies, as ``mia analyze``), Sparrow's files, timeline and report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mia_bridge.investigate.directory import DirectoryData
from mia_bridge.investigate.license import LicenseDecision, LicensePolicy
from mia_bridge.investigate.offline import (
    EXPORTS_DIR,
    ExportFile,
    ExportSet,
    check_case,
    preserve_exports,
    read_exports,
    run_offline_searches,
)
from mia_bridge.investigate.offline_infer import (
    default_period,
    federated_domains,
    infer_service_principals,
    infer_tenant_domains,
    period_limits,
)
from mia_bridge.investigate.pipeline import (
    SHARED_STEPS,
    InvestigateOptions,
    InvestigationResult,
    InvestigationUI,
    RunContext,
    Step,
    begin_case,
    run_steps,
)
from mia_bridge.investigate.plan import SAML_SEARCH, SPARROW_TENANT_SEARCHES, SearchSpec, app_searches, mailbox_searches
from mia_bridge.investigate.searches import all_records, plan_searches
from mia_bridge.records.fields import operation_of

ANY_APP = "00000000-0000-0000-0000-000000000000"
NO_TENANT = "no tenant access (--from-exports)"
SHOWN_QUARANTINE = 20
NO_MAIL_ITEMS = ("the exports hold no MailItemsAccessed records: which mail was read (bind), which folders were "
                 "synced and which mailboxes were throttled cannot be told from them (not 'no mail was read')")


def candidate_searches(options: InvestigateOptions) -> list[SearchSpec]:
    """Every search the plan can hold for these options, the per-app ones for any app with --all-apps: a record
    none of them returns need not be kept (the plan itself needs the records: the apps, the federated domains)."""
    specs = [*SPARROW_TENANT_SEARCHES, SAML_SEARCH, *mailbox_searches(options.users)]
    if options.app_id:
        specs += app_searches(options.app_id, None)
    elif options.all_apps:
        specs += [replace(spec, free_text=None) for spec in app_searches(ANY_APP, None)]
    return specs


def _now() -> datetime:
    return datetime.now(tz=UTC)


def run_offline_investigation(
    options: InvestigateOptions, ui: InvestigationUI, *, end_given: bool = True,
    now: Callable[[], datetime] = _now,
) -> InvestigationResult:
    """Investigate ``options.exports``; returns outcomes, findings and the files written, as a tenant run does.

    Without ``options.start`` (and with ``end_given`` False) the period is the whole days the exports cover.
    """
    check_case(options.out_dir)  # before anything is written into it
    ctx = begin_case(options, ui, now=now)
    run = _OfflineRun(end_given)
    steps = (
        Step("Exports preserved", run.preserve, needed=True,
             does="copies every export into evidence/exports/ and hashes it before anything reads it",
             records="evidence/exports/ (raw); the outcome"),
        Step("Exports read", run.read, needed=True,
             does="reads the copies (every format the readers know); quarantines what cannot be read",
             records="the counts (read = parsed + quarantined; parsed = unique + duplicates); one failure a file"),
        Step("Tenant steps", run.tenant, needed=True,
             does="what the tenant would have told, inferred from the records where it can be",
             records="the pre-flight, directory and licence steps as skipped, each with what it would have added"),
        Step("Period", run.period, needed=True, does="as given, else the whole days the exports cover",
             records="investigation.settings.json; the outcome, with what the exports do not cover"),
        Step("Searches", run.searches, needed=True,
             does="Sparrow's searches (and mia's) applied to the records",
             records="one outcome per search; what the exports cannot answer (the limits)"),
        *SHARED_STEPS,
    )
    return run_steps(ctx, steps)


@dataclass
class _OfflineRun:
    """What the offline steps hand each other before the shared steps take the records."""

    end_given: bool
    files: list[ExportFile] = field(default_factory=list)
    exports: ExportSet | None = None
    domains: list[str] = field(default_factory=list)
    how: str = ""
    federated: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)

    def _exports(self) -> ExportSet:
        assert self.exports is not None, "the exports are read first"
        return self.exports

    def preserve(self, ctx: RunContext) -> None:
        # the inputs are evidence: copied and hashed before anything reads them; only the copies are read
        self.files = preserve_exports(ctx.case_dir, ctx.options.exports)
        ctx.steps.done("Exports preserved", f"{len(self.files)} file(s) copied unchanged into "
                       f"{EXPORTS_DIR.as_posix()}/ and hashed (SHA-256) into the manifest before reading")  # fmt: skip

    def read(self, ctx: RunContext) -> None:
        files, steps, ui = self.files, ctx.steps, ctx.ui
        exports = self.exports = read_exports(files, candidate_searches(ctx.options))
        ctx.result.exports = exports
        for export in files:
            if export.error:
                steps.failed(f"Export {export.source}", export.error)
        formats = sorted({f.format for f in files if f.format})
        quarantined = len(exports.quarantined)
        detail = (f"{exports.read} record(s) read from {sum(1 for f in files if not f.error)} file(s) "
                  f"({', '.join(formats)}): {exports.parsed} parsed, {quarantined} quarantined; "
                  f"{exports.duplicates} duplicate(s) (same Id) counted once; {exports.unique} unique, "
                  f"{len(exports.records)} of them returned by a search")  # fmt: skip
        if exports.undated:
            detail += f"; {exports.undated} without a readable CreationTime (outside every period)"
        steps.done("Exports read", detail, attention=bool(quarantined or exports.undated))
        for item in exports.quarantined[:SHOWN_QUARANTINE]:
            ui.note(f"quarantined: {item.message()}")
        if quarantined > SHOWN_QUARANTINE:
            ui.note(f"quarantined: ... and {quarantined - SHOWN_QUARANTINE} more (all in analysis/quarantine.jsonl)")

    def tenant(self, ctx: RunContext) -> None:
        """What the tenant would have told: skipped, each with what it would have added."""
        options, steps, exports = ctx.options, ctx.steps, self._exports()
        steps.skipped("Pre-flight: audit ingestion", f"{NO_TENANT}: whether ingestion was on is not known; the "
                      "exports hold what was recorded", attention=False)  # fmt: skip
        if options.tenant_domains:
            domains, how = list(options.tenant_domains), "given with --tenant-domain"
        else:
            domains, how = infer_tenant_domains(exports), "inferred from the mailbox owners"
            ctx.ui.note(f"the organisation's domains, inferred from the mailbox owners: {', '.join(domains) or 'none'}"
                        " (give --tenant-domain to state them)")  # fmt: skip
        if domains and not options.tenant_domains:
            options = ctx.settle(tenant=domains[0])  # the report's and summary's "tenant": the commonest owner domain
        # as a tenant run does: the investigated users' domains are the organisation's too
        domains += [d for d in dict.fromkeys(u.rsplit("@", 1)[1].lower() for u in options.users if "@" in u)
                    if d not in domains]  # fmt: skip
        federated = federated_domains(exports.records)
        principals = infer_service_principals(exports.records, exports.acting_apps)
        apps = sorted({str(p["AppId"]) for p in principals})
        self.domains, self.how, self.federated, self.apps = domains, how, federated, apps
        ctx.directory = DirectoryData(domains=[{"Id": d, "AuthenticationType": "Federated"} for d in federated],
                                      service_principals=principals)  # fmt: skip
        ctx.domains, ctx.flagged_saml_domains = {d.lower() for d in domains}, set(federated)
        steps.skipped(
            "Directory: domains, service principals, Graph permissions",
            f"{NO_TENANT}: the organisation's domains {how} ({', '.join(domains) or 'none'}); {len(apps)} "
            "application(s) from the records; federated domains from federation changes in the exports "
            f"({', '.join(federated) or 'none'}); Domain_List.csv and ApplicationGraphPermissions.csv need the "
            "tenant",
            attention=False,
        )
        steps.skipped("Licence", f"{NO_TENANT}: every search is applied to the exports, which hold what the tenant "
                      "recorded under its licence", attention=False)  # fmt: skip

    def period(self, ctx: RunContext) -> None:
        """As given, else the whole days the exports cover."""
        options, exports = ctx.options, self._exports()
        span = default_period(exports)
        period_given = options.start is not None or self.end_given
        if options.start is None:
            options = ctx.settle(start=span[0] if span else ctx.now() - timedelta(days=1))
        if not self.end_given:
            options = ctx.settle(end=span[1] if span else ctx.now())
        assert options.start is not None
        ctx.write_settings()
        self.limits = limits = period_limits(exports, options.start, options.end)
        covered = (f"the exports' records run from {exports.first:%Y-%m-%d %H:%M} to "
                   f"{exports.last:%Y-%m-%d %H:%M} UTC" if exports.first and exports.last
                   else "the exports hold no dated record")  # fmt: skip
        ctx.steps.done("Period", f"{options.start:%Y-%m-%d %H:%M} to {options.end:%Y-%m-%d %H:%M} UTC "
                       f"({'as given' if period_given else 'the whole days the exports cover'}); "
                       f"{covered}" + ("; " + " ".join(limits) if limits else ""), attention=bool(limits))  # fmt: skip

    def searches(self, ctx: RunContext) -> None:
        """Planned as for the tenant, applied to the records; then what the shared steps need."""
        options, steps, ui, exports, limits = ctx.options, ctx.steps, ctx.ui, self._exports(), self.limits
        assert options.start is not None
        decision = LicenseDecision(LicensePolicy.ASSUME_PREMIUM, premium=True, search_mail_items=True,
                                   search_premium_only=True)  # fmt: skip
        runs = plan_searches(users=options.users, app_id=options.app_id, all_apps=options.all_apps,
                             directory=ctx.directory, decision=decision, steps=steps)  # fmt: skip
        for run in runs:
            if run.spec is SAML_SEARCH and run.skipped:
                run.skipped = ("no federated domain in the exports (no federation or domain-authentication change); "
                               "which domains are federated without MFA needs the tenant's domain list (Get-MgDomain)")
        ctx.result.searches = runs
        unanswered: dict[str, list[str]] = {}  # why -> the searches (one limit per reason, not per search)
        for outcome in run_offline_searches(runs, exports, start=options.start, end=options.end,
                                            evidence_dir=ctx.case_dir / EXPORTS_DIR):  # fmt: skip
            steps.record(outcome)
            if outcome.details.get("answerable") is False:
                why = outcome.reason.split("this search: ", 1)[-1]
                unanswered.setdefault(why, []).append(outcome.name.removeprefix("Search ").split(":", 1)[0])
        for why, labels in unanswered.items():
            limits.append(f"Searches the exports cannot answer ({why}): {', '.join(labels)} — not 'nothing found'.")
        if self.federated:
            ui.note("Sparrow's SAML search (row 6) keeps the logins of the domains the exports show as federated "
                    f"({', '.join(self.federated)}); whether they enforce MFA needs the tenant's domain list")
        else:
            limits.append("The exports show no federated domain: forged SAML-token logins (16457) of a federated "
                          "domain cannot be singled out without the tenant's domain list (Get-MgDomain).")
        for user in options.users:
            steps.skipped(f"Mailbox audit log: {user}", f"{NO_TENANT} (Search-MailboxAuditLog)", attention=False)
        no_mail = not any(operation_of(r) == "mailitemsaccessed" for r in exports.records)
        if no_mail:
            limits.append(NO_MAIL_ITEMS[0].upper() + NO_MAIL_ITEMS[1:] + ".")
        ctx.result.limits = limits
        for limit in limits:
            ui.note(f"limit: {limit}")

        readable = [f.path for f in self.files if not f.error]

        def analyse(analysis_options: Any, writer: Any = None) -> Any:
            from mia_bridge.analysis.api import analyze_files

            return analyze_files(readable, analysis_options, writer)  # as `mia analyze` reads and writes them

        tenant_record = {"domains": self.domains, "domains_source": self.how, "federated_domains": self.federated,
                         "applications": self.apps}  # fmt: skip
        ctx.runs, ctx.records, ctx.analyse = runs, all_records(runs), analyse
        ctx.record = {"source": "exports", "exports": exports.describe(), "limits": limits,
                      "inferred": tenant_record}  # fmt: skip
        ctx.manifest_record = {"source": "exports", "exports": exports.describe(), "limits": limits,
                               "inferred": tenant_record}  # fmt: skip
        ctx.sparrow_directory = DirectoryData()
        ctx.no_backend_reason = (f"{NO_TENANT}: run `mia enrich CASE` with tenant access for the senders, "
                                 "recipients and subjects of the mail read (message trace, and the mailbox with "
                                 "--allow-mailbox-metadata)")  # fmt: skip
        ctx.analysis_cannot_answer = NO_MAIL_ITEMS if no_mail else ""
