"""``mia doctor``: connect and report, as a table, whether this tenant can be investigated.

Rows: WinRM reachability and auth, module version, Exchange connection, the roles the audit
cmdlets need (probed by running them on a tiny window), unified audit log ingestion, Audit Premium
licence, mailbox auditing defaults. ``--deep`` adds read-only probes of every assumption about a real
jump host and tenant (doctor_deep.py), each as expected or different and what that changes, and writes
``doctor.json`` (``--out``, default the current folder). ``--json`` prints the rows as JSON instead of the
table. Exit 0 when all is well, 3 when something needs a look, 1 when the connection itself fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from mia_bridge import __version__
from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.bridge.graph_audit import workload_warning
from mia_bridge.cli.commands.doctor_checks import FAIL, OK, WARN, Check
from mia_bridge.cli.connection import ConnectionSettings, SimOptions, connection_options, open_tenant
from mia_bridge.cli.console import current_console, safe
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeError,
    CmdletError,
    CommandNotFoundError,
    ExitCode,
    IngestionDisabledError,
)

ADVANCED_AUDITING_PLAN_ID = "2f442157-a11c-46b9-ae5b-6e39ff4e5849"
ADVANCED_AUDITING_PLAN = "M365_ADVANCED_AUDITING"
REPORT_NAME = "doctor.json"
__all__ = ["FAIL", "OK", "WARN", "Check", "render", "run_checks"]


def run_checks(exo: ExoBackend) -> list[Check]:
    """Every doctor check against an opened backend; each failure is a row, not an exception."""
    desc = exo.describe()
    rest = desc.get("backend") == "rest"
    if rest:  # no jump host: the admin API is reached directly with an app-only or a delegated token
        sign_in = desc.get("sign_in")
        if isinstance(sign_in, dict):
            how = (f"signed in as {desc.get('account')} ({sign_in.get('flow')}, app {sign_in.get('client_id')}, "
                   f"token cache {sign_in.get('token_cache')})")
        else:
            how = "app-only token"
        checks = [
            Check("Admin API endpoint and token", OK, f"{desc.get('endpoint')} ({how}, {desc.get('cloud')})"),
            Check("ExchangeOnlineManagement module", OK, "not needed: the REST backend calls the admin API itself"),
        ]
    else:
        auth = str(desc.get("auth", desc.get("backend")))
        logon = desc.get("logon")
        if logon and logon != auth:
            auth = f"{auth}: logged on with {logon}"  # e.g. Negotiate that fell back to NTLM
        checks = [Check("WinRM endpoint and auth", OK, f"{desc.get('endpoint', desc.get('backend'))} ({auth})")]
    probes = [*_PROBES, ("Graph audit log query API", _graph_audit)] if rest else _PROBES
    for name, probe in probes:
        if rest and probe is _module:
            continue
        try:
            checks.append(probe(exo))
        except CommandNotFoundError as exc:
            checks.append(Check(name, WARN, f"cmdlet not available: {exc.message}"))
        except AccessDeniedError as exc:
            checks.append(Check(name, FAIL, f"access denied: {exc.message} (assign the role the cmdlet needs)"))
        except CmdletError as exc:
            checks.append(Check(name, WARN, f"{exc.cmdlet}: {exc.message}"))
        except BridgeError as exc:
            checks.append(Check(name, FAIL, exc.message))
    return checks


def _module(exo: ExoBackend) -> Check:
    res = exo.invoke(CmdletCall("Get-Module", {"Name": "ExchangeOnlineManagement", "ListAvailable": True}))
    if not res.output:
        return Check("ExchangeOnlineManagement module", FAIL, "not installed on the jump host")
    versions = sorted({str(o.get("Version")) for o in res.output})
    return Check("ExchangeOnlineManagement module", OK, ", ".join(versions))


def _connection(exo: ExoBackend) -> Check:
    res = exo.invoke(CmdletCall("Get-ConnectionInformation"))
    if not res.output:
        return Check("Exchange Online connection", FAIL, "no connection (Connect-ExchangeOnline did not run)")
    info = res.output[0]
    state = f"{info.get('State')}, token {info.get('TokenStatus')}"
    who = f"user {info['UserPrincipalName']}" if info.get("UserPrincipalName") else f"app {info.get('AppId')}"
    detail = f"{info.get('Organization')} as {who} ({state})"
    ok = str(info.get("State")) == "Connected"
    return Check("Exchange Online connection", OK if ok else FAIL, detail)


def _audit_search(exo: ExoBackend) -> Check:
    end = dt.datetime.now(dt.UTC)
    try:
        exo.invoke(CmdletCall("Search-UnifiedAuditLog", {"StartDate": end - dt.timedelta(hours=1), "EndDate": end,
                                                          "ResultSize": 1}))
    except IngestionDisabledError as exc:
        return Check("Audit log search role", OK, f"cmdlet allowed (but: {exc.message})")
    return Check("Audit log search role", OK, "Search-UnifiedAuditLog runs (View-Only Audit Logs or Audit Logs)")


AUDIT_ROLES = ("View-Only Audit Logs", "Audit Logs")


def _roles(exo: ExoBackend) -> Check:
    holders: dict[str, list[str]] = {}
    for role in AUDIT_ROLES:
        res = exo.invoke(CmdletCall("Get-ManagementRoleAssignment", {"Role": role, "Enabled": True}))
        holders[role] = sorted({f"{r.get('RoleAssigneeName')} ({r.get('RoleAssigneeType')})" for r in res.output})
    apps = [h for hs in holders.values() for h in hs if "ServicePrincipal" in h]
    detail = "; ".join(f"{role}: {', '.join(h) or 'nobody'}" for role, h in holders.items())
    if not apps:
        return Check("Audit roles", WARN, f"no service principal holds an audit role ({detail})")
    return Check("Audit roles", OK, detail)


def _graph_audit(exo: ExoBackend) -> Check:
    """``--source graph-audit``: the cloud has the API and the token may list audit log queries (creates none:
    a query counts against the tenant's 200 submissions a day)."""
    from mia_bridge.errors import UsageError

    try:
        client = exo.audit_log_queries()  # type: ignore[attr-defined]
    except UsageError as exc:
        return Check("Graph audit log query API", WARN, f"{exc.message} (use --source ual)")
    warning = workload_warning(client.permissions())
    try:
        client.probe()
    except AccessDeniedError as exc:  # optional: only --source graph-audit needs it
        return Check("Graph audit log query API", WARN, f"{exc.message} (needed only for --source graph-audit)")
    if warning:
        return Check("Graph audit log query API", WARN, warning)
    return Check("Graph audit log query API", OK, f"queries may be listed ({client.version}); --source graph-audit "
                 "works (AuditLogsQuery.Read.All and, signed in, an audit search role)")


def _mailbox_audit_search(exo: ExoBackend) -> Check:
    end = dt.datetime.now(dt.UTC)
    try:
        exo.invoke(CmdletCall("Search-MailboxAuditLog", {"StartDate": end - dt.timedelta(hours=1), "EndDate": end,
                                                          "ResultSize": 1}))
    except CommandNotFoundError:
        return Check("Mailbox audit log search", WARN, "Search-MailboxAuditLog is retired: mailbox audit records come "
                     "from the unified audit log only")
    return Check("Mailbox audit log search", OK, "Search-MailboxAuditLog runs")


def _ingestion(exo: ExoBackend) -> Check:
    res = exo.invoke(CmdletCall("Get-AdminAuditLogConfig"))
    value = res.output[0].get("UnifiedAuditLogIngestionEnabled") if res.output else None
    if value is True:
        return Check("Unified audit log ingestion", OK, "on")
    return Check("Unified audit log ingestion", FAIL, "OFF: nothing is recorded while it is off "
                 "(Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true)")


def _premium(exo: ExoBackend) -> Check:
    res = exo.invoke(CmdletCall("Get-MgSubscribedSku"))
    for sku in res.output:
        for plan in sku.get("ServicePlans") or []:
            if isinstance(plan, dict) and (
                str(plan.get("ServicePlanId", "")).lower() == ADVANCED_AUDITING_PLAN_ID
                or plan.get("ServicePlanName") == ADVANCED_AUDITING_PLAN
            ):
                return Check("Audit Premium licence", OK, f"{ADVANCED_AUDITING_PLAN} in {sku.get('SkuPartNumber')}")
    return Check("Audit Premium licence", WARN, f"no {ADVANCED_AUDITING_PLAN}: MailItemsAccessed and Send may be "
                 "missing for unlicensed users, and retention is 180 days")


def _mailbox_auditing(exo: ExoBackend) -> Check:
    res = exo.invoke(CmdletCall("Get-Mailbox", {"ResultSize": 1000}, select=("UserPrincipalName", "AuditEnabled")))
    total = len(res.output)
    enabled = sum(1 for m in res.output if m.get("AuditEnabled") is True)
    if total == 0:
        return Check("Mailbox auditing", WARN, "no mailboxes returned")
    status = OK if enabled == total else WARN
    return Check("Mailbox auditing", status, f"AuditEnabled on {enabled} of {total} mailboxes")


_PROBES: list[tuple[str, Callable[[ExoBackend], Check]]] = [
    ("ExchangeOnlineManagement module", _module),
    ("Exchange Online connection", _connection),
    ("Audit roles", _roles),
    ("Audit log search role", _audit_search),
    ("Mailbox audit log search", _mailbox_audit_search),
    ("Unified audit log ingestion", _ingestion),
    ("Audit Premium licence", _premium),
    ("Mailbox auditing", _mailbox_auditing),
]


def render(checks: list[Check], deep: bool = False) -> Table:
    table = Table(title="mia doctor" + (" --deep" if deep else ""), show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    if deep:
        table.add_column("as expected?", overflow="fold")  # deep probes: expected or different, and what changes
    colours = {OK: "green", WARN: "yellow", FAIL: "red"}
    for check in checks:
        # Text, never markup: details quote the server ("[bold]" in an error message is just text)
        row = [Text(safe(check.name)), Text(check.status, style=colours[check.status]), Text(safe(check.detail))]
        if deep:
            row.append(Text(safe(check.verdict())))
        table.add_row(*row)
    return table


def report(checks: list[Check], exo_description: dict[str, Any] | None, deep: bool) -> dict[str, Any]:
    """The JSON document: every row, the mode and what was connected to (never a secret)."""
    return {
        "tool": "mia-bridge",
        "version": __version__,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "deep" if deep else "basic",
        "backend": exo_description or {},
        "status": _overall(checks),
        "checks": [c.to_dict() for c in checks],
    }


def _overall(checks: list[Check]) -> str:
    if checks and checks[0].status == FAIL:
        return FAIL
    return OK if all(c.status == OK for c in checks) else WARN


def _report_path(out_option: Path | None) -> Path:
    if out_option is None:
        return Path.cwd() / REPORT_NAME
    return out_option / REPORT_NAME if out_option.is_dir() or str(out_option).endswith(os.sep) else out_option


@connection_options
def doctor(
    deep: bool = typer.Option(False, "--deep", help="Also probe every assumption about a real jump host and tenant "
                              "(read-only; for the first contact): serialisation depth, command visibility, plain "
                              "call caps, ResultCount, message trace precision, dehydration. Writes doctor.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON (name, status, detail) instead "
                                 "of the table."),
    report_out: Path | None = typer.Option(None, "--out", help="Where to write doctor.json: a file, or a folder "
                                           "(default with --deep: the current folder; without --deep: not "
                                           "written unless given)."),
    *,
    conn: ConnectionSettings,
    simulator: SimOptions | None,
) -> None:
    """Connect to the tenant and check everything an investigation needs."""
    checks: list[Check]
    description: dict[str, Any] | None = None
    try:
        with open_tenant(conn, simulator) as (exo, present):
            description = exo.describe()
            checks = run_checks(exo)
            if deep:
                from mia_bridge.cli.commands.doctor_deep import deep_checks

                checks += deep_checks(exo, now=present)
    except BridgeError as exc:
        first = "Admin API endpoint and token" if conn.backend == "rest" else "WinRM endpoint and auth"
        checks = [Check(first, FAIL, exc.render().removeprefix("error: "))]
    document = report(checks, description, deep)
    console = current_console()
    if as_json:
        console.out.write_line(json.dumps(document, default=str))
    else:
        console.out.rich.print(render(checks, deep))
    if deep or report_out is not None:
        path = _report_path(report_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        console.err.print(f"written: {path}")
    if checks[0].status == FAIL:  # could not even connect
        raise typer.Exit(ExitCode.FAILURE)
    if any(c.status != OK for c in checks):
        raise typer.Exit(ExitCode.ATTENTION)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
