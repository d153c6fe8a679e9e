"""The sealed case: unlisted files and unsafe manifest paths reported, the manifest's SHA-256 printed, the
optional HMAC signature, private modes, and no write through a symlink."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.collect import AuditQuery, collect
from mia_bridge.errors import EvidenceError
from mia_bridge.evidence import rehash, verify_case
from mia_bridge.evidence.seal import KEY_ENV, SIGNATURE_NAME
from mia_bridge.sim.direct import DirectSimBackend
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

START = datetime(2026, 10, 1, tzinfo=UTC)
QUERY = AuditQuery("all", START, START + timedelta(days=5))
KEY = "k" * 32


def _collect(case: Path) -> Path:
    tenant = build_tenant(TenantConfig(seed=2), scenario="compromised", records=1200, start=START, days=5)
    with DirectSimBackend(tenant) as backend:
        collect(backend, [QUERY], case)
    return case


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return _collect(tmp_path / "case")


def _drop_a_record_and_rehash(case: Path) -> None:
    """What an attacker with write access (and no key) does: remove one record, update the manifest."""
    path = case / "evidence" / "all.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:]))
    data = json.loads((case / "manifest.json").read_text())
    data["files"]["evidence/all.jsonl"]["records"] -= 1
    data["collection"]["queries"]["all"]["counts"]["unique"] -= 1
    data["collection"]["queries"]["all"]["counts"]["retrieved"] -= 1
    (case / "manifest.json").write_text(json.dumps(data))
    rehash(case)


def test_unlisted_files_are_reported(case: Path) -> None:
    (case / "evidence" / "planted.jsonl").write_text('{"Id": "x"}\n')
    report = verify_case(case)
    assert report.unlisted == ["evidence/planted.jsonl"] and not report.ok


def test_manifest_paths_outside_the_case_are_refused_never_read(case: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (case / "evidence" / "link.jsonl").symlink_to(outside)
    entry = {"kind": "output", "bytes": outside.stat().st_size,
             "sha256": hashlib.sha256(outside.read_bytes()).hexdigest()}  # a correct hash: still refused
    data = json.loads((case / "manifest.json").read_text())
    for rel in (str(outside), "../outside.txt", "evidence/../../outside.txt", "C:\\Windows\\win.ini",
                "evidence/link.jsonl"):
        data["files"][rel] = dict(entry)
    (case / "manifest.json").write_text(json.dumps(data))
    problems = verify_case(case).problems
    for rel in (str(outside), "../outside.txt", "evidence/../../outside.txt", "C:\\Windows\\win.ini",
                "evidence/link.jsonl"):
        assert f"{rel}: refused" in " ".join(problems)


def test_verify_and_the_run_print_the_same_manifest_sha256(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case"
    sim = ["--sim", "--sim-records", "600"]
    assert main(["collect", *sim, "--start", "2026-10-01", "--end", "2026-10-31", "--out", str(case)]) == 0
    printed_by_run = capsys.readouterr().err
    seal = hashlib.sha256((case / "manifest.json").read_bytes()).hexdigest()
    assert f"manifest SHA-256: {seal}" in printed_by_run
    assert main(["verify", str(case)]) == 0
    assert f"manifest SHA-256: {seal}" in capsys.readouterr().out
    assert main(["verify", str(case), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest_sha256"] == seal


def test_unsigned_case_altered_with_its_manifest_passes_verify_but_not_the_pin(case: Path) -> None:
    pinned = verify_case(case).manifest_sha256
    _drop_a_record_and_rehash(case)
    report = verify_case(case)
    assert report.ok and report.signature == "unsigned"  # what a key (or the pin) is for
    assert report.manifest_sha256 != pinned


def test_signed_case_altered_with_its_manifest_fails_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    case = _collect(tmp_path / "case")
    assert (case / SIGNATURE_NAME).is_file()
    assert verify_case(case).signature == "valid" and verify_case(case).ok
    monkeypatch.delenv(KEY_ENV)
    _drop_a_record_and_rehash(case)  # without the key
    assert verify_case(case).signature == "not checked"
    monkeypatch.setenv(KEY_ENV, KEY)
    report = verify_case(case)
    assert report.signature == "invalid" and any("signature does not match" in p for p in report.problems)
    monkeypatch.setenv(KEY_ENV, "another key of enough length")
    assert verify_case(case).signature == "invalid"


def test_key_file_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key = tmp_path / "case.key"
    key.write_text(KEY + "\n")
    case = tmp_path / "case"
    sim = ["--sim", "--sim-records", "600"]
    period = ["--start", "2026-10-01", "--end", "2026-10-31"]
    assert main(["collect", *sim, *period, "--out", str(case), "--quiet", "--key", str(key)]) == 0
    assert (case / SIGNATURE_NAME).is_file()
    assert main(["verify", str(case), "--key", str(key)]) == 0
    assert "signature: valid" in capsys.readouterr().out
    assert main(["verify", str(case)]) == 0  # no key: signed, not checked (said so)
    assert "not checked" in capsys.readouterr().out
    other = tmp_path / "other.key"
    other.write_text("z" * 32)
    assert main(["verify", str(case), "--key", str(other)]) == 1
    assert "signature does not match" in capsys.readouterr().err


def test_case_folders_are_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        case = _collect(tmp_path / "case")
    finally:
        os.umask(old)
    for path in [case, *case.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.parametrize("planted", ["evidence/all.jsonl", "state/all.journal.jsonl", "state/all.query.tmp",
                                     "evidence"])
def test_a_dangling_symlink_never_redirects_a_write(tmp_path: Path, planted: str) -> None:
    case = tmp_path / "case"
    target = tmp_path / "outside" / "stolen"
    (tmp_path / "outside").mkdir()
    link = case / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    with pytest.raises(EvidenceError, match="symbolic link"):
        _collect(case)
    assert not target.exists()  # nothing was written outside the case


def test_a_symlink_at_the_manifest_is_replaced_not_written_through(tmp_path: Path) -> None:
    case = tmp_path / "case"
    target = tmp_path / "stolen.json"
    case.mkdir()
    (case / "manifest.json").symlink_to(target)
    _collect(case)
    assert not target.exists() and not (case / "manifest.json").is_symlink()


def test_analysis_outputs_refuse_a_symlink(tmp_path: Path) -> None:
    from mia_bridge.analysis.api import AnalysisOptions, OutputWriter, analyze_files

    out = tmp_path / "analysis"
    out.mkdir()
    target = tmp_path / "stolen.csv"
    (out / "items.csv").symlink_to(target)
    sample = Path(__file__).resolve().parents[2] / "mia_bridge" / "data" / "demo"
    inputs = sorted(p for p in sample.iterdir() if p.suffix == ".jsonl")[:1]
    with pytest.raises(EvidenceError, match="symbolic link"), OutputWriter(out) as writer:
        writer.finish(analyze_files(inputs, AnalysisOptions(), writer))
    assert not target.exists()
