"""Directory facts Sparrow read besides the audit log: domains, service principals, Graph app permissions.

Sparrow used the retired MSOnline/AzureAD modules; we use their Microsoft Graph PowerShell
successors (``Get-MgDomain``, ``Get-MgServicePrincipal``, ``Get-MgServicePrincipalAppRoleAssignment``).
Every cmdlet's raw output is written to ``directory/<name>.json`` before it is used, so the case
holds what the tenant said. One failing cmdlet is recorded and the others still run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.errors import BridgeError, ExportError
from mia_bridge.exports.sparrow import GraphPermission

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DIRECTORY_DIR = "directory"
# Well-known Microsoft Graph application-role ids, for when the Graph service principal's AppRoles
# are not in the listing (they are public and the same in every tenant).
KNOWN_GRAPH_ROLES = {
    "810c84a8-4a9e-49e6-bf7d-12d183f40d01": "Mail.Read",
    "e2a3a72e-5f79-4c64-b1b1-878b674786c9": "Mail.ReadWrite",
    "b633e1c5-b582-4048-a93e-9f11b44c7e96": "Mail.Send",
    "693c5e45-0940-467d-9b8a-1022fb9d42ef": "Mail.ReadBasic.All",
    "01d4889c-1287-42c6-ac1f-5d1e02578ef6": "Files.Read.All",
    "75359482-378d-4052-8f01-80520e7db3cd": "Files.ReadWrite.All",
    "498476ce-e0fe-48b0-b801-37ba7e2685c6": "Organization.Read.All",
    "7ab1d382-f21e-4acd-a863-ba3e13f7da61": "Directory.Read.All",
    "19dbc75e-c2e2-444c-a770-ec69d8559fc7": "Directory.ReadWrite.All",
    "df021288-bdef-4463-88db-98f22de89214": "User.Read.All",
    "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9": "Application.ReadWrite.All",
    "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8": "RoleManagement.ReadWrite.Directory",
    "06b708a9-e830-4db3-a914-8e69da51d44f": "AppRoleAssignment.ReadWrite.All",
    "b0afded3-3588-46d8-8b3d-9842eff778da": "AuditLog.Read.All",
}


@dataclass
class DirectoryData:
    domains: list[dict[str, Any]] = field(default_factory=list)
    service_principals: list[dict[str, Any]] = field(default_factory=list)
    graph_permissions: list[GraphPermission] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # cmdlet -> message
    files: list[Path] = field(default_factory=list)

    @property
    def application_principals(self) -> list[dict[str, Any]]:
        """Application-type service principals (Sparrow's All mode: ServicePrincipalType -eq Application)."""
        return [sp for sp in self.service_principals if str(sp.get("ServicePrincipalType", "")) == "Application"]

    @property
    def domain_names(self) -> set[str]:
        return {str(d.get("Id") or d.get("Name") or "").lower() for d in self.domains} - {""}


def _json_default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def save_raw(case_dir: Path, name: str, data: Any) -> Path:
    """Write a cmdlet's raw output as JSON under ``directory/``."""
    path = case_dir / DIRECTORY_DIR / f"{name}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, default=_json_default, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}", path=str(path)) from exc
    return path


def _call(
    backend: ExoBackend, data: DirectoryData, case_dir: Path, file_name: str, call: CmdletCall
) -> list[dict[str, Any]] | None:
    try:
        result = backend.invoke(call)
    except BridgeError as exc:
        data.errors[call.name] = exc.message
        return None
    data.files.append(save_raw(case_dir, file_name, {"call": call.describe(), "output": result.output}))
    if result.errors:
        data.errors[call.name] = "; ".join(e.message for e in result.errors)
    return result.output


def graph_permissions(
    principals: Sequence[Mapping[str, Any]],
    assignments_of: Callable[[Mapping[str, Any]], list[dict[str, Any]]],
    graph_roles: Mapping[str, str],
) -> list[GraphPermission]:
    """Microsoft Graph app roles held by each application SP (Sparrow's ApplicationGraphPermissions)."""
    out: list[GraphPermission] = []
    for sp in principals:
        for assignment in assignments_of(sp):
            resource = str(assignment.get("ResourceDisplayName") or "")
            role_id = str(assignment.get("AppRoleId") or "").lower()
            is_graph = resource == "Microsoft Graph" or role_id in graph_roles
            if not is_graph or role_id not in graph_roles:
                continue  # Sparrow re-emitted the previous row here (stale-row bug); we skip it
            out.append(
                GraphPermission(str(sp.get("DisplayName") or ""), str(sp.get("AppId") or ""), graph_roles[role_id])
            )
    return out


def collect_directory(backend: ExoBackend, case_dir: Path) -> DirectoryData:
    """Domains, service principals and their Graph application permissions."""
    data = DirectoryData()
    domains = _call(backend, data, case_dir, "domains", CmdletCall("Get-MgDomain", {"All": True}))
    data.domains = domains or []
    principals = _call(
        backend, data, case_dir, "service_principals", CmdletCall("Get-MgServicePrincipal", {"All": True})
    )
    data.service_principals = principals or []
    graph_sp = next(
        (sp for sp in data.service_principals if str(sp.get("AppId", "")).lower() == MICROSOFT_GRAPH_APP_ID), None
    )
    graph_roles: dict[str, str] = {}
    if graph_sp is not None:
        for role in graph_sp.get("AppRoles") or []:
            if isinstance(role, Mapping) and role.get("Id"):
                graph_roles[str(role["Id"]).lower()] = str(role.get("Value") or "")
    assignments: dict[str, list[dict[str, Any]]] = {}

    def assignments_of(sp: Mapping[str, Any]) -> list[dict[str, Any]]:
        sp_id = str(sp.get("Id") or "")
        if not sp_id:
            return []
        call = CmdletCall("Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": sp_id, "All": True})
        try:
            result = backend.invoke(call)
        except BridgeError as exc:
            data.errors["Get-MgServicePrincipalAppRoleAssignment"] = exc.message
            return []
        assignments[sp_id] = result.output
        return result.output

    if principals is not None:
        data.graph_permissions = graph_permissions(data.application_principals, assignments_of, graph_roles)
        data.files.append(save_raw(case_dir, "app_role_assignments", assignments))
    return data
