"""PROOF: ``mia collect`` killed with SIGKILL mid-run (a real subprocess) resumes to the identical set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.backend import SimOptions, tenant_for

ARGS = [
    "collect", "--sim", "--sim-records", "14000", "--sim-seed", "4", "--transport", "http", "--auth", "basic",
    "--start", "2026-10-01", "--end", "2026-10-31", "--concurrency", "1", "--quiet",
    # One session holds a whole type: four types are four streams, four windows one after the other.
    "--record-type", "ExchangeItemAggregated", "--record-type", "AzureActiveDirectoryStsLogon",
    "--record-type", "SharePointFileOperation", "--record-type", "ExchangeItem",
]
TYPES = [50, 15, 6, 2]


def _run(out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mia_bridge.cli.app", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_mid_run_then_rerun_gives_the_complete_identical_set(tmp_path: Path) -> None:
    case = tmp_path / "case"
    journal = case / "state" / "ual.journal.jsonl"
    proc = _run(case)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: make the tenant bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = len(journal.read_text().splitlines())
    finished = _run(case)
    _, err = finished.communicate(timeout=120)
    assert finished.returncode == 0, err.decode()
    assert len(journal.read_text().splitlines()) > killed_at
    conn = ConnectionSettings()
    tenant = tenant_for(conn, SimOptions(records=14000, seed=4))
    truth = tenant.query_truth(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 10, 31, tzinfo=UTC),
                               record_types=TYPES)
    got = read_records(case / "evidence" / "ual.jsonl")
    assert len(got) == len({r["Id"] for r in got})  # no record written twice across the kill
    assert {r["Id"] for r in got} == {r["Id"] for r in truth}
    assert verify_case(case).ok
