"""Microsoft Graph PowerShell (after Connect-MgGraph): licences, domains, service principals and their
application permissions -- what Sparrow read through the retired AzureAD / MSOnline modules."""

from __future__ import annotations

import re
from typing import Any

from mia_bridge.sim.handlers._params import Params, binding_error
from mia_bridge.sim.registry import SimCmdletError, SimObject, cmdlet
from mia_bridge.sim.tenant import TenantSession

ADVANCED_AUDITING_PLAN = ("2f442157-a11c-46b9-ae5b-6e39ff4e5849", "M365_ADVANCED_AUDITING")
_PLANS_E3 = [
    ("efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE"),
    ("f6de4823-28fa-440b-b886-4783fa86ddba", "M365_AUDIT_PLATFORM"),
    ("5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE"),
    ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1"),
]
_SKUS = {
    True: ("06ebc4ee-1bb5-47dd-8120-11324bc54e06", "SPE_E5", [*_PLANS_E3, ADVANCED_AUDITING_PLAN]),
    False: ("05e9a617-0261-4cee-bb44-138d3ef5d965", "SPE_E3", _PLANS_E3),
}


def _type(model: str) -> list[str]:
    return [f"Microsoft.Graph.PowerShell.Models.MicrosoftGraph{model}", "System.Object"]


# Graph SDK model types of nested properties: over remoting at depth 1 each arrives as its ToString(),
# the type name (sim/serialization_depth.py), exactly what a real jump host sends.
NESTED_MODELS = {
    "ServicePlans": "ServicePlanInfo",
    "PrepaidUnits": "LicenseUnitsDetail",
    "AppRoles": "AppRole",
    "KeyCredentials": "KeyCredential",
    "PasswordCredentials": "PasswordCredential",
    "From": "Recipient",
    "Sender": "Recipient",
    "ToRecipients": "Recipient",
    "CcRecipients": "Recipient",
    "BccRecipients": "Recipient",
    "ReplyTo": "Recipient",
    "EmailAddress": "EmailAddress",
    "Body": "ItemBody",
}


