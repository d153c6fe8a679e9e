"""``mia doctor --deep``: read-only probes of every assumption the bridge makes about a real jump host
and tenant (issue 12), each reported as expected or different, and what a difference changes.

Probes: serialisation depth of a known nested object (Get-MgSubscribedSku ServicePlans), visibility of
each command the bridge runs (Get-Command), whether a plain Search-UnifiedAuditLog call returns all of a
small known window that a session returns, whether ResultCount echoes ResultSize, the precision of
message trace ``Received``, and dehydration (Get-OrganizationConfig). Nothing is changed in the tenant.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.cli.commands.doctor_checks import FAIL, OK, WARN, Check
from mia_bridge.errors import BridgeError, CommandNotFoundError

# Every command the bridge sends over PowerShell (collect, investigate, enrich, doctor).
NEEDED_COMMANDS = (
    "Get-ConnectionInformation", "Search-UnifiedAuditLog", "Search-MailboxAuditLog", "Get-AdminAuditLogConfig",
    "Set-AdminAuditLogConfig", "Get-OrganizationConfig", "Enable-OrganizationCustomization", "Get-Mailbox",
    "Get-EXOMailbox", "Get-ManagementRoleAssignment", "Get-MessageTraceV2", "Get-MessageTrace",
    "Get-MgSubscribedSku", "Get-MgServicePrincipal", "Get-MgServicePrincipalAppRoleAssignment", "Get-MgDomain",
    "Get-MgDomainFederationConfiguration",
    "Get-MgUserMessage", "Get-MgUserMailFolder", "Get-MgUserMailFolderChildFolder",
)
# What a missing command costs.
_MISSING_EFFECT = {
    "search-unifiedauditlog": "no audit log can be collected",
    "search-mailboxauditlog": "mailbox audit log from the unified audit log only",
    "set-adminauditlogconfig": "--enable-ingestion cannot turn ingestion on",
    "enable-organizationcustomization": "--enable-ingestion cannot prepare a dehydrated tenant",
    "get-messagetracev2": "message trace falls back to Get-MessageTrace (10 days of reach)",
    "get-exomailbox": "licence detection falls back to Get-Mailbox",
    "get-mgusermessage": "enrichment from the mailbox (Graph) is unavailable",
}
PLAIN_CAP_REPORTED = 120
# How far back the probe window may grow: the audit log's retention without Audit Premium, 180 days for records
# since 17 Oct 2023 (Learn "Set up Audit"; ../shared/reference/exchange-platform-facts.md, retention)
LOOKBACK = dt.timedelta(days=180)


def deep_checks(exo: ExoBackend, now: Callable[[], dt.datetime] | None = None) -> list[Check]:
    """Every deep probe; each failure of a probe is a row, not an exception."""
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    rest = exo.describe().get("backend") == "rest"
    out: list[Check] = []
    for name, probe in _PROBES:
        try:
            out.extend(probe(exo, clock(), rest))
        except CommandNotFoundError as exc:
            out.append(Check(name, WARN, f"cannot probe: {exc.message}"))
        except BridgeError as exc:
            out.append(Check(name, WARN, f"cannot probe: {exc.message}"))
    return out


def _depth(exo: ExoBackend, now: dt.datetime, rest: bool) -> list[Check]:
    name = "Serialisation depth"
    expected = "nested objects (ServicePlans of a SKU) arrive whole"
    skus = exo.invoke(CmdletCall("Get-MgSubscribedSku")).output
    plans = next((s.get("ServicePlans") for s in skus if s.get("ServicePlans")), None)
    if not plans:
        return [Check(name, WARN, "no subscribed SKU with service plans to look at", expected, "nothing to judge",
                      "licence detection cannot be confirmed", None)]
    first = plans[0] if isinstance(plans, list) else plans
    if isinstance(first, dict):
        observed = "nested objects arrive whole" + (" (Graph JSON)" if rest else " (depth 2 or more)")
        return [Check(name, OK, observed, expected, observed, "none", True)]
    text = str(first)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        observed = "nested data arrives as JSON text (the endpoint flattens what depth-1 remoting would lose)"
        return [Check(name, OK, observed, expected, observed, "nothing: the bridge reads the JSON", False)]
    observed = f"nested objects arrive as their ToString() text (depth 1), e.g. {text[:60]!r}"
    return [Check(name, FAIL, observed, expected, observed,
                  "licence detection cannot see the Audit Premium plan and nested fields are lost: use the "
                  "MiaBridge endpoint of ps_scripts/, which emits nested data as JSON", False)]


def _visibility(exo: ExoBackend, now: dt.datetime, rest: bool) -> list[Check]:
    name = "Command visibility"
    expected = "every command the bridge runs is visible to this session"
    if rest:
        observed = "not applicable: InvokeCommand serves the service-side cmdlets; Get-EXO* are not used over REST"
        return [Check(name, OK, observed, expected, observed, "none", None)]
    result = exo.invoke(CmdletCall("Get-Command", {"Name": list(NEEDED_COMMANDS)}))
    found = {str(o.get("Name", "")).lower() for o in result.output}
    missing = [c for c in NEEDED_COMMANDS if c.lower() not in found]
    if not missing:
        observed = f"all {len(NEEDED_COMMANDS)} visible"
        return [Check(name, OK, observed, expected, observed, "none", True)]
    effects = "; ".join(f"{c}: {_MISSING_EFFECT.get(c.lower(), 'steps that use it fail')}" for c in missing)
    status = FAIL if "search-unifiedauditlog" in {c.lower() for c in missing} else WARN
    observed = f"not visible: {', '.join(missing)}"
    return [Check(name, status, observed, expected, observed, effects, False)]


def _search(exo: ExoBackend, start: dt.datetime, end: dt.datetime, **extra: Any) -> list[dict[str, Any]]:
    params = {"StartDate": start, "EndDate": end, "ResultSize": 5000, **extra}
    return exo.invoke(CmdletCall("Search-UnifiedAuditLog", params,
                                 select=("AuditData", "Identity", "ResultIndex", "ResultCount"))).output


def _known_window(exo: ExoBackend, now: dt.datetime) -> tuple[dt.datetime, dt.datetime, list[dict[str, Any]]]:
    """A window that one session page returns completely (fewer than 5,000 rows, ResultIndex 1..n), and with
    more than ``PLAIN_CAP_REPORTED`` rows where the retention period allows it (fewer cannot show a capped call)."""
    end = now.replace(microsecond=0)
    length = dt.timedelta(days=1)
    rows: list[dict[str, Any]] = []
    for _ in range(12):
        start = end - length
        rows = _search(exo, start, end, SessionId=str(uuid.uuid4()), SessionCommand="ReturnLargeSet")
        if len(rows) >= 5000:
            length /= 8
        elif len(rows) <= PLAIN_CAP_REPORTED and length < LOOKBACK:
            length = min(length * 6, LOOKBACK)  # a quiet tenant (or a quiet day): look further back
        else:
            return start, end, rows
    return end - length, end, rows


def _plain_and_count(exo: ExoBackend, now: dt.datetime, rest: bool) -> list[Check]:
    start, end, rows = _known_window(exo, now)
    ids = {str(r.get("Identity")) for r in rows}
    n = len(ids)
    plain_name, count_name = "Plain call completeness", "ResultCount"
    plain_expected = "a plain call returns every record of the window up to -ResultSize (as documented)"
    count_expected = "ResultCount is the number of matching records (as documented)"
    if not rows:
        return [Check(plain_name, WARN, "no records in the last 180 days to compare", plain_expected,
                      "nothing to judge", "none", None),
                Check(count_name, WARN, "no records to read ResultCount from", count_expected, "nothing to judge",
                      "none", None)]
    window = f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC"
    plain = {str(r.get("Identity")) for r in _search(exo, start, end)}
    if n <= PLAIN_CAP_REPORTED:
        observed = f"the window {window} holds only {n} records: too few to see a cap"
        checks = [Check(plain_name, OK, observed, plain_expected, observed, "none", None)]
    elif plain >= ids:
        observed = f"a plain call returned all {n} records of {window}"
        checks = [Check(plain_name, OK, observed, plain_expected, observed,
                        "none: mia collects with sessions either way", True)]
    else:
        observed = f"a plain call returned {len(plain & ids)} of the {n} records a session returned ({window})"
        checks = [Check(plain_name, OK, observed, plain_expected, observed,
                        f"plain calls are silently capped here (reports say near {PLAIN_CAP_REPORTED}): tools that "
                        "trust them (one Sparrow call) miss records; mia collects with sessions only", False)]
    counts = {r.get("ResultCount") for r in rows}
    matches: bool | None
    if counts == {5000}:
        observed = f"ResultCount is 5000 (= -ResultSize) for a window of {n} records: it echoes -ResultSize"
        changes = "nothing for mia (it estimates sizes itself); tools that read totals from ResultCount are misled"
        matches = False
    elif counts == {n} or counts == {len(rows)}:
        observed, changes, matches = f"ResultCount is {n}: the true total", "none", True
    else:
        observed, changes = f"ResultCount values {sorted(map(str, counts))} for {n} records", "nothing for mia"
        matches = False
    checks.append(Check(count_name, OK, observed, count_expected, observed, changes, matches))
    return checks


def _precision(exo: ExoBackend, now: dt.datetime, rest: bool) -> list[Check]:
    name = "Message trace precision"
    expected = "Received has sub-second precision"
    end = now.replace(microsecond=0)
    received: list[dt.datetime] = []
    for _ in range(9):  # 10-day windows back through message trace's 90 days, until one has rows
        rows = exo.invoke(CmdletCall("Get-MessageTraceV2", {"StartDate": end - dt.timedelta(days=10) + dt.timedelta(
            seconds=1), "EndDate": end, "ResultSize": 200})).output
        received = [r["Received"] for r in rows if isinstance(r.get("Received"), dt.datetime)]
        if received:
            break
        end -= dt.timedelta(days=10)
    if not received:
        return [Check(name, OK, "no messages in the last 90 days to look at", expected, "nothing to judge", "none",
                      None)]
    if any(r.microsecond for r in received):
        observed = f"sub-second ({len(received)} rows looked at)"
        return [Check(name, OK, observed, expected, observed,
                      "none: paging continues at the next whole second and removes repeated rows", True)]
    observed = f"whole seconds in all {len(received)} rows"
    return [Check(name, OK, observed, expected, observed, "nothing: paging is exact either way", False)]


def _dehydration(exo: ExoBackend, now: dt.datetime, rest: bool) -> list[Check]:
    name = "Dehydration"
    expected = "not dehydrated (configuration changes allowed)"
    result = exo.invoke(CmdletCall("Get-OrganizationConfig"))
    value = result.output[0].get("IsDehydrated") if result.output else None
    if isinstance(value, str):
        value = value.strip().lower() == "true"
    if value is None:
        return [Check(name, WARN, "IsDehydrated not returned", expected, "unknown", "none known", None)]
    if value:
        observed = "IsDehydrated: True"
        return [Check(name, WARN, observed, expected, observed,
                      "--enable-ingestion runs Enable-OrganizationCustomization first (it asks before doing so)",
                      False)]
    observed = "IsDehydrated: False"
    return [Check(name, OK, observed, expected, observed, "none", True)]


_PROBES: list[tuple[str, Callable[[ExoBackend, dt.datetime, bool], list[Check]]]] = [
    ("Serialisation depth", _depth),
    ("Command visibility", _visibility),
    ("Plain call completeness", _plain_and_count),
    ("Message trace precision", _precision),
    ("Dehydration", _dehydration),
]
