"""The searches of an investigation: planned with their skip reasons, collected one by one, exported.

Each search is collected on its own (one denied search does not lose the rest) through the
collection engine, which writes and hashes the raw records before anything reads them. The Sparrow
files are then written from those records exactly as Sparrow.ps1 writes them: searches sharing a file
(8a/8b/8c) are appended in Sparrow's order without de-duplication, the SAML search keeps only the
flagged domains' users, as Sparrow's filter did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.collect.engine import CollectOptions, Progress, QueryResult, collect
from mia_bridge.errors import MiaError
from mia_bridge.evidence.store import read_records
from mia_bridge.exports import sparrow
from mia_bridge.exports.sparrow_workbook import write_summary_workbook
from mia_bridge.investigate.directory import DirectoryData
from mia_bridge.investigate.license import LicenseDecision
from mia_bridge.investigate.plan import (
    SAML_SEARCH,
    SPARROW_TENANT_SEARCHES,
    SearchSpec,
    app_searches,
    mailbox_searches,
    saml_domain_filter,
)
from mia_bridge.investigate.record_views import EvidenceRecords, Records, UniqueRecords
from mia_bridge.investigate.steps import StepLog, StepOutcome, StepStatus
from mia_bridge.records import fields as af


@dataclass
class SearchRun:
    """One planned search: its spec, its collection result, or why it did not run."""

    spec: SearchSpec
    result: QueryResult | None = None
    skipped: str = ""
    error: str = ""
    # a MailItemsAccessed search's records are read from its evidence file on each pass (never held whole)
    records: Records = field(default_factory=list)


def plan_searches(
    *,
    users: Sequence[str],
    app_id: str | None,
    all_apps: bool,
    directory: DirectoryData,
    decision: LicenseDecision,
    steps: StepLog,
) -> list[SearchRun]:
    """Every search of the run, with skip reasons decided up front (they are part of the record)."""
    runs = [SearchRun(spec) for spec in SPARROW_TENANT_SEARCHES]
    flagged = directory.flagged_domains
    if flagged:
        runs.insert(5, SearchRun(SAML_SEARCH))
    else:
        reason = "no federated domain whose IdP's MFA Entra ID does not accept (Sparrow skips this search then)"
        if "Get-MgDomain" in directory.errors:
            reason = f"domains could not be listed ({directory.errors['Get-MgDomain']})"
        runs.insert(5, SearchRun(SAML_SEARCH, skipped=reason))
    apps: list[tuple[str, str | None]] = []
    if app_id:
        apps = [(app_id, None)]
    elif all_apps:
        apps = [
            (str(sp.get("AppId")), str(sp.get("DisplayName") or sp.get("AppId")))
            for sp in directory.application_principals
            if sp.get("AppId")
        ]
        if not apps:
            steps.skipped("App investigations", "no application service principals were listed")
    else:
        steps.skipped("App investigations", "not requested (use --app-id GUID or --all-apps)", attention=False)
    for app_id, name in apps:
        for spec in app_searches(app_id, name):
            runs.append(SearchRun(spec))
    runs.extend(SearchRun(spec) for spec in mailbox_searches(users))
    for run in runs:
        if run.skipped:
            continue
        if run.spec.mail_items and not decision.search_mail_items:
            run.skipped = decision.mail_items_reason
        elif run.spec.premium_only and not decision.search_premium_only:
            run.skipped = decision.premium_reason
    return runs


def run_searches(
    backend: ExoBackend,
    runs: Sequence[SearchRun],
    *,
    start: datetime,
    end: datetime,
    case_dir: Path,
    collect_options: CollectOptions,
    progress: Progress | None,
    steps: StepLog,
) -> None:
    """Collect each search on its own so that one denied search does not lose the rest."""
    collect_options.check_ingestion = False  # the pre-flight step did it, with the enablement option
    for run in runs:
        if run.skipped:
            steps.record(search_outcome(run))
            continue
        query = run.spec.to_audit_query(start, end)
        try:
            outcome = collect(backend, [query], case_dir, collect_options, progress)
        except MiaError as exc:
            run.error = exc.message
            steps.record(search_outcome(run))
            continue
        run.result = outcome.queries[0]
        if not run.result.path.exists():
            run.records = []
        elif run.spec.mail_items:  # millions on a large tenant: streamed from the evidence file
            run.records = EvidenceRecords(run.result.path)
        else:
            run.records = read_records(run.result.path)
        steps.record(search_outcome(run))


def search_outcome(run: SearchRun) -> StepOutcome:
    label = f"Search {run.spec.sparrow_row or '+'}: {run.spec.title}"
    if run.skipped:
        # Not gaps: a skip Sparrow makes too (no federated domain to check) and Premium-only events on a
        # tenant without Premium (never recorded). Gaps: MailItemsAccessed skipped by policy, anything else.
        attention = not (run.skipped.startswith("no federated domain") or run.spec.premium_only)
        return StepOutcome(label, StepStatus.SKIPPED, run.skipped, attention)
    if run.error:
        return StepOutcome(label, StepStatus.FAILED, run.error, True)
    assert run.result is not None
    counts = run.result.counts
    detail = f"{counts.unique} records ({counts.retrieved} retrieved, {counts.duplicates_removed} duplicates removed)"
    if counts.unparseable:
        detail += f", {counts.unparseable} unparseable kept aside"
    if run.result.gaps:
        detail += f"; {len(run.result.gaps)} window(s) still at the cap: records may be missing"
    return StepOutcome(label, StepStatus.DONE, detail, bool(run.result.gaps), {"query": run.spec.name})


@dataclass
class SparrowExports:
    """What the sparrow/ step wrote: files, rows per file, failures per file, formula-like cells."""

    written: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # file -> why it was not written
    formula_cells: dict[str, int] = field(default_factory=dict)  # file -> cells starting = + - @ tab CR
    unreadable: dict[str, int] = field(default_factory=dict)  # file -> records 5.1's ConvertFrom-Json rejects

    @property
    def formula_total(self) -> int:
        return sum(self.formula_cells.values())


def sparrow_files(
    runs: Sequence[SearchRun], directory: DirectoryData, delimiter: str = ",", *, flagged: Sequence[str] | None = None
) -> list[sparrow.SparrowCsv]:
    """Every CSV of sparrow/, as Sparrow.ps1 writes it for these records.

    Searches sharing a file are Export-UALData calls in Sparrow's order (8a creates PSLogin, 8b and 8c
    append: a sign-in found by two of them is listed twice); a search that returned nothing writes
    nothing; SAML rows are only the flagged domains' users. Domain_List.csv and
    ApplicationGraphPermissions.csv are always written (0 bytes when empty, as Export-Csv creates them).
    ``flagged``: the domains whose SAML logins row 6 keeps (default: the directory's; offline: inferred).
    """
    if flagged is None:
        flagged = directory.flagged_domains
    chunks: dict[str, list[Iterable[Mapping[str, Any]]]] = {}
    workloads: dict[str, str] = {}
    for run in runs:
        spec = run.spec
        if not spec.sparrow_file or not spec.workload or run.result is None:
            continue
        records: Iterable[Mapping[str, Any]] = run.records
        if spec is SAML_SEARCH:
            records = saml_domain_filter(records, flagged)
        chunks.setdefault(spec.sparrow_file, []).append(records)
        workloads[spec.sparrow_file] = spec.workload
    files = [
        sparrow.ual_file(rel, parts, sparrow.WORKLOAD_COLUMNS[workloads[rel]], delimiter)
        for rel, parts in chunks.items()
    ]
    files.append(sparrow.listing_file(sparrow.DOMAIN_LIST_CSV, sparrow.domain_list_rows(directory.domains), delimiter))
    files.append(sparrow.listing_file(sparrow.GRAPH_PERMISSIONS_CSV, directory.graph_permissions, delimiter))
    return files


def write_sparrow_exports(
    export_dir: Path, runs: Sequence[SearchRun], directory: DirectoryData, delimiter: str = ",", *,
    flagged: Sequence[str] | None = None,
) -> SparrowExports:
    """Write sparrow/ (each file on its own: one that fails is reported, the others are still written),
    then Summary_Export.xlsx from the top-level CSVs."""
    out = SparrowExports()
    top_level: list[Path] = []
    if any(run.spec.sparrow_row in ("9", "10") for run in runs):
        # Sparrow creates AppInvestigations when the One/All mode is chosen, before any search
        (export_dir / sparrow.APP_INVESTIGATIONS_DIR).mkdir(parents=True, exist_ok=True)
    for item in sparrow_files(runs, directory, delimiter, flagged=flagged):
        path = export_dir / item.rel
        try:
            stats = item.write(path)
        except MiaError as exc:
            out.failed[item.rel] = exc.message
            continue
        if item.unreadable:  # counted while the file was written (or found to be empty)
            out.unreadable[item.rel] = item.unreadable
        if stats is None:
            continue
        out.written.append(path)
        out.rows[item.rel] = stats.rows
        if stats.formula_cells:
            out.formula_cells[item.rel] = stats.formula_cells
        if path.parent == export_dir:
            top_level.append(path)
    try:
        workbook = write_summary_workbook(export_dir, top_level, delimiter)
    except MiaError as exc:
        out.failed[sparrow.SUMMARY_WORKBOOK] = exc.message
    else:
        if workbook is not None:
            out.written.append(workbook)
    return out


def all_records(runs: Sequence[SearchRun]) -> UniqueRecords:
    """Every search's records, each Id once, in the searches' order: a view that reads the MailItemsAccessed
    searches' evidence files again on each pass (``record_views``)."""
    return UniqueRecords([run.records for run in runs])


def mail_items_files(runs: Sequence[SearchRun]) -> list[Path]:
    """The evidence files holding MailItemsAccessed records, in the searches' order: what the analysis reads,
    as ``mia analyze`` reads files (a record found by several searches is one record: the analysis removes the
    other copies and counts them)."""
    return [run.result.path for run in runs
            if run.result is not None and run.result.path.exists()
            and any(af.operation_of(r) == "mailitemsaccessed" for r in run.records)]  # fmt: skip
