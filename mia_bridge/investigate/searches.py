"""The searches of an investigation: planned with their skip reasons, collected one by one, exported.

Each search is collected on its own (one denied search does not lose the rest) through the
collection engine, which writes and hashes the raw records before anything reads them. The Sparrow
files are then written from those records: rows of searches sharing a file (8a/8b/8c) go into one
file once each, the SAML search keeps only the flagged domains' users, as Sparrow's filter did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.collect.engine import CollectOptions, Progress, QueryResult, collect
from mia_bridge.errors import MiaError
from mia_bridge.evidence.store import read_records
from mia_bridge.exports import sparrow
from mia_bridge.investigate import audit_fields as af
from mia_bridge.investigate.directory import DirectoryData
from mia_bridge.investigate.license import LicenseDecision
from mia_bridge.investigate.plan import (
    SAML_SEARCH,
    SPARROW_TENANT_SEARCHES,
    SearchSpec,
    app_searches,
    flagged_federated_domains,
    mailbox_searches,
    saml_domain_filter,
)
from mia_bridge.investigate.steps import StepLog, StepOutcome, StepStatus


@dataclass
class SearchRun:
    """One planned search: its spec, its collection result, or why it did not run."""

    spec: SearchSpec
    result: QueryResult | None = None
    skipped: str = ""
    error: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)


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
    flagged = flagged_federated_domains(directory.domains)
    if flagged:
        runs.insert(5, SearchRun(SAML_SEARCH))
    else:
        reason = "no federated domain without MFA (Sparrow skips this search then)"
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
        run.records = read_records(run.result.path) if run.result.path.exists() else []
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


def write_sparrow_exports(
    export_dir: Path, runs: Sequence[SearchRun], directory: DirectoryData
) -> tuple[list[Path], dict[str, int]]:
    """Sparrow's CSVs (rows appended per file, as Sparrow's -Append did), Domain_List, Graph permissions, workbook."""
    flagged = flagged_federated_domains(directory.domains)
    per_file: dict[str, list[Mapping[str, Any]]] = {}
    workloads: dict[str, str] = {}
    for run in runs:
        spec = run.spec
        if not spec.sparrow_file or not spec.workload or run.result is None:
            continue
        records: Sequence[Mapping[str, Any]] = run.records
        if spec is SAML_SEARCH:
            records = saml_domain_filter(records, flagged)
        per_file.setdefault(spec.sparrow_file, []).extend(records)
        workloads[spec.sparrow_file] = spec.workload
    written: list[Path] = []
    rows: dict[str, int] = {}
    for rel, records in per_file.items():
        unique = af.unique_by_id(records)  # 8a/8b/8c can return the same sign-in; list it once
        path = export_dir / rel
        count = sparrow.write_sparrow_csv(path, unique, sparrow.WORKLOAD_COLUMNS[workloads[rel]])
        rows[rel] = count
        if count:
            written.append(path)
    if sparrow.write_domain_list(export_dir / sparrow.DOMAIN_LIST_CSV, directory.domains):
        written.append(export_dir / sparrow.DOMAIN_LIST_CSV)
    if sparrow.write_graph_permissions(export_dir / sparrow.GRAPH_PERMISSIONS_CSV, directory.graph_permissions):
        written.append(export_dir / sparrow.GRAPH_PERMISSIONS_CSV)
    workbook = sparrow.write_summary_workbook(export_dir)
    if workbook is not None:
        written.append(workbook)
    return written, rows




def all_records(runs: Sequence[SearchRun]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for run in runs:
        for record in run.records:
            rid = af.record_id(record)
            if rid in seen:
                continue
            seen.add(rid)
            out.append(record)
    return out
