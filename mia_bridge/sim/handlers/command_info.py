"""Get-Command -Name …: which of the named commands this session can run (``mia doctor --deep`` asks).

Commands the tenant would refuse as unknown (Search-MailboxAuditLog once retired, Get-MessageTraceV2
where only the old cmdlet exists) are not listed; each missing name is a non-terminating
CommandNotFoundException, as in PowerShell.
"""

from __future__ import annotations

from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, canonical_name, cmdlet, registered_cmdlets
from mia_bridge.sim.tenant import TenantSession

NAME = "Get-Command"


def _hidden(session: TenantSession, name: str) -> bool:
    key = name.lower()
    if key == "search-mailboxauditlog" and session.tenant.config.mailbox_audit_retired:
        return True
    if key == "get-messagetracev2":
        from mia_bridge.sim.mailflow import mailflow_of

        return not mailflow_of(session.tenant).v2_available
    return False


if NAME.lower() not in {n.lower() for n in registered_cmdlets()}:  # another handler may already provide it

    @cmdlet(NAME)
    def get_command(session: TenantSession, params: dict[str, Any]) -> SimOutput:
        p = Params(NAME, params, ("Name", "Module", "CommandType", "ListImported"))
        known = {n.lower() for n in registered_cmdlets()}
        out = SimOutput()
        for name in p.texts("Name") or sorted(registered_cmdlets()):
            if name.lower() in known and not _hidden(session, name):
                out.objects.append(SimObject(
                    ["System.Management.Automation.FunctionInfo", "System.Management.Automation.CommandInfo",
                     "System.Object"],
                    {"Name": canonical_name(name), "CommandType": "Function", "Source": "tmpEXO_sim",
                     "Visibility": "Public"},
                ))
            else:
                out.errors.append(SimCmdletError(
                    f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, or "
                    "executable program.", category="ObjectNotFound", error_id=f"CommandNotFoundException,{NAME}",
                    exception_type="System.Management.Automation.CommandNotFoundException",
                ))
        return out
