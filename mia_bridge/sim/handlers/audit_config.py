"""Get-AdminAuditLogConfig / Set-AdminAuditLogConfig: the unified audit log ingestion switch."""

from __future__ import annotations

from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.registry import SimObject, SimOutput, cmdlet
from mia_bridge.sim.tenant import TenantSession

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
                "UnifiedAuditLogIngestionEnabled": tenant.ingestion_enabled,
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
    out = SimOutput()
    if wanted is None or wanted == tenant.ingestion_enabled:
        out.warnings.append(
            "The command completed successfully but no settings of 'Admin Audit Log Settings' have been modified."
        )
        return out
    with tenant.lock:
        tenant.ingestion_enabled = wanted
    out.warnings.append(CHANGE_DELAY_WARNING)
    return out
