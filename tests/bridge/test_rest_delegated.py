"""PROOF: delegated sign-in (device code, browser) through MSAL's real public client against the simulated
token service over loopback HTTPS; cached sign-ins, logout, role-based access, and the token-store refusal."""

from __future__ import annotations

import json
import os
import ssl
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.bridge.token_cache import CacheChoice, forget, open_cache
from mia_bridge.collect import AuditQuery, CollectOptions, collect
from mia_bridge.errors import AccessDeniedError, BridgeAuthError
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.backend import SimOptions
from mia_bridge.sim.rest_delegated import DEFAULT_PUBLIC_CLIENT_ID
from mia_bridge.sim.rest_server import RestSimServer
from mia_bridge.sim.rest_session import sim_backend
from mia_bridge.sim.tenant import Tenant, TenantConfig

START = datetime(2026, 4, 1, tzinfo=UTC)
END = datetime(2026, 4, 2, tzinfo=UTC)
SIM = SimOptions(approve_after_s=0.2)  # the simulated user approves a sign-in this long after it is shown


@pytest.fixture
def server() -> Iterator[RestSimServer]:
    tenant = Tenant(TenantConfig())
    tenant.add_audit_records(
        {"Id": f"r{i}", "CreationTime": f"2026-04-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
         "Operation": "MailItemsAccessed", "RecordType": 50, "UserId": "u@contoso.onmicrosoft.com",
         "Workload": "Exchange"}
        for i in range(1200)
    )
    with RestSimServer(tenant) as srv:
        yield srv


def _conn(tmp_path: Path, flow: str = "device-code", **extra: object) -> ConnectionSettings:
    return ConnectionSettings(backend="rest", auth=flow,
                              token_cache_insecure_file=str(tmp_path / "tokens.bin"), **extra)  # type: ignore[arg-type]


def _count(server: RestSimServer, fragment: str) -> int:
    return sum(1 for r in server.requests if fragment in r.path)


def _grants(server: RestSimServer) -> list[str]:
    out = []
    for r in server.requests:
        if r.path.endswith("/oauth2/v2.0/token"):
            out.append(dict(x.split("=", 1) for x in r.body.decode().split("&")).get("grant_type", ""))
    return out


