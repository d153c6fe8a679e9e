"""`mia investigate` holds no MailItemsAccessed record as a dict for the run (issue 14): a MailItemsAccessed
search's records are read from its evidence file on each pass, and what reads them (findings, attribution, the
report's timeline chart, Sparrow's files, the timeline) gives what it gave over the records held in a list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.collect.engine import CollectOptions, Progress
from mia_bridge.evidence.store import read_records
from mia_bridge.investigate.findings import FindingInputs, build_findings
from mia_bridge.investigate.pipeline import InvestigateOptions, InvestigationResult, run_investigation
from mia_bridge.investigate.record_views import EvidenceRecords
from mia_bridge.investigate.report_model import record_points
from mia_bridge.investigate.searches import all_records
from mia_bridge.investigate.steps import StepOutcome
from mia_bridge.records import fields as af
from mia_bridge.report.html import TimelinePoint, build_timeline_chart
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.scenario import DEFAULT_START, build_tenant
from mia_bridge.sim.tenant import TenantConfig


class _UI:
    progress: Progress | None = None

    def confirm(self, question: str) -> bool:
        return True

    def outcome(self, outcome: StepOutcome) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> InvestigationResult:
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=1500)
    options = InvestigateOptions(tenant="contoso.onmicrosoft.com", out_dir=tmp_path_factory.mktemp("s") / "case",
                                 start=DEFAULT_START, end=DEFAULT_START + timedelta(days=30), all_apps=True,
                                 collect_options=CollectOptions(concurrency=2))  # fmt: skip
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        return run_investigation(session.backend, options, _UI())


def _held(result: InvestigationResult) -> list[dict[str, Any]]:
    """Every search's records read whole, each Id once: what the run held before."""
    seen: set[str] = set()
    out = []
    for run in result.searches:
        if run.result is None or not run.result.path.exists():
            continue
        for record in read_records(run.result.path):
            if af.record_id(record) not in seen:
                seen.add(af.record_id(record))
                out.append(record)
    return out


def test_mail_items_searches_are_streamed_from_their_evidence_files(case: InvestigationResult) -> None:
    mail = [run for run in case.searches if run.spec.mail_items and run.result is not None]
    assert mail, "the scenario collects MailItemsAccessed"
    for run in mail:
        assert isinstance(run.records, EvidenceRecords) and run.records.path == run.result.path  # type: ignore[union-attr]
        assert list(run.records) == read_records(run.records.path) == list(run.records)  # every pass the same
        assert len(run.records) == run.result.counts.unique  # type: ignore[union-attr]
    others = [run for run in case.searches if not run.spec.mail_items and run.result is not None]
    assert all(isinstance(run.records, list) for run in others)
    assert list(all_records(case.searches)) == _held(case)


def test_findings_over_the_streamed_records_equal_those_over_the_list(case: InvestigationResult) -> None:
    assert case.findings is not None and case.findings.attacker_findings
    inputs: dict[str, Any] = {"tenant_domains": {"contoso.onmicrosoft.com", "contoso.com"},
                              "flagged_saml_domains": set(), "suspicious_ips": [], "suspicious_apps": []}  # fmt: skip
    streamed = build_findings(FindingInputs(records=all_records(case.searches), **inputs))
    held = build_findings(FindingInputs(records=_held(case), **inputs))
    assert [f.to_dict() for f in streamed.findings] == [f.to_dict() for f in held.findings]
    assert streamed.exposed == held.exposed and streamed.synced_folders == held.synced_folders
    assert streamed.throttled == held.throttled and streamed.context == held.context
    assert any(f.category == "mail-access" for f in streamed.findings)


def test_the_report_chart_counts_the_records_as_one_point_each(case: InvestigationResult) -> None:
    records = _held(case)
    markers = [f.first_seen for f in case.findings.findings if f.first_seen]  # type: ignore[union-attr]
    finding_points = [TimelinePoint(when, "finding", "high") for when in markers]
    one_each = [TimelinePoint(w, "") for w in (af.record_time(r) for r in records) if w]
    assert build_timeline_chart([*record_points(all_records(case.searches), markers), *finding_points]) == \
        build_timeline_chart([*one_each, *finding_points])
    assert record_points([], markers) == []


def test_mailbox_figures_are_aggregates_over_the_analysis_files(tmp_path: Path) -> None:
    """Per investigated mailbox: throttled windows, distinct synced folders (sorted) and distinct bound ids,
    compared lower-cased with the name as given; nulls not counted; a mailbox with nothing gets zeros."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mia_bridge.investigate.pipeline import _mailbox_figures, _MailboxFigures

    files = {name: tmp_path / f"{name}.parquet" for name in ("items", "synced_folders", "throttled_windows")}
    pq.write_table(pa.table({"mailbox": ["Bob@x", "bob@x", "bob@x", "eve@x", None],
                             "internet_message_id": ["<1>", "<1>", "<2>", "<3>", "<4>"]}), files["items"])
    pq.write_table(pa.table({"mailbox": ["bob@x", "BOB@x", "bob@x", "eve@x"],
                             "folder_path": ["\\Inbox", "Archive", "\\Inbox", None]}), files["synced_folders"])
    pq.write_table(pa.table({"mailbox": ["eve@x", "Eve@x", "bob@x"]}), files["throttled_windows"])
    assert _mailbox_figures(files, ("bob@x", "eve@x", "nobody@x")) == {
        "bob@x": _MailboxFigures(1, ["Archive", "\\Inbox"], 2),
        "eve@x": _MailboxFigures(2, [], 1),
        "nobody@x": _MailboxFigures(0, [], 0),
    }
    assert _mailbox_figures(files, ()) == {}
