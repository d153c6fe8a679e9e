"""Get-AdminAuditLogConfig / Set-AdminAuditLogConfig: the unified audit log ingestion switch; and the
organization's dehydration (Get-OrganizationConfig IsDehydrated, Enable-OrganizationCustomization).

A dehydrated tenant (quirk ``dehydrated``, sim/quirks.py; the default where ingestion is off) refuses
configuration changes until Enable-OrganizationCustomization ran (CIPP does this first). A changed
setting is read back only later: ScubaGear saw about six minutes; the simulator waits
``TenantConfig.settings_delay_s`` (exchange-platform-facts, "Dehydrated tenants").
"""

from __future__ import annotations

import time
from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, cmdlet
from mia_bridge.sim.tenant import Tenant, TenantSession

DEHYDRATED_MESSAGE = (
    "The command you tried to run isn't currently allowed in your organization. To run this command, you first "
    "need to run the command: Enable-OrganizationCustomization."
)

TYPE_NAMES = ["Microsoft.Exchange.Data.Directory.SystemConfiguration.AdminAuditLogConfig", "System.Object"]
CHANGE_DELAY_WARNING = (
    "The change to UnifiedAuditLogIngestionEnabled may take up to 60 minutes to take effect, and it can take several "
    "hours before audit log searches return results."
)


@cmdlet("Get-AdminAuditLogConfig")
def get_admin_audit_log_config(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Get-AdminAuditLogConfig", params, ("Identity",))
    tenant = session.tenant
    return [
        SimObject(
            list(TYPE_NAMES),
            {
                "Name": "Admin Audit Log Settings",
                "Identity": "Admin Audit Log Settings",
                "AdminAuditLogEnabled": True,
                "UnifiedAuditLogIngestionEnabled": visible_ingestion(tenant),
                "UnifiedAuditLogFirstOptInDate": None,
                "AdminAuditLogCmdlets": ["*"],
                "AdminAuditLogParameters": ["*"],
                "AdminAuditLogExcludedCmdlets": [],
                "AdminAuditLogAgeLimit": "90.00:00:00",
                "LogLevel": "None",
                "TestCmdletLoggingEnabled": False,
                "IsValid": True,
                "ObjectState": "Unchanged",
            },
        )
    ]


@cmdlet("Set-AdminAuditLogConfig")
def set_admin_audit_log_config(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    """Only the ingestion switch has an effect; in the simulation it takes effect at once (records held
    while it was off stay searchable: the model holds what the service would have recorded)."""
    p = Params("Set-AdminAuditLogConfig", params, (
        "UnifiedAuditLogIngestionEnabled", "AdminAuditLogEnabled", "AdminAuditLogAgeLimit", "AdminAuditLogCmdlets",
        "AdminAuditLogParameters", "AdminAuditLogExcludedCmdlets", "LogLevel", "Identity", "Force",
    ))
    wanted = p.flag("UnifiedAuditLogIngestionEnabled")
    tenant = session.tenant
    if tenant.dehydrated:
        raise SimCmdletError(DEHYDRATED_MESSAGE, category="InvalidOperation",
                             error_id="C7B5B1EF,Microsoft.Exchange.Management.SystemConfigurationTasks."
                             "SetAdminAuditLogConfig", exception_type="System.InvalidOperationException")
    out = SimOutput()
    if wanted is None or wanted == tenant.ingestion_enabled:
        out.warnings.append(
            "The command completed successfully but no settings of 'Admin Audit Log Settings' have been modified."
        )
        return out
    with tenant.lock:
        previous = tenant.ingestion_enabled
        tenant.ingestion_enabled = wanted
        # Reads show the old value for a while (searches see the change at once in the model).
        tenant.pending_ingestion = (previous, time.monotonic() + tenant.config.settings_delay_s)
    out.warnings.append(CHANGE_DELAY_WARNING)
    return out


def visible_ingestion(tenant: Tenant) -> bool:
    """What Get-AdminAuditLogConfig shows: the previous value until the change has propagated."""
    pending = tenant.pending_ingestion
    if pending is not None and time.monotonic() < pending[1]:
        return pending[0]
    return tenant.ingestion_enabled


@cmdlet("Get-OrganizationConfig")
def get_organization_config(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Get-OrganizationConfig", params, ("Identity",))
    tenant = session.tenant
    return [SimObject(
        ["Microsoft.Exchange.Data.Directory.Management.OrganizationConfig", "System.Object"],
        {
            "Name": tenant.config.organization.split(".")[0],
            "Identity": tenant.config.organization.split(".")[0],
            "DisplayName": tenant.config.organization.split(".")[0],
            "IsDehydrated": tenant.dehydrated,
            "AuditDisabled": False,
            "IsValid": True,
            "ObjectState": "Unchanged",
        },
    )]


@cmdlet("Enable-OrganizationCustomization")
def enable_organization_customization(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    Params("Enable-OrganizationCustomization", params, ())
    tenant = session.tenant
    if not tenant.dehydrated:
        raise SimCmdletError(
            "This operation is not required. Organization is already enabled for customization.",
            category="InvalidOperation", error_id="Enable-OrganizationCustomization,InvalidOperationException",
            exception_type="System.InvalidOperationException",
        )
    with tenant.lock:
        tenant.dehydrated = False
    return SimOutput()
