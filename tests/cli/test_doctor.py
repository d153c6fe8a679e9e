"""`mia doctor` against the simulated tenant over the real pypsrp client."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.cli.commands.doctor import FAIL, OK, WARN, run_checks
from mia_bridge.cli.connection import ConnectionSettings, SimOptions, open_connection


def _statuses(conn: ConnectionSettings, simulator: SimOptions) -> dict[str, str]:
    with open_connection(conn, simulator) as exo:
        return {c.name: c.status for c in run_checks(exo)}


def test_healthy_tenant_is_all_ok() -> None:
    statuses = _statuses(ConnectionSettings(), SimOptions(records=100))
    assert set(statuses.values()) == {OK}
    assert list(statuses) == [
        "WinRM endpoint and auth", "ExchangeOnlineManagement module", "Exchange Online connection", "Audit roles",
        "Audit log search role", "Mailbox audit log search", "Unified audit log ingestion", "Audit Premium licence",
        "Mailbox auditing",
    ]


def test_rest_backend_is_all_ok_without_a_jump_host() -> None:
    statuses = _statuses(ConnectionSettings(backend="rest"), SimOptions(records=100))
    assert set(statuses.values()) == {OK}
    assert next(iter(statuses)) == "Admin API endpoint and token"
    assert "Unified audit log ingestion" in statuses and "Audit Premium licence" in statuses


def test_problems_are_reported_row_by_row() -> None:
    statuses = _statuses(ConnectionSettings(), SimOptions(records=100, ingestion=False, premium=False,
                                                            mailbox_audit_retired=True))
    assert statuses["Unified audit log ingestion"] == FAIL
    assert statuses["Audit Premium licence"] == WARN
    assert statuses["Mailbox audit log search"] == WARN
    assert statuses["Exchange Online connection"] == OK


def test_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--sim", "--sim-records", "50"]) == 0
    out = capsys.readouterr().out
    # Negotiate to the simulator falls back to NTLM (no KDC), and the row says so.
    assert "mia doctor" in out and "negotiate: logged on with ntlm" in " ".join(out.replace("│", " ").split())
    assert main(["doctor", "--sim", "--sim-records", "50", "--sim-ingestion-off"]) == 3


def test_unreachable_jump_host_fails_with_exit_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    import socket

    config = tmp_path / "mia.toml"
    config.write_text("[jump_host]\nreconnection_retries = 0\n")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MIA_WINRM_PASSWORD", "doctor-pw")
    rc = main(["doctor", "--server", "127.0.0.1", "--port", str(port), "--transport", "http", "--auth", "ntlm",
               "--username", "mia", "--config", str(config)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "refused" in captured.out
    assert "doctor-pw" not in captured.out + captured.err
