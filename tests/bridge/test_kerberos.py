"""Kerberos to the jump host, for real: an MIT KDC on 127.0.0.1, pypsrp's client, the simulator's acceptor.

The KDC issues the tickets, python-gssapi builds and checks them, and WinRM message encryption over
plain HTTP uses the Kerberos session key, as against a domain-joined Windows jump host. Skipped when
the machine lacks the KDC or python-gssapi, unless MIA_REQUIRE_KERBEROS=1 (CI sets it), which turns
the skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mit_kdc import MitKdc, missing_tools
from test_winrm_backend import settings_for

from mia_bridge.bridge.backend import CmdletCall, Secret
from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings
from mia_bridge.cli.app import main
from mia_bridge.errors import BridgeAuthError
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION, DEFAULT_THUMBPRINT, Tenant, TenantConfig

PASSWORD = "Kerberos-test-pw-4711"
JUMP_HOST = "jump01.mia.test"  # the name in the jump host's SPN; the listener itself is 127.0.0.1
RECORDS = 1200

_missing = missing_tools()
if _missing:
    if os.environ.get("MIA_REQUIRE_KERBEROS") == "1":
        raise RuntimeError(f"MIA_REQUIRE_KERBEROS=1 but this machine lacks {', '.join(_missing)}")
    pytest.skip(f"no Kerberos test realm possible here: missing {', '.join(_missing)}", allow_module_level=True)


@pytest.fixture(scope="module")
def kdc() -> Iterator[MitKdc]:
    with MitKdc() as realm:
        realm.add_user("mia", PASSWORD)
        realm.add_service(f"host/{JUMP_HOST}")
        realm.add_service("host/localhost")
        yield realm


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(TenantConfig(seed=11), records=RECORDS)


def _settings(sim: SimServer, **changes: Any) -> WinRMSettings:
    """The WinRM backend tests' settings, as a Kerberos user of the test realm reaching HOST/jump01."""
    kerberos = {"auth": "kerberos", "username": "mia@MIA.TEST", "password": Secret(PASSWORD), "spn_host": JUMP_HOST}
    return settings_for(sim, **{**kerberos, **changes})


