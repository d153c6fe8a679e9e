"""verify_case: modified, truncated and missing files, extra registered files, counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mia_bridge.collect import AuditQuery, CollectOptions, collect
from mia_bridge.errors import ManifestError
from mia_bridge.evidence import add_files, verify_case
from mia_bridge.sim.direct import DirectSimBackend
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def case(tmp_path: Path) -> Path:
    tenant = build_tenant(TenantConfig(seed=5), scenario="compromised", records=3000, start=START, days=10)
    with DirectSimBackend(tenant) as backend:
        collect(backend, [AuditQuery("all", START, START + timedelta(days=10))], tmp_path, CollectOptions())
    assert verify_case(tmp_path).ok
    return tmp_path


def test_manifest_records_what_was_collected(case: Path) -> None:
    data = json.loads((case / "manifest.json").read_text())
    entry = data["files"]["evidence/all.jsonl"]
    assert entry["records"] == data["collection"]["queries"]["all"]["counts"]["unique"] > 0
    assert len(entry["sha256"]) == 64
    assert data["tool"]["name"] == "mia-bridge" and data["backend"]["backend"] == "sim-direct"
    assert data["collection"]["queries"]["all"]["windows"]


def test_modified_file_is_detected(case: Path) -> None:
    path = case / "evidence" / "all.jsonl"
    text = path.read_text()
    path.write_text(text.replace('"MailItemsAccessed"', '"MailItemsAccessex"', 1))
    problems = verify_case(case).problems
    assert any("SHA-256" in p for p in problems) and path.stat().st_size == len(text.encode())


def test_truncated_file_is_detected(case: Path) -> None:
    path = case / "evidence" / "all.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    problems = verify_case(case).problems
    assert any("bytes" in p for p in problems) and any("records" in p for p in problems)


def test_missing_file_is_detected(case: Path) -> None:
    (case / "evidence" / "all.jsonl").unlink()
    assert verify_case(case).problems == ["evidence/all.jsonl: missing"]


def test_files_added_later_are_verified_too(case: Path) -> None:
    report = case / "report.html"
    report.write_text("<html>ok</html>")
    add_files(case, [report], kind="report")
    assert verify_case(case).ok and "report.html" in verify_case(case).checked
    report.write_text("<html>changed</html>")
    assert any(p.startswith("report.html") for p in verify_case(case).problems)


def test_no_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest"):
        verify_case(tmp_path)
