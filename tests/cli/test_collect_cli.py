"""``mia collect`` end to end through the real pypsrp client: summary, exit codes, verify, canary secrets."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import TenantConfig

START = datetime(2026, 10, 1, tzinfo=UTC)
SIM = ["--sim", "--transport", "http", "--auth", "basic", "--sim-records", "2000"]
PERIOD = ["--start", "2026-10-01", "--end", "2026-10-31"]


def test_collect_json_summary_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case"
    assert main(["collect", *SIM, *PERIOD, "--out", str(case), "--json", "--operations", "MailItemsAccessed"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    ual = summary["queries"]["ual"]
    assert summary["complete"] and ual["counts"]["unique"] > 0 and ual["gaps"] == []
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "query_started" and events[-1]["event"] == "query_finished"
    assert main(["verify", str(case)]) == 0
    assert "OK" in capsys.readouterr().out
    evidence = case / "evidence" / "ual.jsonl"
    evidence.write_bytes(evidence.read_bytes()[:-10])
    assert main(["verify", str(case)]) == 1
    assert "MISMATCH evidence/ual.jsonl" in capsys.readouterr().err


def test_relative_case_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A case folder given relative to the working directory is written and verified in place."""
    monkeypatch.chdir(tmp_path)
    assert main(["collect", *SIM, *PERIOD, "--out", "cases/rel", "--quiet"]) == 0
    assert (tmp_path / "cases" / "rel" / "manifest.json").exists()
    assert main(["verify", "cases/rel"]) == 0


def test_quiet_gzip_and_bad_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case"
    assert main(["collect", *SIM, *PERIOD, "--out", str(case), "--quiet", "--gzip"]) == 0
    assert capsys.readouterr().err.count("\n") <= 1  # at most the loopback Basic-auth note
    assert (case / "evidence" / "ual.jsonl.gz").exists() and main(["verify", str(case)]) == 0
    assert main(["collect", *SIM, "--start", "yesterday", "--end", "2026-10-31", "--out", str(case)]) == 2
    assert "--start: 'yesterday' is not a date" in capsys.readouterr().err


def test_ingestion_off_fails_fast_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["collect", *SIM, "--sim-ingestion-off", *PERIOD, "--out", str(tmp_path / "c"), "--quiet"])
    assert code == 1
    assert "ingestion is turned off" in capsys.readouterr().err


def test_canary_secrets_never_reach_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WinRM and certificate passwords from the environment: not in evidence, manifest, state or output."""
    winrm_canary = "CanaryWinRM-7f3a9c1e5b"
    cert_canary = "CanaryCert-2d8e4b6a0f"
    config = TenantConfig(seed=9, certificate_password=cert_canary)
    tenant = build_tenant(config, scenario="compromised", records=2000, start=START, days=30)
    monkeypatch.setenv("MIA_WINRM_PASSWORD", winrm_canary)
    monkeypatch.setenv("MIA_CERT_PASSWORD", cert_canary)
    case = tmp_path / "case"
    mailbox = tenant.directory.mailboxes[0]["UserPrincipalName"]
    caplog.set_level(logging.DEBUG)
    with SimServer(tenant, transport="http", auth="basic", username="mia", password=winrm_canary) as server:
        code = main([
            "collect", "--server", "127.0.0.1", "--port", str(server.port), "--transport", "http", "--auth", "basic",
            "--username", "mia", "--organization", config.organization, "--app-id", config.app_id,
            "--certificate-path", config.certificate_path, *PERIOD, "--out", str(case), "--json",
            "--mailbox-audit", mailbox,
        ])
        received = [params for name, params in server.calls if name == "Connect-ExchangeOnline"]
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert received and "CertificatePassword" in received[0]  # the secret did travel, as a SecureString
    outputs = {"stdout": captured.out, "stderr": captured.err, "logs": caplog.text}
    files = [p for p in case.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"ual.jsonl", "manifest.json", f"mailbox_audit.{mailbox}.jsonl"} <= names, names
    for path in files:
        outputs[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for where, text in outputs.items():
        assert winrm_canary not in text, where
        assert cert_canary not in text, where


def test_retired_mailbox_audit_cmdlet_is_reported_and_collection_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["collect", *SIM, "--sim-mailbox-audit-retired", *PERIOD, "--out", str(tmp_path / "c"), "--json",
                 "--mailbox-audit", "someone@contoso.com"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["complete"]
    [item] = summary["mailbox_audit"]
    assert item["status"] == "retired" and "unified audit log only" in item["detail"]
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["mailbox_audit"]["someone@contoso.com"]["status"] == "retired"
