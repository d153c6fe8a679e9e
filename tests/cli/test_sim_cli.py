"""`mia sim serve` as a real subprocess: READY line, then plain pypsrp connects and searches."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan

from mia_bridge.bridge.clixml import output_to_record
from mia_bridge.cli.app import main
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION, DEFAULT_THUMBPRINT

PASSWORD = "sim-cli-pw"


def _start(args: list[str], env_password: str | None = PASSWORD) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("MIA_SIM_PASSWORD", None)
    if env_password is not None:
        env["MIA_SIM_PASSWORD"] = env_password
    return subprocess.Popen(
        [sys.executable, "-m", "mia_bridge.cli.app", "sim", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(params=[["--quirk", "no-plain-cap"], []], ids=["no-plain-cap", "default-quirks"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    truth = tmp_path / "truth.jsonl"
    proc = _start(["--records", "1500", "--seed", "5", "--auth", "ntlm", "--dump-truth", str(truth),
                   *request.param])
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY "), proc.stderr.read() if proc.stderr else line
        yield line.split(" ", 1)[1], proc, truth
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_plain_pypsrp_runs_search_unified_audit_log(served: tuple[str, subprocess.Popen[str], Path]) -> None:
    url, proc, truth = served
    assert url.startswith("http://127.0.0.1:") and url.endswith("/wsman")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    wsman = WSMan("127.0.0.1", port=port, ssl=False, auth="ntlm", username="mia", password=PASSWORD)
    with wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Connect-ExchangeOnline").add_parameters(
            {"AppId": DEFAULT_APP_ID, "Organization": DEFAULT_ORGANIZATION,
             "CertificateThumbprint": DEFAULT_THUMBPRINT, "ShowBanner": False}
        )
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED, [str(e) for e in ps.streams.error]
        ps = PowerShell(pool)
        start, end = _element("2000-01-01T00:00:00Z"), _element("2100-01-01T00:00:00Z")
        ps.add_cmdlet("Search-UnifiedAuditLog").add_parameters({"StartDate": start, "EndDate": end,
                                                                "ResultSize": 5000})
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED, [str(e) for e in ps.streams.error]
    records = [output_to_record(o) for o in ps.output]
    truth_ids = {json.loads(line)["Id"] for line in truth.read_text().splitlines()}
    assert len(truth_ids) == 1500
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert "simulator stopped" in log
    if "plain-cap" in log.split("quirks:", 1)[1].splitlines()[0]:
        # The default: a plain call silently stops at 120 rows, whatever -ResultSize says.
        assert len(records) == 120 and {r["Identity"] for r in records} < truth_ids
    else:
        assert {r["Identity"] for r in records} == truth_ids
    assert all(isinstance(r["CreationDate"], dt.datetime) for r in records)


def _element(text: str) -> object:
    import xml.etree.ElementTree as ET

    element = ET.Element("DT")
    element.text = text
    return element


def test_sigint_stops_the_https_simulator(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    proc = _start(["--records", "10", "--transport", "https", "--auth", "basic", "--ca-out", str(ca)])
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY https://127.0.0.1:")
        assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_password_only_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIA_SIM_PASSWORD", raising=False)
    assert main(["sim", "serve", "--records", "1"]) == 2
    assert "MIA_SIM_PASSWORD" in capsys.readouterr().err


def test_non_loopback_host_is_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIA_SIM_PASSWORD", PASSWORD)
    assert main(["sim", "serve", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