def test_device_code_signs_in_once_for_both_apis_and_collects_what_app_only_collects(
    server: RestSimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = AuditQuery("ual", START, END)
    with sim_backend(_conn(tmp_path), server, SIM) as backend:
        prompt = capsys.readouterr().err
        assert "enter the code" in prompt and server.url in prompt
        assert backend.signed_in_user == f"investigator@{server.organization}"
        collect(backend, [query], tmp_path / "delegated", CollectOptions())
        backend.invoke(CmdletCall("Get-MgSubscribedSku"))  # Graph, from the same sign-in
        info = backend.invoke(CmdletCall("Get-ConnectionInformation")).output[0]
        describe = backend.describe()
    assert _count(server, "/devicecode") == 1
    grants = _grants(server)
    device = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
    # polled while pending, then Graph's token from the refresh token: no second prompt
    assert set(grants) == {device, "refresh_token"}
    assert grants.index("refresh_token") > max(i for i, g in enumerate(grants) if g == device)
    anchors = {r.headers.get("X-AnchorMailbox") for r in server.requests if "InvokeCommand" in r.path}
    assert anchors == {f"UPN:investigator@{server.organization}"}
    assert info["UserPrincipalName"] == describe["account"] and info["CertificateAuthentication"] is False
    with sim_backend(ConnectionSettings(backend="rest"), server) as app_only:
        collect(app_only, [query], tmp_path / "app-only", CollectOptions())
    ids = [{r["Id"] for r in read_records(tmp_path / case / "evidence" / "ual.jsonl")} for case in ("delegated",
                                                                                                  "app-only")]
    assert ids[0] == ids[1] and len(ids[0]) == 1200
    manifest = (tmp_path / "delegated" / "manifest.json").read_text()
    assert "investigator@" in manifest and "eyJ" not in manifest  # who collected, never a token
    assert json.loads(manifest)["backend"]["auth"] == "delegated"


def test_the_cache_signs_in_silently_and_logout_forces_a_new_sign_in(
    server: RestSimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sim_backend(_conn(tmp_path), server, SIM) as first:
        first.invoke(CmdletCall("Get-AdminAuditLogConfig"))
    assert "enter the code" in capsys.readouterr().err
    cache = tmp_path / "tokens.bin"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    with sim_backend(_conn(tmp_path), server, SIM) as second:
        second.invoke(CmdletCall("Get-AdminAuditLogConfig"))
        assert second.signed_in_user == f"investigator@{server.organization}"
    assert "enter the code" not in capsys.readouterr().err
    assert _count(server, "/devicecode") == 1
    assert forget(CacheChoice("insecure-file", cache)) == [f"investigator@{server.organization}"]
    assert not cache.exists()
    with sim_backend(_conn(tmp_path), server, SIM) as third:
        third.invoke(CmdletCall("Get-AdminAuditLogConfig"))
    assert "enter the code" in capsys.readouterr().err
    assert _count(server, "/devicecode") == 2


def test_browser_flow_with_pkce_and_loopback_redirect(server: RestSimServer, tmp_path: Path) -> None:
    with sim_backend(_conn(tmp_path, "browser"), server, SIM) as backend:
        backend.invoke(CmdletCall("Get-AdminAuditLogConfig"))
        assert backend.signed_in_user == f"investigator@{server.organization}"
    [authorize] = [r.path for r in server.requests if "/authorize?" in r.path]
    assert "code_challenge_method=S256" in authorize and "redirect_uri=http%3A%2F%2Flocalhost%3A" in authorize
    assert _grants(server)[0] == "authorization_code"


def test_declined_and_expired_device_codes_are_clear_errors(server: RestSimServer, tmp_path: Path) -> None:
    server.delegated.decision = "deny"
    with pytest.raises(BridgeAuthError, match="declined"), sim_backend(_conn(tmp_path), server, SIM):
        pass
    server.delegated.decision = "ignore"
    server.delegated.device_lifetime_s = 1
    with pytest.raises(BridgeAuthError, match="expired"), sim_backend(_conn(tmp_path), server, SIM):
        pass


def test_the_token_service_answers_as_rfc_8628_says(server: RestSimServer) -> None:
    context = ssl.create_default_context(cafile=str(server.ca_path))
    token_url = f"/{server.tenant_id}/oauth2/v2.0/token"
    with httpx.Client(verify=context, base_url=server.url) as http:
        flow = http.post(f"/{server.tenant_id}/oauth2/v2.0/devicecode",
                         data={"client_id": DEFAULT_PUBLIC_CLIENT_ID, "scope": "https://outlook.office365.com/.default"})
        code = flow.json()["device_code"]
        poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": DEFAULT_PUBLIC_CLIENT_ID,
                "device_code": code}
        server.delegated.approve_after_s = 60
        assert http.post(token_url, data=poll).json()["error"] == "authorization_pending"
        assert http.post(token_url, data=poll).json()["error"] == "slow_down"  # polled faster than interval
        server.delegated.approve_after_s = 0
        time.sleep(server.delegated.interval_s)
        answer = http.post(token_url, data=poll).json()
        assert answer["token_type"] == "Bearer" and answer["refresh_token"] and answer["id_token"]
        assert http.post(token_url, data=poll).json()["error"] == "invalid_grant"  # a device code is used once
        unknown = http.post(f"/{server.tenant_id}/oauth2/v2.0/devicecode", data={"client_id": "nope"})
        assert unknown.json()["error"] == "unauthorized_client"


def test_a_user_without_an_audit_role_gets_the_services_access_denied(server: RestSimServer, tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    with sim_backend(conn, server, replace(SIM, user_roles="Global Reader")) as backend:
        assert backend.invoke(CmdletCall("Get-AdminAuditLogConfig")).output  # read-only cmdlets work
        with pytest.raises(AccessDeniedError) as denied:
            backend.invoke(CmdletCall("Search-UnifiedAuditLog", {"StartDate": START, "EndDate": END}))
        assert "investigator@" in str(denied.value.hint) and "View-Only Audit Logs" in str(denied.value.hint)
        with pytest.raises(AccessDeniedError, match="not authorized to search the audit log"):
            backend.audit_log_queries().probe()
    forbidden = [r for r in server.requests if r.status == 403 and "InvokeCommand" in r.path]
    assert forbidden and forbidden[0].body  # (the request body; the 403 itself is bodyless, as the module sees)


def test_no_secure_store_is_a_refusal_never_a_plaintext_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msal_extensions

    def unavailable(location: str) -> object:
        raise ImportError("No module named 'gi'")

    monkeypatch.setattr(msal_extensions, "build_encrypted_persistence", unavailable)
    location = tmp_path / "store" / "cache.bin"
    with pytest.raises(BridgeAuthError, match="no secure token store") as refused:
        open_cache(CacheChoice("encrypted", location))
    assert "--token-cache-insecure-file" in str(refused.value.hint)
    assert not location.exists()


def test_a_loose_insecure_cache_file_is_tightened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "tokens.bin"
    cache.write_text("{}")
    os.chmod(cache, 0o644)
    open_cache(CacheChoice("insecure-file", cache))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "UNENCRYPTED" in capsys.readouterr().err


def test_delegated_needs_the_rest_backend_and_a_client_id(tmp_path: Path) -> None:
    from mia_bridge.bridge.factory import Credentials
    from mia_bridge.bridge.rest_backend import rest_backend
    from mia_bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="admin API and Graph directly"):
        ConnectionSettings(server="jump", auth="device-code").validate()
    settings = ConnectionSettings(backend="rest", auth="device-code", organization="contoso.onmicrosoft.com")
    with pytest.raises(ConfigError, match="--client-id"):
        rest_backend(settings, Credentials())
    backend = rest_backend(replace(settings, client_id="abc", no_token_cache=True), Credentials())
    assert isinstance(backend, RestBackend) and backend.delegated is not None
