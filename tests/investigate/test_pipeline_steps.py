"""The investigation as a list of steps over one Case: every file named and labelled by the layout, one schema
for ``exposed_messages.csv`` whichever steps ran, frozen options, and a failing step that keeps what the
earlier steps recorded (investigation.json written, the failure named, the manifest verifying, exit 1).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from test_investigate_sim import END, RecordingUI, _options, _run

from mia_bridge.cli.app import main
from mia_bridge.enrich.outputs import EXPOSED_COLUMNS
from mia_bridge.errors import IngestionDisabledError
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.layout import entry_of, label_of
from mia_bridge.investigate.offline_run import run_offline_investigation
from mia_bridge.investigate.pipeline import SHARED_STEPS, TENANT_STEPS, InvestigateOptions
from mia_bridge.sim.scenario import DEFAULT_START, build_tenant
from mia_bridge.sim.tenant import TenantConfig

RECORDS = 800


def _investigation(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((case / "investigation.json").read_text(encoding="utf-8"))
    return data


def _header_and_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("steps") / "demo"
    assert main(["investigate", "--demo", "--out", str(case)]) == 0
    return case


def test_every_file_of_the_case_is_named_by_the_layout_and_labelled_in_the_manifest(demo_case: Path) -> None:
    files = [p.relative_to(demo_case).as_posix() for p in demo_case.rglob("*") if p.is_file()]
    assert [f for f in files if entry_of(f) is None] == []
    manifest = json.loads((demo_case / "manifest.json").read_text(encoding="utf-8"))
    labels = {rel: entry["label"] for rel, entry in manifest["files"].items()}
    assert labels["evidence/mia-mailitemsaccessed.jsonl"] == "raw evidence"
    assert labels["directory/license.json"] == "raw evidence"
    assert labels["enrich/raw/graph_messages.jsonl"] == "raw evidence"
    assert labels["exposed_messages.csv"] == "derived" and labels["report.html"] == "derived"
    assert {rel for rel, label in labels.items() if label == "chain of custody"} == {
        rel for rel in labels if rel.startswith("state/")}  # the manifest does not list itself
    assert all(label == label_of(rel).value for rel, label in labels.items())


def test_exposed_messages_has_the_one_schema_with_the_enrichment(demo_case: Path) -> None:
    header, rows = _header_and_rows(demo_case / "exposed_messages.csv")
    assert header == EXPOSED_COLUMNS
    assert rows and all(r["metadata_source"] != "none" for r in rows if r["exposure"] == "accessed")


def test_exposed_messages_has_the_same_schema_without_the_enrichment(tmp_path: Path) -> None:
    """From exports (no tenant: the affected-parties step is skipped) the rows come from the findings."""
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=RECORDS)
    assert tenant.truth is not None and tenant.truth.read_message_ids
    dump = tmp_path / "dump.jsonl"
    tenant.dump_truth(dump)
    options = InvestigateOptions(tenant="(from exports)", out_dir=tmp_path / "case", start=DEFAULT_START, end=END,
                                 exports=(dump,), all_apps=True)  # fmt: skip
    result = run_offline_investigation(options, RecordingUI())
    skip = next(o for o in result.steps if o.name == "Affected parties (message trace)")
    assert skip.status == "skipped"
    header, rows = _header_and_rows(tmp_path / "case" / "exposed_messages.csv")
    assert header == EXPOSED_COLUMNS
    assert {r["internet_message_id"] for r in rows} == tenant.truth.read_message_ids
    assert len(rows) == len(tenant.truth.read_message_ids)  # one row a message, as the enrichment writes them
    assert all(r["exposure"] == "accessed" and r["metadata_source"] == "none" and r["mailboxes"]
               and "affected-parties step did not run" in r["metadata_note"] for r in rows)  # fmt: skip
    assert verify_case(tmp_path / "case").ok


def test_exposed_messages_is_header_only_when_nothing_was_read(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(seed=11), scenario="benign", records=RECORDS)
    dump = tmp_path / "dump.jsonl"
    tenant.dump_truth(dump)
    options = InvestigateOptions(tenant="(from exports)", out_dir=tmp_path / "case", start=DEFAULT_START, end=END,
                                 exports=(dump,), all_apps=True)  # fmt: skip
    result = run_offline_investigation(options, RecordingUI())
    assert result.findings is not None and not result.findings.exposed
    header, rows = _header_and_rows(tmp_path / "case" / "exposed_messages.csv")
    assert header == EXPOSED_COLUMNS and rows == []


def test_options_are_frozen_and_the_result_has_the_settled_period(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=RECORDS)
    options = _options(tmp_path / "case", start=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.start = END  # type: ignore[misc]
    result = _run(tenant, options)
    assert options.start is None  # untouched: the licence step settled the period in the run's own options
    assert result.options is not None and result.options.start is not None and result.options.start < END
    assert _investigation(tmp_path / "case")["options"]["start"] == result.options.start.isoformat()


def test_a_failing_report_step_keeps_the_record_and_the_run_fails(tmp_path: Path) -> None:
    case = tmp_path / "case"
    (case / "report.html").mkdir(parents=True)  # the report cannot be written there
    assert main(["investigate", "--demo", "--out", str(case)]) == 1
    record = _investigation(case)
    report = next(s for s in record["steps"] if s["name"] == "Report")
    assert report["status"] == "failed" and "cannot write report" in report["reason"]
    assert record["summary"]["exit_code"] == 1 and record["summary"]["report"] is None
    # what the steps before it recorded is all there, registered, and the package verifies
    names = [s["name"] for s in record["steps"]]
    assert {"Findings", "MailItemsAccessed analysis", "Sparrow exports", "Timeline"} <= set(names)
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    assert {"investigation.json", "timeline.csv", "findings.json", "exposed_messages.csv"} <= set(manifest["files"])
    assert manifest["investigation"]["exit_code"] == 1
    assert manifest["investigation"]["steps"][-1]["name"] == "Report"
    assert verify_case(case).ok


def test_a_failing_needed_step_still_writes_the_record_then_stops(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(ingestion_enabled=False), scenario="compromised", records=RECORDS)
    with pytest.raises(IngestionDisabledError):
        _run(tenant, _options(tmp_path / "case"))
    record = _investigation(tmp_path / "case")
    assert [(s["name"], s["status"]) for s in record["steps"]] == [("Pre-flight: audit ingestion", "failed")]
    assert "ingestion" in record["steps"][0]["reason"].lower()
    assert not (tmp_path / "case" / "report.html").exists()
    assert verify_case(tmp_path / "case").ok


def test_every_step_says_what_it_does_and_records() -> None:
    for step in (*TENANT_STEPS, *SHARED_STEPS):
        assert step.name and step.does and step.records, step
    assert [s.name for s in SHARED_STEPS if s.always] == ["Register", "Investigation record"]
    assert SHARED_STEPS[-1].always  # the record is the last thing written, whatever failed before it


def test_from_exports_a_missing_input_is_recorded_and_stops_the_run(tmp_path: Path) -> None:
    from mia_bridge.errors import UsageError

    options = InvestigateOptions(tenant="(from exports)", out_dir=tmp_path / "case", start=DEFAULT_START, end=END,
                                 exports=(tmp_path / "absent.jsonl",))  # fmt: skip
    with pytest.raises(UsageError, match=r"absent\.jsonl: no such file"):
        run_offline_investigation(options, RecordingUI())
    steps = _investigation(tmp_path / "case")["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("Exports preserved", "failed")]
    assert verify_case(tmp_path / "case").ok