def model(properties: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts (and lists of them) under known property names as typed Graph SDK model objects."""
    return {key: _nested(key, value) for key, value in properties.items()}


def _nested(key: str, value: Any) -> Any:
    kind = NESTED_MODELS.get(key[:1].upper() + key[1:])
    if isinstance(value, list):
        return [_nested(key, v) for v in value]
    if isinstance(value, dict):
        return SimObject(_type(kind or "Entity"), model(value))
    return value


def _graph_error(code: str, message: str, cmdlet_name: str) -> SimCmdletError:
    return SimCmdletError(
        f"[{code}] : {message}",
        category="InvalidOperation",
        error_id=f"{code},Microsoft.Graph.PowerShell.Cmdlets.{cmdlet_name.replace('-', '')}_Get",
        exception_type="System.Exception",
    )


def _not_found(resource: str, cmdlet: str) -> SimCmdletError:
    """Graph's answer for an id it does not know (as Get-MgDomain -DomainId and friends report it)."""
    return _graph_error("Request_ResourceNotFound", f"Resource '{resource}' does not exist or one of its queried "
                        "reference-property objects are not present.", cmdlet)


@cmdlet("Get-MgSubscribedSku")
def get_mg_subscribed_sku(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Get-MgSubscribedSku", params, ("All", "Property", "Top", "SubscribedSkuId", "ExpandProperty"))
    tenant = session.tenant
    sku_id, part, plans = _SKUS[tenant.config.premium]
    skus = [(sku_id, part, plans, 50, 47), ("f30db892-07e9-47e9-837c-80727f46fd3d", "FLOW_FREE",
                                            [("50e68c76-46c6-4674-81f9-75456511b170", "FLOW_P2_VIRAL")], 10000, 3)]
    return [
        SimObject(_type("SubscribedSku"), model({
            "Id": f"{tenant.tenant_id}_{sid}",
            "SkuId": sid,
            "SkuPartNumber": name,
            "AppliesTo": "User",
            "CapabilityStatus": "Enabled",
            "ConsumedUnits": consumed,
            "PrepaidUnits": {"Enabled": units, "Suspended": 0, "Warning": 0, "LockedOut": 0},
            "ServicePlans": [
                {"ServicePlanId": pid, "ServicePlanName": pname, "ProvisioningStatus": "Success", "AppliesTo": "User"}
                for pid, pname in plan_list
            ],
        }))
        for sid, name, plan_list, units, consumed in skus
    ]


@cmdlet("Get-MgDomain")
def get_mg_domain(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-MgDomain", params, ("DomainId", "All", "Top", "Filter", "Property"))
    domains = session.tenant.directory.domains
    wanted = p.text("DomainId")
    if wanted is not None:
        domains = [d for d in domains if d["Id"].lower() == wanted.lower()]
        if not domains:
            raise _not_found(wanted, "Get-MgDomain")
    domains = _odata_filter(domains, p.text("Filter"), p.cmdlet)
    return [SimObject(_type("Domain"), model(dict(d))) for d in _top(domains, p)]


@cmdlet("Get-MgDomainFederationConfiguration")
def get_mg_domain_federation_configuration(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    """GET /domains/{id}/federationConfiguration (Graph v1.0 "List internalDomainFederations"): the
    federated domain's configuration; a managed domain has none (an empty collection); an unknown
    domain is Request_ResourceNotFound, as Get-MgDomain -DomainId."""
    p = Params("Get-MgDomainFederationConfiguration", params,
               ("DomainId", "InternalDomainFederationId", "All", "Top", "Filter", "Property"))
    p.require("DomainId")
    wanted = (p.text("DomainId") or "").lower()
    directory = session.tenant.directory
    if not any(d["Id"].lower() == wanted for d in directory.domains):
        raise _not_found(wanted, p.cmdlet)
    configs = directory.federation.get(wanted, [])
    fed_id = p.text("InternalDomainFederationId")
    if fed_id is not None:
        configs = [c for c in configs if str(c.get("Id", "")).lower() == fed_id.lower()]
        if not configs:
            raise _graph_error("Request_ResourceNotFound", f"Resource '{fed_id}' does not exist or one of its "
                               "queried reference-property objects are not present.", p.cmdlet)
    configs = _odata_filter(configs, p.text("Filter"), p.cmdlet)
    return [SimObject(_type("InternalDomainFederation"), model(dict(c))) for c in _top(configs, p)]


@cmdlet("Get-MgServicePrincipal")
def get_mg_service_principal(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-MgServicePrincipal", params, ("ServicePrincipalId", "All", "Top", "Filter", "Property", "Search",
                                                  "ConsistencyLevel", "CountVariable", "ExpandProperty"))
    sps = session.tenant.directory.service_principals
    wanted = p.text("ServicePrincipalId")
    if wanted is not None:
        sps = [s for s in sps if s["Id"].lower() == wanted.lower()]
        if not sps:
            raise _not_found(wanted, "Get-MgServicePrincipal")
    sps = _odata_filter(sps, p.text("Filter"), p.cmdlet)
    return [SimObject(_type("ServicePrincipal"), model(dict(s))) for s in _top(sps, p)]


@cmdlet("Get-MgServicePrincipalAppRoleAssignment")
def get_mg_service_principal_app_role_assignment(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-MgServicePrincipalAppRoleAssignment", params,
               ("ServicePrincipalId", "AppRoleAssignmentId", "All", "Top", "Filter", "Property"))
    p.require("ServicePrincipalId")
    sp_id = (p.text("ServicePrincipalId") or "").lower()
    directory = session.tenant.directory
    if not any(s["Id"].lower() == sp_id for s in directory.service_principals):
        raise _not_found(sp_id, p.cmdlet)
    rows = [a for a in directory.app_role_assignments if a["ServicePrincipalId"].lower() == sp_id]
    rows = _odata_filter(rows, p.text("Filter"), p.cmdlet)
    return [SimObject(_type("AppRoleAssignment"), {k: v for k, v in a.items() if k != "ServicePrincipalId"})
            for a in _top(rows, p)]


def _top(rows: list[dict[str, Any]], p: Params) -> list[dict[str, Any]]:
    """Without -All Graph returns its first page (100); -Top caps it."""
    top = p.integer("Top")
    if top is not None:
        return rows[:top]
    return rows if p.switch("All") else rows[:100]


_EQ = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_STARTS = re.compile(r"^\s*startswith\(\s*(\w+)\s*,\s*'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE)


def _odata_filter(rows: list[dict[str, Any]], expression: str | None, cmdlet_name: str) -> list[dict[str, Any]]:
    """The OData subset the product uses: ``prop eq 'v'`` and ``startswith(prop,'v')``, joined by ``and``."""
    if not expression:
        return rows
    out = rows
    for clause in re.split(r"\s+and\s+", expression, flags=re.IGNORECASE):
        match = _EQ.match(clause) or _STARTS.match(clause)
        if match is None:
            raise binding_error(cmdlet_name, f"[BadRequest] : Invalid filter clause: {clause}", "BadRequest")
        prop, value = match.group(1).lower(), match.group(2).replace("''", "'").lower()
        keyed = [(r, next((v for k, v in r.items() if k.lower() == prop), None)) for r in out]
        if match.re is _EQ:
            out = [r for r, v in keyed if v is not None and str(v).lower() == value]
        else:
            out = [r for r, v in keyed if v is not None and str(v).lower().startswith(value)]
    return out
