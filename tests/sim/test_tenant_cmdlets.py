"""The non-search cmdlets: connection, modules, Graph, mailboxes, mailbox audit log, RBAC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mia_bridge.bridge import Secret
from mia_bridge.sim.registry import SimCmdletError, dispatch, plain, registered_cmdlets
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import DEFAULT_THUMBPRINT, Tenant, TenantConfig, TenantSession

START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(days=30)


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=4000)


def exo(tenant: Tenant) -> TenantSession:
    session = tenant.open_session()
    cfg = tenant.config
    dispatch(session, "Connect-ExchangeOnline", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                                 "CertificateThumbprint": cfg.certificate_thumbprint,
                                                 "ShowBanner": False})
    return session


def graph(tenant: Tenant, session: TenantSession | None = None) -> TenantSession:
    session = session or tenant.open_session()
    cfg = tenant.config
    dispatch(session, "Connect-MgGraph", {"ClientId": cfg.app_id, "TenantId": cfg.organization,
                                          "CertificateThumbprint": cfg.certificate_thumbprint, "NoWelcome": True})
    return session


def props(out: Any) -> list[dict[str, Any]]:
    return [plain(o) for o in out.objects]


def test_thumbprint_must_match_and_is_case_insensitive() -> None:
    tenant = Tenant(TenantConfig())
    cfg = tenant.config
    base = {"AppId": cfg.app_id.upper(), "Organization": cfg.organization.upper()}
    session = tenant.open_session()
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Connect-ExchangeOnline", {**base, "CertificateThumbprint": "00" * 20})
    assert "No certificate found" in info.value.message
    dispatch(session, "Connect-ExchangeOnline", {**base, "CertificateThumbprint": DEFAULT_THUMBPRINT.lower()})
    assert session.connected_exchange


@pytest.mark.parametrize(("change", "fragment", "category"), [
    ({"Organization": "fabrikam.onmicrosoft.com"}, "AADSTS90002", "AuthenticationError"),
    ({"CertificateFilePath": "C:\\other.pfx"}, "Could not find file", "ObjectNotFound"),
    ({"CertificatePassword": "plain-text"}, "SecureString", "InvalidArgument"),
    ({"CertificatePassword": None}, "needs -CertificatePassword", "InvalidArgument"),
    ({"AppId": None}, "missing mandatory parameters: AppId", "InvalidArgument"),
    ({"ExchangeEnvironmentName": "Mars"}, "ExchangeEnvironment", "InvalidArgument"),
    ({"UserPrincipalName": "admin@contoso.com"}, "app-only certificate", "AuthenticationError"),
])
def test_connect_failures(change: dict[str, Any], fragment: str, category: str) -> None:
    tenant = Tenant(TenantConfig())
    cfg = tenant.config
    params: dict[str, Any] = {"AppId": cfg.app_id, "Organization": cfg.organization,
                              "CertificateFilePath": cfg.certificate_path,
                              "CertificatePassword": Secret(cfg.certificate_password)}
    params.update(change)
    params = {k: v for k, v in params.items() if v is not None}
    session = tenant.open_session()
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Connect-ExchangeOnline", params)
    assert fragment in info.value.message and info.value.category == category
    assert cfg.certificate_password not in info.value.message and "plain-text" not in info.value.message
    assert not session.connected_exchange


def test_connection_information_banner_and_disconnect(tenant: Tenant) -> None:
    session = tenant.open_session()
    assert props(dispatch(session, "Get-ConnectionInformation", {})) == []
    cfg = tenant.config
    out = dispatch(session, "Connect-ExchangeOnline", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                                       "CertificateThumbprint": cfg.certificate_thumbprint,
                                                       "ExchangeEnvironmentName": "O365USGovGCCHigh"})
    assert out.warnings and "REST API" in out.warnings[0]  # the banner, unless -ShowBanner:$false
    info = props(dispatch(session, "Get-ConnectionInformation", {}))[0]
    assert info["State"] == "Connected" and info["TokenStatus"] == "Active" and info["AppId"] == cfg.app_id
    assert info["Organization"] == cfg.organization and info["ConnectionUri"] == "https://outlook.office365.us"
    assert info["CertificateAuthentication"] is True and info["TokenExpiryTimeUTC"].tzinfo is not None
    dispatch(session, "Disconnect-ExchangeOnline", {"Confirm": False})
    with pytest.raises(SimCmdletError) as err:
        dispatch(session, "Get-Mailbox", {})
    assert err.value.error_id == "CommandNotFoundException"


def test_sessions_are_independent(tenant: Tenant) -> None:
    connected = exo(tenant)
    other = tenant.open_session()
    assert connected.connected_exchange and not other.connected_exchange
    with pytest.raises(SimCmdletError):
        dispatch(other, "Get-AdminAuditLogConfig", {})


def test_unknown_cmdlet_fails_like_powershell(tenant: Tenant) -> None:
    with pytest.raises(SimCmdletError) as info:
        dispatch(exo(tenant), "Remove-Mailbox", {"Identity": "x"})
    assert info.value.message.startswith("The term 'Remove-Mailbox' is not recognized")
    assert info.value.exception_type == "System.Management.Automation.CommandNotFoundException"
    assert "remove-mailbox" not in registered_cmdlets()


def test_get_module(tenant: Tenant) -> None:
    session = tenant.open_session()
    listed = props(dispatch(session, "Get-Module", {"Name": "ExchangeOnlineManagement", "ListAvailable": True}))
    assert [m["Name"] for m in listed] == ["ExchangeOnlineManagement"] and listed[0]["Version"].startswith("3.")
    assert props(dispatch(session, "Get-Module", {"Name": "ExchangeOnline*"})) == []  # not imported yet
    all_listed = props(dispatch(session, "Get-Module", {"ListAvailable": True}))
    assert {m["Name"] for m in all_listed} == {"ExchangeOnlineManagement", "Microsoft.Graph.Authentication"}
    exo_session = exo(tenant)
    assert [m["Name"] for m in props(dispatch(exo_session, "Get-Module", {}))] == ["ExchangeOnlineManagement"]


def test_graph_needs_connect_mggraph(tenant: Tenant) -> None:
    session = exo(tenant)
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Get-MgDomain", {})
    assert "Connect-MgGraph" in info.value.message and info.value.category == "AuthenticationError"
    with pytest.raises(SimCmdletError) as bad:
        dispatch(session, "Connect-MgGraph", {"ClientId": tenant.config.app_id, "TenantId": tenant.tenant_id,
                                              "CertificateThumbprint": "AB" * 20})
    assert bad.value.category == "AuthenticationError"
    out = dispatch(session, "Connect-MgGraph", {"ClientId": tenant.config.app_id, "TenantId": tenant.tenant_id,
                                                "CertificateThumbprint": tenant.config.certificate_thumbprint})
    assert out.warnings == ["Welcome to Microsoft Graph!"]
    assert props(dispatch(session, "Get-MgContext", {}))[0]["AuthType"] == "AppOnly"


@pytest.mark.parametrize("premium", [True, False])
def test_subscribed_skus_mark_audit_premium(premium: bool) -> None:
    tenant = Tenant(TenantConfig(premium=premium))
    skus = props(dispatch(graph(tenant), "Get-MgSubscribedSku", {}))
    plans = {(p["ServicePlanId"], p["ServicePlanName"]) for s in skus for p in s["ServicePlans"]}
    has = ("2f442157-a11c-46b9-ae5b-6e39ff4e5849", "M365_ADVANCED_AUDITING") in plans
    assert has is premium
    assert {s["SkuPartNumber"] for s in skus} >= ({"SPE_E5"} if premium else {"SPE_E3"})


def test_domains_service_principals_and_app_roles(tenant: Tenant) -> None:
    session = graph(tenant)
    truth = tenant.truth
    assert truth is not None
    domains = props(dispatch(session, "Get-MgDomain", {"All": True}))
    assert {d["Id"]: d["AuthenticationType"] for d in domains}[truth.federated_domains[0]] == "Federated"
    one = props(dispatch(session, "Get-MgDomain", {"DomainId": truth.federated_domains[0]}))
    assert len(one) == 1
    sps = props(dispatch(session, "Get-MgServicePrincipal", {"All": True}))
    attacker = next(s for s in sps if s["AppId"] == truth.attacker_app_ids[0])
    filtered = props(dispatch(session, "Get-MgServicePrincipal",
                              {"Filter": f"appId eq '{truth.attacker_app_ids[0]}'"}))
    assert filtered == [attacker]
    assert props(dispatch(session, "Get-MgServicePrincipal", {"Filter": "startswith(displayName,'Microsoft G')"}))
    graph_sp = next(s for s in sps if s["DisplayName"] == "Microsoft Graph")
    roles = {r["Id"]: r["Value"] for r in graph_sp["AppRoles"]}
    grants = props(dispatch(session, "Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": attacker["Id"]}))
    assert {roles[g["AppRoleId"]] for g in grants} == {"Mail.Read", "Files.Read.All"}
    assert all(g["ResourceId"] == graph_sp["Id"] for g in grants)
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": "nope"})
    assert "Request_ResourceNotFound" in info.value.message
    with pytest.raises(SimCmdletError):
        dispatch(session, "Get-MgServicePrincipal", {"Filter": "appId ne 'x' or 1 eq 1"})


def test_mailboxes(tenant: Tenant) -> None:
    session = exo(tenant)
    truth = tenant.truth
    assert truth is not None
    boxes = props(dispatch(session, "Get-Mailbox", {"ResultSize": "Unlimited"}))
    assert len(boxes) == len(tenant.directory.mailboxes) and all(b["AuditEnabled"] is True for b in boxes)
    assert len(props(dispatch(session, "Get-Mailbox", {"ResultSize": 2}))) == 2
    exo_min = props(dispatch(session, "Get-EXOMailbox", {"Identity": truth.victims[0]}))[0]
    assert "AuditOwner" not in exo_min and exo_min["UserPrincipalName"] == truth.victims[0]
    audit = props(dispatch(session, "Get-EXOMailbox", {"Identity": truth.victims[0].upper(),
                                                       "Properties": ["AuditOwner", "AuditEnabled"]}))[0]
    assert "MailItemsAccessed" in audit["AuditOwner"] and audit["AuditEnabled"] is True
    full = props(dispatch(session, "Get-EXOMailbox", {"Identity": truth.victims[0], "PropertySets": "All"}))[0]
    assert full["ForwardingSmtpAddress"].endswith(truth.attacker_forwarding_address)
    shared = props(dispatch(session, "Get-Mailbox", {"RecipientTypeDetails": "SharedMailbox"}))
    assert len(shared) == 1
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Get-Mailbox", {"Identity": "nobody@contoso.com"})
    assert "couldn't be found" in info.value.message


def test_search_mailbox_audit_log(tenant: Tenant) -> None:
    session = exo(tenant)
    truth = tenant.truth
    assert truth is not None
    victim = truth.victims[0]
    query = {"Identity": victim, "StartDate": START, "EndDate": END, "Operations": "MailItemsAccessed",
             "ShowDetails": True, "ResultSize": 250_000}
    rows = props(dispatch(session, "Search-MailboxAuditLog", {**query, "LogonTypes": ["Owner", "Delegate", "Admin"]}))
    ual = tenant.query_truth(start=START, end=END, operations=["MailItemsAccessed"])
    assert {r["Identity"] for r in rows} == {r["Id"] for r in ual if r["MailboxOwnerUPN"] == victim}
    # Without -LogonTypes the owner's own access is left out (Delegate and Admin only).
    default = props(dispatch(session, "Search-MailboxAuditLog", query))
    owners = {r["Id"] for r in ual if r["MailboxOwnerUPN"] == victim and int(r.get("LogonType") or 0) == 0}
    assert owners and not owners & {r["Identity"] for r in default}
    throttled = [r for r in rows if "IsThrottled:True" in r["OperationProperties"]]
    assert len(throttled) == 1 and throttled[0]["ClientIPAddress"] in truth.attacker_ips
    syncs = [r for r in rows if "MailAccessType:Sync" in r["OperationProperties"]]
    assert any(r["FolderPathName"] == "\\Inbox" for r in syncs)
    assert all(r["LastAccessed"].tzinfo is not None for r in rows)
    last = [r["LastAccessed"] for r in rows]
    assert last == sorted(last, reverse=True)
    capped = dispatch(session, "Search-MailboxAuditLog", {"Identity": victim, "StartDate": START, "EndDate": END,
                                                          "ShowDetails": True, "ResultSize": 3, "LogonTypes": "Owner"})
    assert len(capped.objects) == 3
    summary = props(dispatch(session, "Search-MailboxAuditLog", {"Identity": victim, "StartDate": START,
                                                                 "EndDate": END, "LogonTypes": "Owner"}))
    assert len(summary) == 1 and summary[0]["MailboxResolvedOwnerName"] == "Megan Bowen"
    with pytest.raises(SimCmdletError):
        dispatch(session, "Search-MailboxAuditLog", {"Mailboxes": [victim], "ShowDetails": True})


def test_mailbox_audit_log_can_be_retired() -> None:
    tenant = Tenant(TenantConfig(mailbox_audit_retired=True))
    with pytest.raises(SimCmdletError) as info:
        dispatch(exo(tenant), "Search-MailboxAuditLog", {"Identity": "x", "StartDate": START, "EndDate": END})
    assert info.value.exception_type.endswith("CommandNotFoundException")


def test_management_role_assignments(tenant: Tenant) -> None:
    session = exo(tenant)
    rows = props(dispatch(session, "Get-ManagementRoleAssignment", {"Role": "View-Only Audit Logs"}))
    assert any(r["RoleAssigneeName"] == "mia-bridge" and r["RoleAssigneeType"] == "ServicePrincipal" for r in rows)
    assert all(r["Role"] == "View-Only Audit Logs" for r in rows)
    app = props(dispatch(session, "Get-ManagementRoleAssignment", {"RoleAssignee": "mia-bridge"}))
    assert {r["Role"] for r in app} >= {"View-Only Audit Logs", "Audit Logs"}


def test_mailbox_audit_search_also_fails_transiently() -> None:
    tenant = build_tenant(TenantConfig(transient_failure_rate=1.0), records=500)
    with pytest.raises(SimCmdletError) as info:
        dispatch(exo(tenant), "Search-MailboxAuditLog", {"StartDate": START, "EndDate": END})
    assert info.value.error_id.endswith(",Search-MailboxAuditLog")
    assert info.value.category in ("ResourceBusy", "ResourceUnavailable", "LimitsExceeded")
