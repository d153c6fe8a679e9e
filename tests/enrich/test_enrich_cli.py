"""``mia enrich`` end to end: the CLI's --sim tenant (the same seed and size as the case), exit codes, messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from enrich_simdata import offline_case

from mia_bridge.cli.app import main
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

RECORDS = 1500


def test_mia_enrich_on_a_case_from_the_simulated_tenant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = build_tenant(TenantConfig(seed=0), records=RECORDS)  # what --sim builds for these options
    case = offline_case(tenant, tmp_path / "case")
    rc = main(["enrich", str(case), "--sim", "--sim-records", str(RECORDS), "--allow-mailbox-metadata",
               "--hash-addresses", "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert tenant.truth is not None
    assert summary["counts"]["accessed_ids"] == len(tenant.truth.read_message_ids)
    # 0 when every message has metadata, 3 when some have none (the scenario's fixed dates age out of reach)
    assert rc == (0 if summary["counts"]["accessed_without_metadata"] == 0 else 3)
    with (case / "exposed_messages.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["internet_message_id"] for r in rows if r["exposure"] == "accessed"} == tenant.truth.read_message_ids
    assert tenant.truth.victims[0] not in (case / "exposed_messages.csv").read_text(encoding="utf-8")
    assert summary["redaction"]["hash_key"] in ("MIA_HASH_KEY", "random, this run only")


def test_mia_enrich_without_analysis_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["enrich", str(tmp_path), "--sim", "--sim-records", "200"])
    assert rc == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no MailItemsAccessed analysis" in err and "Traceback" not in err


def test_mia_investigate_exits_3_when_read_mail_has_no_parties(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--demo asks the mailbox by default; without it, the demo's read mail that never went through transport
    (or, later, mail past message trace's 90 days) has no sender/recipients: attention, exit 3."""
    rc = main(["investigate", "--demo", "--no-mailbox-metadata", "--sim-records", "800", "--out",
               str(tmp_path / "case"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    step = next(s for s in summary["steps"] if s["name"].startswith("Affected parties"))
    assert rc == summary["exit_code"] == 3
    assert step["attention"] and step["details"]["without_metadata"] > 0
    assert "WITHOUT sender/recipients" in step["reason"]
    assert summary["steps"] and all(not s["attention"] for s in summary["steps"] if s is not step)
