"""The bridge against the strict simulator (depth-1 serialization by default), on both endpoint kinds:
``plain`` (the cmdlets, nested data through ``ConvertTo-Json``) and ``jea`` (the shipped role capability's
functions on the MiaBridge endpoint). Real pypsrp over real HTTP throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.endpoint import decode_json_output, jea_call, jea_function, resolve_kind
from mia_bridge.cli.app import main
from mia_bridge.enrich.mailbox_metadata import MailboxMetadata
from mia_bridge.errors import BridgeError, CommandNotFoundError, ConfigError, UsageError
from mia_bridge.evidence.store import read_records
from mia_bridge.investigate.directory import collect_directory
from mia_bridge.investigate.license import detect_license
from mia_bridge.sim.backend import SimSession, sim_session
from mia_bridge.sim.mailflow import mailflow_of
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION, DEFAULT_THUMBPRINT, Tenant

KINDS = {"plain": "Microsoft.PowerShell", "jea": "MiaBridge"}


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=300)


@pytest.fixture(params=sorted(KINDS))
def session(request: pytest.FixtureRequest, tenant: Tenant) -> Iterator[SimSession]:
    conn = ConnectionSettings(transport="http", auth="basic", configuration_name=KINDS[request.param])
    with sim_session(conn, tenant=tenant) as opened:
        assert opened.backend.describe()["endpoint_kind"] == request.param
        yield opened


def test_licence_detection_finds_audit_premium(session: SimSession) -> None:
    facts = detect_license(session.backend, [])
    assert (facts.premium, facts.premium_skus, facts.sku_error) == (True, ["SPE_E5"], "")
    assert facts.mailbox_audit and not facts.mailbox_error


def test_graph_app_roles_are_named(session: SimSession, tmp_path: Path) -> None:
    data = collect_directory(session.backend, tmp_path)
    assert not data.errors
    rows = [row for row in data.graph_permissions if row]  # ApplicationGraphPermissions.csv's rows
    names = {(str(row["ApplicationDisplayName"]), str(row["Value"])) for row in rows}
    assert ("mia-bridge", "Organization.Read.All") in names
    assert any(value == "Mail.Read" for _, value in names)


def test_mailbox_metadata_has_senders_and_recipients(session: SimSession, tenant: Tenant) -> None:
    flow = mailflow_of(tenant)
    box = next(str(b["UserPrincipalName"]).lower() for b in tenant.directory.mailboxes
               if flow.in_mailbox(str(b["UserPrincipalName"]).lower()))
    message = flow.in_mailbox(box)[0]
    from mia_bridge.collect.retry import RetryPolicy

    meta = MailboxMetadata(session.backend, retry=RetryPolicy()).lookup(message.internet_message_id, [box])
    assert meta is not None and meta.sender == message.sender
    assert set(meta.to) == set(message.to) and isinstance(meta.received, datetime)
    before = MailboxMetadata(session.backend, retry=RetryPolicy()).messages_before(box, datetime.now(UTC))
    assert {m.internet_message_id for m, _ in before} == {m.internet_message_id for m in flow.in_mailbox(box)}
    assert all(m.sender for m, _ in before)


def test_the_plain_calls_do_not_work_on_the_jea_endpoint(tenant: Tenant) -> None:
    conn = ConnectionSettings(transport="http", auth="basic", configuration_name="MiaBridge",
                              endpoint_kind="plain")
    with pytest.raises(BridgeError) as err, sim_session(conn, tenant=tenant):
        pass
    assert "Connect-ExchangeOnline" in err.value.message and "not recognized" in err.value.message


def test_a_jea_backend_never_sends_connection_cmdlets(tenant: Tenant) -> None:
    conn = ConnectionSettings(transport="http", auth="basic", endpoint_kind="jea")
    with sim_session(conn, tenant=tenant) as opened:
        with pytest.raises(UsageError):
            opened.backend.invoke(CmdletCall("Connect-MgGraph", {"ClientId": "x"}))
        with pytest.raises(CommandNotFoundError):
            opened.backend.invoke(CmdletCall("Remove-Mailbox", {"Identity": "x"}))
        assert opened.server.calls[0][0] == "Connect-MiaTenant"


def test_endpoint_kind_resolution_and_call_mapping() -> None:
    assert resolve_kind("auto", "MiaBridge") == resolve_kind("auto", "miabridge") == "jea"
    assert resolve_kind("auto", "Microsoft.PowerShell") == "plain" and resolve_kind("plain", "MiaBridge") == "plain"
    with pytest.raises(UsageError):
        resolve_kind("loose", "x")
    with pytest.raises(ConfigError):
        ConnectionSettings(endpoint_kind="loose").validate()
    assert jea_function("Search-UnifiedAuditLog") == "Search-MiaUnifiedAuditLog"
    assert jea_function("Get-MgUserMessage") == "Get-MiaMgUserMessage"
    mapped = jea_call(CmdletCall("Get-MgUserMessage", {"UserId": "a@b", "Filter": "internetMessageId eq '<x''y@z>'",
                                                       "Property": ["from"]}))
    assert mapped.name == "Get-MiaMgUserMessage"
    assert dict(mapped.parameters) == {"UserId": "a@b", "InternetMessageId": "<x'y@z>"}
    by_time = jea_call(CmdletCall("Get-MgUserMessage", {"UserId": "a@b", "Filter": "receivedDateTime lt "
                                                        "2026-10-01T00:00:00Z", "All": True}))
    assert by_time.parameters["ReceivedBefore"] == datetime(2026, 10, 1, tzinfo=UTC)
    with pytest.raises(UsageError):
        jea_call(CmdletCall("Get-MgUserMessage", {"UserId": "a@b", "Filter": "subject eq 'x'"}))


def test_json_output_is_decoded_with_dates_from_both_powershells() -> None:
    rows = decode_json_output([{"Value": '[{"ReceivedDateTime":"\\/Date(1767323045000)\\/","N":{"CreatedDateTime":'
                                          '"2026-01-02T03:04:05.1234567Z"}},{"A":1}]'},
                               {"Value": '{"B":"\\/Date(0)\\/","L":["\\/Date(1000)\\/"]}'}], what="Get-MgX")
    assert rows[0]["ReceivedDateTime"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rows[0]["N"]["CreatedDateTime"] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert rows[1] == {"A": 1} and rows[2]["B"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert rows[2]["L"] == [datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)]
    # attacker-written text that looks like a date stays text (5.1 escapes the slashes of real dates only)
    for hostile in ("/Date(0)/", "\\/Date(0)\\/", '"\\/Date(0)\\/"'):
        text = json.dumps({"Subject": hostile})
        assert decode_json_output([{"Value": text}], what="Get-MgX") == [{"Subject": hostile}]
    for bad in ({"Value": "{not json"}, {"Value": "[1]"}, {"Name": "x"}):
        with pytest.raises(BridgeError):
            decode_json_output([bad], what="Get-MgX")


# --- as a new user would: `mia sim serve --jea`, then `mia collect --configuration-name MiaBridge` ----

PASSWORD = "jea-cli-pw"


@pytest.fixture
def served_jea(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    truth = tmp_path / "truth.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "MIA_SIM_PASSWORD"} | {"MIA_SIM_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mia_bridge.cli.app", "sim", "serve", "--jea", "--records", "1200", "--seed", "3",
         "--dump-truth", str(truth)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY "), proc.stderr.read() if proc.stderr else line
        yield int(line.rsplit(":", 1)[1].split("/")[0]), truth
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_mia_collect_against_mia_sim_serve_jea_returns_exactly_the_tenants_records(
    served_jea: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, truth = served_jea
    monkeypatch.setenv("MIA_WINRM_PASSWORD", PASSWORD)
    case = tmp_path / "case"
    code = main(["collect", "--server", "127.0.0.1", "--port", str(port), "--transport", "http", "--auth", "basic",
                 "--username", "mia", "--configuration-name", "MiaBridge", "--organization", DEFAULT_ORGANIZATION,
                 "--app-id", DEFAULT_APP_ID, "--certificate-thumbprint", DEFAULT_THUMBPRINT,
                 "--start", "2000-01-01", "--end", "2100-01-01", "--out", str(case), "--quiet"])
    assert code == 0
    expected = {json.loads(line)["Id"] for line in truth.read_text().splitlines()}
    got = [r for r in read_records(case / "evidence" / "ual.jsonl")]
    ids = [json.loads(r["AuditData"])["Id"] if isinstance(r.get("AuditData"), str) else r.get("Id") for r in got]
    assert len(ids) == len(set(ids)) == len(expected) == 1200
    assert set(ids) == expected
    manifest = json.loads((case / "manifest.json").read_text())
    assert '"endpoint_kind": "jea"' in json.dumps(manifest)


def test_doctor_and_investigate_demo_on_the_jea_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["doctor", "--sim", "--transport", "http", "--auth", "basic", "--configuration-name", "MiaBridge"]) == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "warn" not in out and "fail" not in out.lower().replace("failed", "")
    assert "Search-MailboxAuditLog runs" in out and "M365_ADVANCED_AUDITING" in out
    case = tmp_path / "case"
    assert main(["investigate", "--demo", "--endpoint-kind", "jea", "--out", str(case)]) == 0
    investigation = json.loads((case / "investigation.json").read_text())
    assert '"premium": true' in json.dumps(investigation)
    assert '"endpoint_kind": "jea"' in (case / "manifest.json").read_text()
