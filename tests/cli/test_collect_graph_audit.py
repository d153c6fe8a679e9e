"""PROOF: ``mia collect --sim --backend rest --source graph-audit`` end to end: same records as ``--source ual``,
clear refusals, and a SIGKILLed run (a real subprocess) that a rerun completes to the identical set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.cli.app import main
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.backend import SimOptions, tenant_for

SIM = ["--sim", "--backend", "rest", "--sim-records", "3000", "--sim-seed", "2"]
PERIOD = ["--start", "2026-10-01", "--end", "2026-10-31"]


def _ids(path: Path) -> set[str]:
    return {r["Id"] for r in read_records(path)}


def test_graph_audit_and_ual_collect_the_same_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for source in ("graph-audit", "ual"):
        out = tmp_path / source
        assert main(["collect", *SIM, *PERIOD, "--source", source, "--out", str(out), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["complete"] and summary["queries"]["ual"]["counts"]["unique"] == 3000
        assert main(["verify", str(out)]) == 0
        capsys.readouterr()
    graph, ual = (_ids(tmp_path / name / "evidence" / "ual.jsonl") for name in ("graph-audit", "ual"))
    assert graph == ual


def test_bad_source_options_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect", *SIM, *PERIOD, "--source", "purview", "--out", str(tmp_path / "a")]) == 2
    assert "expected one of ual, graph-audit" in capsys.readouterr().err
    assert main(["collect", *SIM, *PERIOD, "--service", "Exchange", "--out", str(tmp_path / "b")]) == 2
    assert "--source graph-audit" in capsys.readouterr().err
    psrp = ["--sim", "--transport", "http", "--auth", "basic", "--sim-records", "100"]
    assert main(["collect", *psrp, *PERIOD, "--source", "graph-audit", "--out", str(tmp_path / "c")]) == 2
    assert "needs --backend rest" in capsys.readouterr().err


ARGS = [
    "collect", "--sim", "--backend", "rest", "--source", "graph-audit", "--sim-records", "60000", "--sim-seed", "4",
    *PERIOD, "--concurrency", "1", "--quiet",
]


def _run(out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mia_bridge.cli.app", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_mid_run_then_rerun_gives_the_complete_identical_set(tmp_path: Path) -> None:
    case = tmp_path / "case"
    journal = case / "state" / "ual.journal.jsonl"
    queries = case / "state" / "ual.graph-queries.jsonl"
    proc = _run(case)
    deadline = time.monotonic() + 120
    # kill once the query is created and journalled, while its records are being paged
    while time.monotonic() < deadline and proc.poll() is None:
        if queries.exists() and queries.read_text().endswith("\n"):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: make the tenant bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = len(journal.read_text().splitlines()) if journal.exists() else 0
    finished = _run(case)
    _, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, err.decode()
    assert len(journal.read_text().splitlines()) > killed_at
    # the query of the killed run belonged to that run's simulator: the rerun found it gone and searched again
    events = [json.loads(line) for line in queries.read_text().splitlines()]
    assert [e["event"] for e in events] == ["created", "dropped", "created"]
    tenant = tenant_for(ConnectionSettings(), SimOptions(records=60000, seed=4))
    truth = tenant.query_truth(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 10, 31, tzinfo=UTC))
    got = read_records(case / "evidence" / "ual.jsonl")
    assert len(got) == len({r["Id"] for r in got})  # no record written twice across the kill
    assert {r["Id"] for r in got} == {r["Id"] for r in truth}
    assert verify_case(case).ok
