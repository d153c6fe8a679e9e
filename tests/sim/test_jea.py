"""The simulator's JEA endpoint (``SimServer(jea=True)``, configuration MiaBridge) enforces the shipped
MiaBridge.pssc / MiaBridgeAudit.psrc as JEA does: raw pypsrp over real HTTP first, then the rules one by one
on role capabilities written the way the old one was (which is why the old one could not work)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan

from mia_bridge.sim.jea import JeaEndpoint, JeaRunspace, twin_names
from mia_bridge.sim.jea_parse import parse_data_file
from mia_bridge.sim.mailflow import mailflow_of
from mia_bridge.sim.registry import SimCmdletError, dispatch
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig

PASSWORD = "jea-test-pw"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=400)


@pytest.fixture(scope="module")
def sim(tenant: Tenant) -> Iterator[SimServer]:
    with SimServer(tenant, auth="basic", password=PASSWORD, jea=True) as server:
        yield server


def _pool(sim: SimServer, configuration: str = "MiaBridge") -> tuple[WSMan, RunspacePool]:
    wsman = WSMan("127.0.0.1", port=sim.port, ssl=False, auth="basic", username="mia", password=PASSWORD,
                  encryption="never")
    return wsman, RunspacePool(wsman, configuration_name=configuration)


def _run(pool: RunspacePool, name: str, **params: Any) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet(name)
    for key, value in params.items():
        ps.add_parameter(key, value)
    ps.invoke()
    return ps


def _error(ps: PowerShell) -> str:
    return " ".join(f"{e.fq_error} {e}" for e in ps.streams.error)


def _connect(pool: RunspacePool, tenant: Tenant) -> PowerShell:
    cfg = tenant.config
    return _run(pool, "Connect-MiaTenant", AppId=cfg.app_id, Organization=cfg.organization,
                CertificateThumbprint=cfg.certificate_thumbprint)


def test_raw_pypsrp_cannot_call_exchange_cmdlets_on_the_jea_endpoint(sim: SimServer, tenant: Tenant) -> None:
    wsman, pool = _pool(sim)
    with wsman, pool:
        # before and after connecting: the tmpEXO_* module's commands stay private
        before = _run(pool, "Search-UnifiedAuditLog", StartDate="10/1/2026", EndDate="10/2/2026")
        assert before.state == PSInvocationState.FAILED and "CommandNotFoundException" in _error(before)
        connected = _connect(pool, tenant)
        assert connected.state == PSInvocationState.COMPLETED, _error(connected)
        for name in ("Search-UnifiedAuditLog", "Connect-ExchangeOnline", "Get-MgSubscribedSku", "Connect-MgGraph",
                     "Set-AdminAuditLogConfig", "Get-Mailbox", "ConvertTo-Json", "Initialize-MiaConnectionX"):
            ps = _run(pool, name)
            assert ps.state == PSInvocationState.FAILED, name
            assert "CommandNotFoundException" in _error(ps), name
            assert "is not recognized as the name of a cmdlet" in _error(ps)
        # NoLanguage: no script at all
        script = PowerShell(pool)
        script.add_script("Search-UnifiedAuditLog -StartDate 1/1/2026 -EndDate 1/2/2026")
        script.invoke()
        assert script.state == PSInvocationState.FAILED and "no-language mode" in _error(script)
        # what the role capability defines works, through the function
        got = _run(pool, "Search-MiaUnifiedAuditLog", StartDate=datetime(2020, 1, 1, tzinfo=UTC).isoformat(),
                   EndDate=datetime.now(UTC).isoformat(), ResultSize=5)
        assert got.state == PSInvocationState.COMPLETED, _error(got)
        assert len(got.output) == 5
    # the standard endpoint on the same server is not restricted
    wsman, pool = _pool(sim, "Microsoft.PowerShell")
    with wsman, pool:
        ps = _run(pool, "Get-Module", Name="ExchangeOnlineManagement", ListAvailable=True)
        assert ps.state == PSInvocationState.COMPLETED


def test_functions_validate_their_parameters_with_every_attribute(sim: SimServer, tenant: Tenant) -> None:
    wsman, pool = _pool(sim)
    with wsman, pool:
        assert _connect(pool, tenant).state == PSInvocationState.COMPLETED
        start, end = "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"
        too_big = _run(pool, "Search-MiaUnifiedAuditLog", StartDate=start, EndDate=end, ResultSize=5001)
        assert "ParameterArgumentValidationError,Search-MiaUnifiedAuditLog" in _error(too_big)
        assert "greater than the maximum allowed range of 5000" in _error(too_big)
        bad_set = _run(pool, "Search-MiaUnifiedAuditLog", StartDate=start, EndDate=end, SessionCommand="Delete")
        assert "does not belong to the set" in _error(bad_set)
        unknown = _run(pool, "Search-MiaUnifiedAuditLog", StartDate=start, EndDate=end, Formattedd=True)
        assert "NamedParameterNotFound,Search-MiaUnifiedAuditLog" in _error(unknown)
        missing = _run(pool, "Search-MiaUnifiedAuditLog", StartDate=start)
        assert "MissingMandatoryParameter" in _error(missing)
        # Set-MiaAdminAuditLogConfig can only turn ingestion on
        off = _run(pool, "Set-MiaAdminAuditLogConfig", UnifiedAuditLogIngestionEnabled="False")
        assert "does not belong to the set" in _error(off)
        # Connect-MgGraph -Environment for sovereign clouds is reachable through the connection function
        sovereign = _run(pool, "Connect-MiaTenant", AppId=tenant.config.app_id,
                         Organization=tenant.config.organization,
                         CertificateThumbprint=tenant.config.certificate_thumbprint,
                         ExchangeEnvironmentName="O365Cloudy")
        assert "does not belong to the set" in _error(sovereign)


def test_message_lookup_is_one_anchored_escaped_filter_with_fixed_properties(sim: SimServer, tenant: Tenant) -> None:
    message = next(m for box in tenant.directory.mailboxes
                   for m in mailflow_of(tenant).in_mailbox(str(box["UserPrincipalName"]).lower()))
    wsman, pool = _pool(sim)
    with wsman, pool:
        assert _connect(pool, tenant).state == PSInvocationState.COMPLETED
        found = _run(pool, "Get-MiaMgUserMessage", UserId=message.mailbox,
                     InternetMessageId=message.internet_message_id)
        assert found.state == PSInvocationState.COMPLETED, _error(found)
        [text] = found.output
        doc = json.loads(text)
        assert doc["From"]["EmailAddress"]["Address"] == message.sender
        assert "Body" not in doc and "BodyPreview" not in doc  # the fixed -Property list
        # a hostile id cannot widen the filter: the quote is doubled, the clause stays one eq
        hostile = _run(pool, "Get-MiaMgUserMessage", UserId=message.mailbox,
                       InternetMessageId="x' or subject eq 'y")
        assert hostile.state == PSInvocationState.COMPLETED and hostile.output == []
        # the caller cannot choose -Property or -Filter
        body = _run(pool, "Get-MiaMgUserMessage", UserId=message.mailbox, Property=["body"])
        assert "NamedParameterNotFound" in _error(body)
        newline = _run(pool, "Get-MiaMgUserMessage", UserId=message.mailbox, InternetMessageId="a\r\nb")
        assert "does not match" in _error(newline)


# --- the rules, on role capabilities written the old way -------------------------------------------

OLD_STYLE = """@{
    ModulesToImport = 'ExchangeOnlineManagement', 'Microsoft.Graph.Authentication',
        'Microsoft.Graph.Identity.DirectoryManagement'
    VisibleFunctions = @(
        @{ Name = 'Connect-ExchangeOnline'; Parameters = @(
            @{ Name = 'AppId' }, @{ Name = 'Organization' }, @{ Name = 'CertificateThumbprint' },
            @{ Name = 'ShowBanner' }) },
        @{ Name = 'Search-UnifiedAuditLog'; Parameters = @(@{ Name = 'StartDate' }, @{ Name = 'EndDate' },
            @{ Name = 'ResultSize'; ValidateRange = '1', '5000' }) },
        'Get-EXOMailbox'
    )
    VisibleCmdlets = @(
        @{ Name = 'Connect-MgGraph'; Parameters = @(@{ Name = 'ClientId' }, @{ Name = 'TenantId' },
            @{ Name = 'CertificateThumbprint'; ValidatePattern = '^[0-9a-fA-F]{40}$' }, @{ Name = 'NoWelcome' }) },
        @{ Name = 'Get-MgSubscribedSku'; Parameters = @{ Name = 'All' } },
        @{ Name = 'Get-ConnectionInformation' }
    )
}"""


def _old_style(tenant: Tenant) -> JeaRunspace:
    endpoint = JeaEndpoint(language_mode="NoLanguage", virtual_account=False)
    endpoint.add_role_capability(parse_data_file(OLD_STYLE))
    return JeaRunspace(endpoint, tenant.open_session())


def test_entries_for_commands_absent_at_open_or_of_the_wrong_kind_are_dropped(tenant: Tenant) -> None:
    runspace = _old_style(tenant)
    dropped = " | ".join(runspace.endpoint.dropped)
    assert "Search-UnifiedAuditLog: no function" in dropped  # tmpEXO_* is imported at Connect time
    assert "Get-MgSubscribedSku: no cmdlet" in dropped  # a Graph SDK function listed as a cmdlet
    assert "Get-EXOMailbox: no function" in dropped  # a binary cmdlet listed as a function
    cfg = tenant.config
    runspace.run("Connect-ExchangeOnline", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                            "CertificateThumbprint": cfg.certificate_thumbprint})
    with pytest.raises(SimCmdletError) as err:
        runspace.run("Search-UnifiedAuditLog", {"StartDate": "10/1/2026", "EndDate": "10/2/2026"})
    assert err.value.exception_type.endswith("CommandNotFoundException")


def test_unlisted_parameters_are_removed_and_only_set_and_pattern_apply(tenant: Tenant) -> None:
    runspace = _old_style(tenant)
    cfg = tenant.config
    # -Environment (sovereign clouds) is not listed: JEA's proxy has no such parameter
    with pytest.raises(SimCmdletError) as err:
        runspace.run("Connect-MgGraph", {"ClientId": cfg.app_id, "TenantId": cfg.organization,
                                         "CertificateThumbprint": cfg.certificate_thumbprint, "Environment": "USGov"})
    assert err.value.error_id == "NamedParameterNotFound,connect-mggraph"
    assert err.value.exception_type.endswith("ParameterBindingException")
    with pytest.raises(SimCmdletError) as bad:
        runspace.run("Connect-MgGraph", {"ClientId": cfg.app_id, "TenantId": cfg.organization,
                                         "CertificateThumbprint": "not-a-thumbprint"})
    assert "does not match" in bad.value.message
    # ValidateRange restricts nothing on a visible command: the entry below lists it, JEA ignores it
    endpoint = JeaEndpoint(language_mode="NoLanguage", virtual_account=False)
    endpoint.add_role_capability(parse_data_file(
        "@{ ModulesToImport = 'ExchangeOnlineManagement'\n"
        "   VisibleCmdlets = @{ Name = 'Get-EXOMailbox'; Parameters = @{ Name = 'ResultSize'; "
        "ValidateRange = '1', '2' } } }"))
    exo = JeaRunspace(endpoint, tenant.open_session())
    dispatch(exo.session, "Connect-ExchangeOnline", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                                     "CertificateThumbprint": cfg.certificate_thumbprint})
    assert len(exo.run("Get-EXOMailbox", {"ResultSize": 1000}).objects) > 2


def test_the_shipped_role_capability_defines_functions_only_and_each_has_a_twin() -> None:
    endpoint = JeaEndpoint.load()
    assert endpoint.visible == {} and endpoint.dropped == []
    assert set(endpoint.functions) == twin_names()
    assert endpoint.language_mode == "NoLanguage" and endpoint.virtual_account


def test_a_virtual_account_cannot_use_a_thumbprint_from_its_user_store() -> None:
    tenant = Tenant(TenantConfig())
    cfg = tenant.config
    session = tenant.open_session()
    session.virtual_account = True
    params = {"AppId": cfg.app_id, "Organization": cfg.organization,
              "CertificateThumbprint": cfg.certificate_thumbprint}
    with pytest.raises(SimCmdletError) as err:
        dispatch(session, "Connect-ExchangeOnline", params)
    assert "CurrentUser" in err.value.message
    with pytest.raises(SimCmdletError):
        dispatch(session, "Connect-MgGraph", {"ClientId": cfg.app_id, "TenantId": cfg.organization,
                                              "CertificateThumbprint": cfg.certificate_thumbprint})
    # the shipped function takes the certificate object from Cert:\LocalMachine\My instead
    runspace = JeaRunspace(JeaEndpoint.load(), tenant.open_session())
    runspace.run("Connect-MiaTenant", params)
    assert runspace.session.connected_exchange
    runspace.run("Get-MiaMgSubscribedSku", {})
    assert runspace.session.connected_graph
    with pytest.raises(SimCmdletError) as missing:
        JeaRunspace(JeaEndpoint.load(), tenant.open_session()).run(
            "Connect-MiaTenant", {**params, "CertificateThumbprint": "AB" * 20})
    assert "Cert:\\LocalMachine\\My" in missing.value.message


def test_sovereign_clouds_reach_connect_mggraph_environment() -> None:
    tenant = Tenant(TenantConfig())
    cfg = tenant.config
    runspace = JeaRunspace(JeaEndpoint.load(), tenant.open_session())
    seen: list[dict[str, Any]] = []
    original = runspace.private

    def spy(name: str, params: dict[str, Any]) -> Any:
        seen.append({"name": name, **params})
        return original(name, params)

    runspace.private = spy  # type: ignore[method-assign]
    runspace.run("Connect-MiaTenant", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                       "CertificateThumbprint": cfg.certificate_thumbprint,
                                       "ExchangeEnvironmentName": "O365USGovGCCHigh"})
    runspace.run("Get-MiaMgSubscribedSku", {})
    graph = next(s for s in seen if s["name"] == "Connect-MgGraph")
    assert graph["Environment"] == "USGov" and "CertificateThumbprint" not in graph
    assert graph["Certificate"].properties["Thumbprint"] == cfg.certificate_thumbprint.upper()


def test_message_lookup_by_time_uses_the_same_fixed_properties(tenant: Tenant) -> None:
    box = next(str(b["UserPrincipalName"]).lower() for b in tenant.directory.mailboxes
               if mailflow_of(tenant).in_mailbox(str(b["UserPrincipalName"]).lower()))
    cfg = tenant.config
    runspace = JeaRunspace(JeaEndpoint.load(), tenant.open_session())
    runspace.run("Connect-MiaTenant", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                       "CertificateThumbprint": cfg.certificate_thumbprint})
    out = runspace.run("Get-MiaMgUserMessage", {"UserId": box, "ReceivedBefore": datetime.now(UTC) + timedelta(1),
                                                "All": True})
    docs = [json.loads(o.text or "") for o in out.objects]
    assert len(docs) == len(mailflow_of(tenant).in_mailbox(box))
    assert all(set(d) <= {"Id", "InternetMessageId", "From", "ToRecipients", "CcRecipients", "BccRecipients",
                          "Subject", "ReceivedDateTime", "HasAttachments", "ParentFolderId"} for d in docs)


def test_a_pfx_must_be_on_a_local_drive_and_opens_with_its_password() -> None:
    from mia_bridge.bridge.backend import Secret

    tenant = Tenant(TenantConfig())
    cfg = tenant.config
    base = {"AppId": cfg.app_id, "Organization": cfg.organization}
    for path in ("\\\\fileserver\\share\\mia.pfx", "mia.pfx", "C:\\certs\\mia.cer"):
        with pytest.raises(SimCmdletError) as err:
            JeaRunspace(JeaEndpoint.load(), tenant.open_session()).run(
                "Connect-MiaTenant", {**base, "CertificateFilePath": path, "CertificatePassword": Secret("x")})
        assert "does not match" in err.value.message, path
    with pytest.raises(SimCmdletError) as wrong:
        JeaRunspace(JeaEndpoint.load(), tenant.open_session()).run(
            "Connect-MiaTenant", {**base, "CertificateFilePath": cfg.certificate_path,
                                  "CertificatePassword": Secret("wrong")})
    assert "password is not correct" in wrong.value.message and "wrong" not in wrong.value.message
    runspace = JeaRunspace(JeaEndpoint.load(), tenant.open_session())
    runspace.run("Connect-MiaTenant", {**base, "CertificateFilePath": cfg.certificate_path,
                                       "CertificatePassword": Secret(cfg.certificate_password)})
    assert runspace.session.connected_exchange


def test_the_bridge_connects_a_pfx_through_the_jea_endpoint() -> None:
    from mia_bridge.bridge.config import ConnectionSettings
    from mia_bridge.investigate.license import detect_license
    from mia_bridge.sim.backend import sim_session

    conn = ConnectionSettings(transport="http", auth="basic", configuration_name="MiaBridge",
                              certificate_path="C:\\certs\\mia.pfx")
    with sim_session(conn) as session:
        assert session.server.calls[0][0] == "Connect-MiaTenant"
        assert set(session.server.calls[0][1]) == {"AppId", "Organization", "CertificateFilePath",
                                                   "CertificatePassword"}
        assert detect_license(session.backend, []).premium is True