def _all_records(exo: WinRMBackend) -> list[dict[str, Any]]:
    """Every record in the tenant through ReturnLargeSet paging."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(10):
        output = exo.invoke(CmdletCall("Search-UnifiedAuditLog", {
            "StartDate": "2000-01-01T00:00:00Z", "EndDate": "2100-01-01T00:00:00Z", "SessionId": "krb",
            "SessionCommand": "ReturnLargeSet", "ResultSize": 5000,
        })).output  # fmt: skip
        if not output:
            break
        seen.update((str(row["Identity"]), row) for row in output)
    return list(seen.values())


def test_kerberos_over_http_encrypts_every_message_with_the_session_key(kdc: MitKdc, tenant: Tenant) -> None:
    """A jump host offering only Kerberos: tickets from the KDC, every WSMan body Kerberos-encrypted."""
    with SimServer(tenant, transport="http", auth="kerberos") as sim, WinRMBackend(_settings(sim)) as exo:
        rows = _all_records(exo)
        httpd = sim._httpd
        assert httpd is not None
        assert len(rows) == RECORDS
        assert httpd.request_count > 0 and httpd.encrypted_count == httpd.request_count
        assert httpd.encryption_protocols == {"application/HTTP-Kerberos-session-encrypted"}
        assert httpd.logons and set(httpd.logons) == {("mia@MIA.TEST", "kerberos")}
        assert exo.describe()["spn_host"] == JUMP_HOST and exo.describe()["logon"] == "kerberos"
    log = kdc.requests()
    assert "AS_REQ" in log and "mia@MIA.TEST for krbtgt/MIA.TEST@MIA.TEST" in log
    assert f"mia@MIA.TEST for host/{JUMP_HOST}@MIA.TEST" in log  # the ticket was for the SPN we named


def test_negotiate_over_https_chooses_kerberos(kdc: MitKdc, tenant: Tenant) -> None:
    """The default (--auth negotiate, HTTPS with channel binding) logs on with Kerberos when a realm is there."""
    with SimServer(tenant, transport="https", auth="negotiate", password=PASSWORD) as sim:
        with WinRMBackend(_settings(sim, auth="negotiate")) as exo:
            assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"
            assert exo.describe()["logon"] == "kerberos"
        assert sim._httpd is not None
        assert {protocol for _, protocol in sim._httpd.logons} == {"kerberos"}


def test_ticket_from_the_credential_cache_needs_no_password(kdc: MitKdc, tenant: Tenant) -> None:
    """After kinit, no password anywhere: pyspnego takes the TGT from KRB5CCNAME."""
    kdc.kinit("mia")
    try:
        with SimServer(tenant, transport="http", auth="kerberos") as sim:
            with WinRMBackend(_settings(sim, username=None, password=None)) as exo:
                assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"
            assert sim._httpd is not None and sim._httpd.logons == [("mia@MIA.TEST", "kerberos")]
    finally:
        kdc.kdestroy()


def test_no_ticket_and_no_password_says_kinit(kdc: MitKdc, tenant: Tenant) -> None:
    kdc.kdestroy()
    with SimServer(tenant, transport="http", auth="kerberos") as sim, pytest.raises(BridgeAuthError) as caught:
        WinRMBackend(_settings(sim, password=None)).open()
    assert str(caught.value).startswith("Kerberos logon to") and "kinit" in (caught.value.hint or "")


def test_the_spn_follows_the_server_name_unless_overridden(kdc: MitKdc, tenant: Tenant) -> None:
    """By IP address there is no HOST/127.0.0.1 principal: a Kerberos error naming the SPN, and the fix works."""
    with SimServer(tenant, transport="http", auth="kerberos") as sim:
        with pytest.raises(BridgeAuthError) as caught:
            WinRMBackend(_settings(sim, spn_host=None)).open()
        message = str(caught.value)
        assert message.startswith("Kerberos logon to http://127.0.0.1:")
        assert "host/127.0.0.1@MIA.TEST not found in Kerberos database" in message
        assert "--spn-host" in (caught.value.hint or "") and PASSWORD not in message
        # By a name whose SPN exists, no override is needed.
        with WinRMBackend(_settings(sim, server="localhost", spn_host=None)) as exo:
            assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"


def test_wrong_password_is_a_kerberos_error_without_the_password(kdc: MitKdc, tenant: Tenant) -> None:
    wrong = "Not-the-password-93"
    with SimServer(tenant, transport="http", auth="kerberos") as sim, pytest.raises(BridgeAuthError) as caught:
        WinRMBackend(_settings(sim, password=Secret(wrong))).open()
    assert str(caught.value).startswith("Kerberos logon to") and "as mia@MIA.TEST" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in (caught.value.hint or "")


def test_mia_collect_over_kerberos(kdc: MitKdc, tenant: Tenant, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI end to end: --auth kerberos --spn-host, password from the environment, evidence verified."""
    monkeypatch.setenv("MIA_WINRM_PASSWORD", PASSWORD)
    case = tmp_path / "case"
    config = tenant.config
    with SimServer(tenant, transport="http", auth="kerberos") as sim:
        code = main([
            "collect", "--server", "127.0.0.1", "--port", str(sim.port), "--transport", "http", "--auth", "kerberos",
            "--username", "mia@MIA.TEST", "--spn-host", JUMP_HOST, "--organization", config.organization,
            "--app-id", config.app_id, "--certificate-thumbprint", config.certificate_thumbprint,
            "--start", "2000-01-01", "--end", "2100-01-01", "--out", str(case), "--quiet",
        ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = (case / "evidence" / "ual.jsonl").read_text().splitlines()
    assert len(lines) == RECORDS
    assert main(["verify", str(case)]) == 0
    manifest = (case / "manifest.json").read_text()
    assert PASSWORD not in manifest and PASSWORD not in captured.out + captured.err


def test_negotiate_to_the_simulator_never_asks_a_real_kdc(tmp_path: Path) -> None:
    """With gssapi installed, Negotiate tries Kerberos first; against the simulator that must stay in-process.

    Run in a fresh interpreter with the machine's own Kerberos settings (no KRB5_CONFIG): MIT's trace
    must show no KDC lookup and no request sent anywhere, and the logon must still succeed (NTLM).
    """
    trace = tmp_path / "krb5.trace"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "MIA_KRB5"))}
    env["KRB5_TRACE"] = str(trace)
    script = (
        "from mia_bridge.bridge.backend import CmdletCall, Secret\n"
        "from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings\n"
        "from mia_bridge.sim.server import SimServer\n"
        "from mia_bridge.sim.tenant import Tenant, TenantConfig\n"
        "with SimServer(Tenant(TenantConfig()), transport='https', auth='negotiate', password='pw-1') as sim:\n"
        "    s = WinRMSettings(server='127.0.0.1', port=sim.port, username='mia', password=Secret('pw-1'),\n"
        "                      ca_bundle=str(sim.ca_path), reconnection_retries=0)\n"
        "    with WinRMBackend(s) as exo:\n"
        "        exo.invoke(CmdletCall('Get-Module', {'Name': 'ExchangeOnlineManagement'}))\n"
        "    assert sim._httpd.logons and {p for _, p in sim._httpd.logons} == {'ntlm'}, sim._httpd.logons\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    text = trace.read_text() if trace.exists() else ""
    assert "Getting initial credentials for mia@MIA-SIM.INVALID" in text  # Kerberos was tried, in the dead realm
    # MIT logs "Sending request … to REALM" before it looks for KDCs; these are the lines of real traffic:
    for leak in ("Resolving hostname", "Initiating TCP", "Sending TCP", "UDP request", "Received answer"):
        assert leak not in text, text


def test_mia_sim_serve_accepts_kerberos_with_a_keytab(kdc: MitKdc) -> None:
    """`mia sim serve --auth kerberos` in its own process, keys from KRB5_KTNAME; refused without them."""
    base = [sys.executable, "-m", "mia_bridge.cli.app", "sim", "serve", "--records", "300", "--transport", "http",
            "--auth", "kerberos"]  # fmt: skip
    env = {**os.environ, "MIA_SIM_PASSWORD": "unused-with-kerberos"}
    refused = subprocess.run(base, env={k: v for k, v in env.items() if k != "KRB5_KTNAME"}, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert refused.returncode == 2 and "KRB5_KTNAME" in refused.stderr
    proc = subprocess.Popen(base, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), proc.stderr.read() if proc.stderr else line
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        settings = WinRMSettings(server="127.0.0.1", port=port, transport="http", auth="kerberos",
                                 username="mia@MIA.TEST", password=Secret(PASSWORD), spn_host=JUMP_HOST,
                                 organization=DEFAULT_ORGANIZATION, app_id=DEFAULT_APP_ID,
                                 certificate_thumbprint=DEFAULT_THUMBPRINT, reconnection_retries=0)  # fmt: skip
        with WinRMBackend(settings) as exo:
            assert len(_all_records(exo)) == 300
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_mia_doctor_says_negotiate_logged_on_with_kerberos(kdc: MitKdc, tenant: Tenant,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MIA_WINRM_PASSWORD", PASSWORD)
    config = tenant.config
    with SimServer(tenant, transport="https", auth="negotiate", password=PASSWORD) as sim:
        code = main([
            "doctor", "--server", "127.0.0.1", "--port", str(sim.port), "--ca-bundle", str(sim.ca_path),
            "--username", "mia@MIA.TEST", "--spn-host", JUMP_HOST, "--organization", config.organization,
            "--app-id", config.app_id, "--certificate-thumbprint", config.certificate_thumbprint,
        ])
    out = capsys.readouterr().out
    assert code in (0, 3), out  # 3: the tenant may lack something; the logon row is what matters here
    assert "negotiate: logged on with kerberos" in " ".join(out.replace("│", " ").split())  # cells wrap
