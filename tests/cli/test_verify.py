"""``mia verify``: exit 0 on a sound case, 1 with one line per mismatch, a clear error without a manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.collect import AuditQuery, collect
from mia_bridge.sim.direct import DirectSimBackend
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

START = datetime(2026, 10, 1, tzinfo=UTC)


def _case(tmp_path: Path) -> Path:
    tenant = build_tenant(TenantConfig(seed=2), scenario="compromised", records=1500, start=START, days=5)
    with DirectSimBackend(tenant) as backend:
        collect(backend, [AuditQuery("all", START, START + timedelta(days=5))], tmp_path)
    return tmp_path


def test_verify_ok_then_each_kind_of_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = _case(tmp_path)
    assert main(["verify", str(case), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    (case / "evidence" / "all.jsonl").rename(case / "evidence" / "moved.jsonl")
    assert main(["verify", str(case)]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH evidence/all.jsonl: missing" in captured.err and "FAILED" in captured.out


def test_verify_without_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path)]) == 1
    assert "no manifest" in " ".join(capsys.readouterr().err.split())  # rich wraps long lines
