"""Directory facts Sparrow read besides the audit log: domains, service principals, Graph app permissions.

Sparrow used the retired MSOnline/AzureAD modules; we use their Microsoft Graph PowerShell
successors (``Get-MgDomain``, ``Get-MgServicePrincipal``, ``Get-MgServicePrincipalAppRoleAssignment``,
``Get-MgDomainFederationConfiguration`` for Get-MsolDomainFederationSettings). There is no fallback
list of Graph roles: Sparrow matched only the "Microsoft Graph" service principal's AppRoles, and
ApplicationGraphPermissions.csv must be what Sparrow writes.
Every cmdlet's raw output is written to ``directory/<name>.json`` before it is used, so the case
holds what the tenant said. One failing cmdlet is recorded and the others still run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.errors import BridgeError, ExportError
from mia_bridge.evidence.layout import DIRECTORY_DIR
from mia_bridge.exports.sparrow import Row, graph_permission_rows
from mia_bridge.safe_files import write_text

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
FEDERATION_CMDLET = "Get-MgDomainFederationConfiguration"


@dataclass
class DirectoryData:
    domains: list[dict[str, Any]] = field(default_factory=list)
    service_principals: list[dict[str, Any]] = field(default_factory=list)
    # service principal Id -> its app role assignments, in the order listed (Sparrow's input)
    app_role_assignments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # federated root domain (lower case) -> its federation configurations (Get-MgDomainFederationConfiguration)
    federation: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # cmdlet -> message
    files: list[Path] = field(default_factory=list)

    @property
    def application_principals(self) -> list[dict[str, Any]]:
        """Application-type service principals (Sparrow's All mode: ServicePrincipalType -eq Application)."""
        return [
            sp for sp in self.service_principals if str(sp.get("ServicePrincipalType") or "").lower() == "application"
        ]

    @property
    def graph_permissions(self) -> list[Row]:
        """ApplicationGraphPermissions.csv's rows, as Sparrow builds them."""
        return graph_permission_rows(self.service_principals, self.app_role_assignments)

    @property
    def flagged_domains(self) -> list[str]:
        """Sparrow's row-6 domains: federated roots whose IdP MFA is not accepted, and their children."""
        from mia_bridge.investigate.plan import flagged_federated_domains

        return flagged_federated_domains(self.domains, self.federation)

    @property
    def domain_names(self) -> set[str]:
        return {str(d.get("Id") or d.get("Name") or "").lower() for d in self.domains} - {""}


def _json_default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def save_raw(case_dir: Path, name: str, data: Any) -> Path:
    """Write a cmdlet's raw output as JSON under ``directory/``."""
    path = case_dir / DIRECTORY_DIR / f"{name}.json"
    try:
        write_text(path, json.dumps(data, indent=1, default=_json_default, ensure_ascii=False) + "\n")
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


def collect_directory(backend: ExoBackend, case_dir: Path) -> DirectoryData:
    """Domains, service principals and their Graph application permissions."""
    data = DirectoryData()
    domains = _call(backend, data, case_dir, "domains", CmdletCall("Get-MgDomain", {"All": True}))
    data.domains = domains or []
    principals = _call(
        backend, data, case_dir, "service_principals", CmdletCall("Get-MgServicePrincipal", {"All": True})
    )
    data.service_principals = principals or []
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
        for sp in data.application_principals:
            assignments_of(sp)
        data.app_role_assignments = assignments
        data.files.append(save_raw(case_dir, "app_role_assignments", assignments))
    _collect_federation(backend, data, case_dir)
    return data


def federated_roots(domains: Sequence[Mapping[str, Any]]) -> list[str]:
    """Federated root domains (Sparrow: ``Authentication -eq "Federated"`` and no ``RootDomain``)."""
    return [
        domain_name(d)
        for d in domains
        if str(d.get("AuthenticationType") or "").lower() == "federated" and d.get("IsRoot") is not False
        and domain_name(d)
    ]


def domain_name(domain: Mapping[str, Any]) -> str:
    return str(domain.get("Id") or domain.get("Name") or "").lower()


def _collect_federation(backend: ExoBackend, data: DirectoryData, case_dir: Path) -> None:
    """Each federated root domain's federation configuration (Sparrow: Get-MsolDomainFederationSettings).

    A domain whose configuration cannot be read is left out of ``federation``; the SAML check then
    treats it as not known to accept the IdP's MFA (flagged), and the error is recorded.
    """
    roots = federated_roots(data.domains)
    if not roots:
        return
    raw: dict[str, Any] = {}
    for name in roots:
        try:
            result = backend.invoke(CmdletCall(FEDERATION_CMDLET, {"DomainId": name}))
        except BridgeError as exc:
            data.errors[f"{FEDERATION_CMDLET} {name}"] = exc.message
            raw[name] = {"error": exc.message}
            continue
        raw[name] = {"output": result.output}
        if result.errors:
            data.errors[f"{FEDERATION_CMDLET} {name}"] = "; ".join(e.message for e in result.errors)
            continue
        data.federation[name] = [dict(c) for c in result.output if isinstance(c, Mapping)]
    data.files.append(save_raw(case_dir, "domain_federation", raw))
