"""WinRMBackend (pypsrp) against the simulated tenant's PSRP server on 127.0.0.1: real client, real
HTTP, NTLM with WinRM message encryption unless a test needs something else."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from mia_bridge.bridge.backend import CmdletCall, ExoBackend, Secret
from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeAuthError,
    BridgeTimeoutError,
    BridgeTLSError,
    BridgeTransportError,
    CmdletError,
    CommandNotFoundError,
    ThrottledError,
    UsageError,
)
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, cmdlet
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import DEFAULT_APP_ID, DEFAULT_ORGANIZATION, DEFAULT_THUMBPRINT, Tenant, TenantConfig

PASSWORD = "Winrm-backend-test-pw!"
RECORDS = 3000
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


@cmdlet("Get-WinrmTestPartial")
def _partial(session: Any, params: dict[str, Any]) -> SimOutput:
    return SimOutput(
        objects=[SimObject(["Test.Row"], {"Id": 1})],
        warnings=["partial result"],
        errors=[SimCmdletError("mailbox ghost@contoso.com not found", category="ObjectNotFound",
                               error_id="ManagementObjectNotFound", target="ghost@contoso.com")],
    )


@cmdlet("Get-WinrmTestDenied")
def _denied(session: Any, params: dict[str, Any]) -> list[SimObject]:
    raise SimCmdletError("Access is denied. The user isn't assigned to a role that permits it.",
                         category="PermissionDenied", error_id="AccessDenied,Get-WinrmTestDenied")


@cmdlet("Get-WinrmTestBusy")
def _busy(session: Any, params: dict[str, Any]) -> list[SimObject]:
    raise SimCmdletError("The server is busy. Please retry your request after some time.",
                         category="ResourceBusy", error_id="ServerBusyException,Get-WinrmTestBusy")


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(TenantConfig(seed=7), records=RECORDS)


@pytest.fixture(scope="module")
def sim(tenant: Tenant) -> Iterator[SimServer]:
    with SimServer(tenant, auth="ntlm", username="mia", password=PASSWORD) as server:
        yield server


def settings_for(sim: SimServer, **changes: Any) -> WinRMSettings:
    base = WinRMSettings(
        server="127.0.0.1",
        port=sim.port,
        transport=sim.transport,
        auth=sim.auth,
        username="mia",
        password=Secret(PASSWORD),
        ca_bundle=str(sim.ca_path) if sim.ca_path else None,
        organization=DEFAULT_ORGANIZATION,
        app_id=DEFAULT_APP_ID,
        certificate_thumbprint=DEFAULT_THUMBPRINT,
        read_timeout=10,
        reconnection_retries=0,
    )
    return dataclasses.replace(base, **changes)


def test_is_an_exo_backend_and_connects_once(sim: SimServer, tenant: Tenant) -> None:
    before = tenant.call_counts["Connect-ExchangeOnline"]
    with WinRMBackend(settings_for(sim)) as exo:
        assert isinstance(exo, ExoBackend)
        info = exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]
        exo.invoke(CmdletCall("Get-ConnectionInformation"))
    assert tenant.call_counts["Connect-ExchangeOnline"] == before + 1
    assert info["State"] == "Connected" and info["Organization"] == DEFAULT_ORGANIZATION
    assert isinstance(info["TokenExpiryTimeUTC"], dt.datetime) and info["TokenExpiryTimeUTC"].tzinfo == dt.UTC
    connect_params = [p for name, p in sim.calls if name == "Connect-ExchangeOnline"][-1]
    assert connect_params == {"AppId": DEFAULT_APP_ID, "Organization": DEFAULT_ORGANIZATION, "ShowBanner": False,
                              "CertificateThumbprint": DEFAULT_THUMBPRINT}


def test_full_session_pages_every_record(sim: SimServer, tenant: Tenant) -> None:
    """ReturnLargeSet paging of a few thousand records: every record once, typed."""
    seen: dict[str, dict[str, Any]] = {}
    retrieved = 0
    with WinRMBackend(settings_for(sim)) as exo:
        for _ in range(10):
            result = exo.invoke(CmdletCall("Search-UnifiedAuditLog", {
                "StartDate": EPOCH, "EndDate": FUTURE, "SessionId": "full-session", "SessionCommand": "ReturnLargeSet",
                "ResultSize": 5000,
            }))
            assert not result.errors
            if not result.output:
                break
            retrieved += len(result.output)
            for row in result.output:
                seen[str(row["Identity"])] = row
    truth = {str(r["Id"]) for r in tenant.audit_records()}
    assert retrieved >= len(seen) == len(truth) == RECORDS
    assert set(seen) == truth
    row = next(iter(seen.values()))
    assert isinstance(row["CreationDate"], dt.datetime) and row["CreationDate"].tzinfo == dt.UTC
    assert isinstance(row["ResultIndex"], int) and isinstance(row["ResultCount"], int)
    assert json.loads(row["AuditData"])["Id"] == row["Identity"]


def test_non_terminating_errors_and_warnings_are_returned(sim: SimServer) -> None:
    with WinRMBackend(settings_for(sim)) as exo:
        result = exo.invoke(CmdletCall("Get-WinrmTestPartial"))
    assert result.output == [{"Id": 1}]
    assert result.warnings == ["partial result"]
    [error] = result.errors
    assert error.message == "mailbox ghost@contoso.com not found"
    assert error.category == "ObjectNotFound" and error.error_id == "ManagementObjectNotFound"
    assert error.target == "ghost@contoso.com"


def test_terminating_errors_map_to_the_project_hierarchy(sim: SimServer) -> None:
    with WinRMBackend(settings_for(sim)) as exo:
        with pytest.raises(CmdletError) as bad_size:
            exo.invoke(CmdletCall("Search-UnifiedAuditLog", {"StartDate": EPOCH, "EndDate": FUTURE,
                                                             "ResultSize": 6000}))
        assert "ResultSize" in bad_size.value.message and not bad_size.value.retryable
        with pytest.raises(CommandNotFoundError) as missing:
            exo.invoke(CmdletCall("Get-NoSuchCmdletAtAll"))
        assert missing.value.cmdlet == "Get-NoSuchCmdletAtAll" and not missing.value.retryable
        with pytest.raises(AccessDeniedError) as denied:
            exo.invoke(CmdletCall("Get-WinrmTestDenied"))
        assert denied.value.category == "PermissionDenied"
        with pytest.raises(ThrottledError) as busy:
            exo.invoke(CmdletCall("Get-WinrmTestBusy"))
        assert busy.value.retryable
        # the session is still usable after all of that
        assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output


def test_retired_cmdlet_is_command_not_found() -> None:
    tenant = Tenant(TenantConfig(mailbox_audit_retired=True))
    with (
        SimServer(tenant, auth="basic", password=PASSWORD) as sim,
        WinRMBackend(settings_for(sim)) as exo,
        pytest.raises(CommandNotFoundError),
    ):
        exo.invoke(CmdletCall("Search-MailboxAuditLog", {"StartDate": EPOCH, "EndDate": FUTURE}))


def test_wrong_app_id_fails_connect_exchange_online(sim: SimServer) -> None:
    with pytest.raises(BridgeAuthError) as info:
        WinRMBackend(settings_for(sim, app_id="00000000-0000-0000-0000-000000000000")).open()
    assert "Connect-ExchangeOnline failed" in info.value.message


def test_certificate_file_with_secure_string_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = TenantConfig(certificate_password="pfx-Pa55word")
    with SimServer(Tenant(config), auth="ntlm", password=PASSWORD) as sim:
        settings = settings_for(sim, certificate_thumbprint=None, certificate_path=config.certificate_path,
                                certificate_password=Secret("pfx-Pa55word"))
        with WinRMBackend(settings) as exo:
            assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"
        [(_, params)] = [c for c in sim.calls if c[0] == "Connect-ExchangeOnline"]
        assert isinstance(params["CertificatePassword"], Secret)
        assert params["CertificatePassword"].reveal() == "pfx-Pa55word"
        assert params["CertificateFilePath"] == config.certificate_path
    assert "pfx-Pa55word" not in caplog.text and PASSWORD not in caplog.text
    assert "Connect-ExchangeOnline" in caplog.text  # the call itself is logged, with the secret masked


HOSTILE = [
    "alice@contoso.com'; Remove-Mailbox -Identity bob -Confirm:$false; '",
    'x" | Remove-Mailbox -Identity * -Confirm:$false #',
    "$(Remove-Mailbox -Identity admin)",
    "`$(Get-Process)`; `n Remove-Mailbox",
    "line1\nline2\r\n| Remove-Mailbox -Identity ceo",
    "@{a=1}; & { Remove-Mailbox }; <# comment #> \u0000 ünïcødé 🙂",
]


def test_hostile_strings_arrive_as_one_unchanged_parameter_value(sim: SimServer) -> None:
    with WinRMBackend(settings_for(sim)) as exo:
        for text in HOSTILE:
            exo.invoke(CmdletCall("Search-UnifiedAuditLog", {
                "StartDate": EPOCH, "EndDate": FUTURE, "UserIds": [text], "FreeText": text, "ResultSize": 1,
            }))
            name, params = sim.calls[-1]
            assert name == "Search-UnifiedAuditLog"
            assert params["UserIds"] == [text]
            assert params["FreeText"] == text
            assert set(params) == {"StartDate", "EndDate", "UserIds", "FreeText", "ResultSize"}
    for text in HOSTILE:
        with pytest.raises(BridgeAuthError):
            WinRMBackend(settings_for(sim, app_id=text)).open()
        _, params = [c for c in sim.calls if c[0] == "Connect-ExchangeOnline"][-1]
        assert params["AppId"] == text
    assert not any(name.lower() == "remove-mailbox" for name, _ in sim.calls)


def test_wrong_winrm_password_is_an_auth_error_without_the_password(
    sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-Secret-Value"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BridgeAuthError) as info:
        WinRMBackend(settings_for(sim, password=Secret(wrong))).open()
    assert not info.value.retryable
    rendered = info.value.render() + repr(info.value) + str(info.value.fields)
    assert "refused the logon as mia" in rendered
    assert wrong not in rendered and wrong not in caplog.text


def test_password_never_in_logs_repr_or_describe(sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(sim, certificate_password=Secret("cert-pw-value"))
    with WinRMBackend(settings) as exo:
        exo.invoke(CmdletCall("Get-ConnectionInformation"))
        described = json.dumps(exo.describe())
    for secret in (PASSWORD, "cert-pw-value"):
        assert secret not in caplog.text
        assert secret not in repr(settings) and secret not in str(settings)
        assert secret not in described


def test_tls_verification_failure_and_success_with_ca_bundle() -> None:
    with SimServer(Tenant(TenantConfig()), transport="https", auth="negotiate", password=PASSWORD) as sim:
        with pytest.raises(BridgeTLSError) as info:
            WinRMBackend(settings_for(sim, ca_bundle=None)).open()
        assert not info.value.retryable and "--ca-bundle" in (info.value.hint or "")
        with WinRMBackend(settings_for(sim)) as exo:
            assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output


def test_refused_connection_is_retryable_transport_error() -> None:
    with SimServer(Tenant(TenantConfig()), auth="basic", password=PASSWORD) as sim:
        settings = settings_for(sim)
    with pytest.raises(BridgeTransportError) as info:
        WinRMBackend(settings).open()
    assert info.value.retryable and "refused" in info.value.message


def test_timeout_is_retryable() -> None:
    with SimServer(Tenant(TenantConfig()), auth="basic", password=PASSWORD) as sim:
        sim.faults.delay_s = 1.5
        with pytest.raises(BridgeTimeoutError) as info:
            WinRMBackend(settings_for(sim, read_timeout=1, operation_timeout=1)).open()
    assert info.value.retryable


def test_wsman_fault_is_retryable_transport_error(sim: SimServer) -> None:
    with WinRMBackend(settings_for(sim)) as exo:
        sim.faults.http500 = 1
        with pytest.raises(BridgeTransportError) as info:
            exo.invoke(CmdletCall("Get-ConnectionInformation"))
        assert info.value.retryable and "0x803381A6" in info.value.message
        exo.reconnect()
        assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output


def test_unsafe_or_incomplete_settings_are_refused() -> None:
    with pytest.raises(UsageError, match="clear text"):
        WinRMBackend(WinRMSettings(server="jump01.corp.example", transport="http", auth="basic", username="u"))
    with pytest.raises(UsageError):
        WinRMBackend(WinRMSettings(server="jump01", organization="contoso.onmicrosoft.com", app_id="a"))
    assert WinRMSettings(server="jump01").effective_port == 5986


def test_naive_datetime_is_refused(sim: SimServer) -> None:
    with WinRMBackend(settings_for(sim)) as exo, pytest.raises(UsageError, match="time zone"):
        exo.invoke(CmdletCall("Search-UnifiedAuditLog", {"StartDate": dt.datetime(2024, 1, 1), "EndDate": FUTURE}))


def test_dropped_connection_then_reconnect(sim: SimServer) -> None:
    with WinRMBackend(settings_for(sim)) as exo:
        sim.faults.drop = 1
        with pytest.raises(BridgeTransportError) as info:
            exo.invoke(CmdletCall("Get-ConnectionInformation"))
        assert info.value.retryable
        exo.reconnect()  # what the collector does on a retryable transport error
        assert exo.invoke(CmdletCall("Get-ConnectionInformation")).output[0]["State"] == "Connected"


def test_kerberos_without_gssapi_is_a_clear_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import mia_bridge.bridge.winrm as winrm

    monkeypatch.setattr(winrm, "_kerberos_available", lambda: False)
    with pytest.raises(UsageError, match="gssapi") as info:
        WinRMBackend(WinRMSettings(server="jump01.corp.example", auth="kerberos")).open()
    assert "kinit" in (info.value.hint or "")
