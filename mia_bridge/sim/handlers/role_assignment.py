"""Get-ManagementRoleAssignment: Exchange RBAC, so a doctor can check the roles the audit cmdlets need."""

from __future__ import annotations

import fnmatch
from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.registry import SimObject, cmdlet
from mia_bridge.sim.tenant import TenantSession

TYPE_NAMES = ["Microsoft.Exchange.Management.RbacTasks.ExchangeRoleAssignmentPresentation", "System.Object"]


@cmdlet("Get-ManagementRoleAssignment")
def get_management_role_assignment(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-ManagementRoleAssignment", params, (
        "Identity", "Role", "RoleAssignee", "RoleAssigneeType", "AssignmentMethod", "Enabled", "GetEffectiveUsers",
        "Delegating", "Exclusive", "RecipientWriteScope", "ConfigWriteScope",
    ))
    identity, role, assignee = p.text("Identity"), p.text("Role"), p.text("RoleAssignee")
    assignee_type, enabled = p.text("RoleAssigneeType"), p.flag("Enabled")
    out = []
    for row in session.tenant.directory.role_assignments:
        if identity and not fnmatch.fnmatchcase(row["Name"].lower(), identity.lower()):
            continue
        if role and not fnmatch.fnmatchcase(row["Role"].lower(), role.lower()):
            continue
        names = (str(row["RoleAssignee"]).lower(), str(row["RoleAssigneeName"]).lower())
        if assignee and assignee.lower() not in names:
            continue
        if assignee_type and assignee_type.lower() != str(row["RoleAssigneeType"]).lower():
            continue
        if enabled is not None and enabled != row["Enabled"]:
            continue
        out.append(SimObject(list(TYPE_NAMES), dict(row)))
    return out
