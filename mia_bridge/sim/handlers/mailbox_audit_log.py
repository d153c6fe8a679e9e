"""Search-MailboxAuditLog (mailbox-stored audit log; retirement announced, so it can be switched off in
TenantConfig and then fails with CommandNotFoundException before reaching here).

The mailbox log is derived from the same Exchange mailbox records the unified audit log holds, in the
``-ShowDetails`` MailboxAuditLogEvent shape (exchange-platform-facts §3.3): ``OperationProperties``
flattened to ``MailAccessType:Bind IsThrottled:False``, Folders in ``AggregatedRecordFoldersData``.
Results are newest first, capped by -ResultSize (1..250,000, default 1,000).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.handlers.mailbox import find_mailboxes, not_found
from mia_bridge.sim.handlers.unified_audit_log import maybe_fail
from mia_bridge.sim.registry import SimCmdletError, SimObject, cmdlet
from mia_bridge.sim.tenant import TenantSession

NAME = "Search-MailboxAuditLog"
EVENT_TYPE = ["Microsoft.Exchange.Management.SystemConfigurationTasks.MailboxAuditLogEvent", "System.Object"]
SUMMARY_TYPE = ["Microsoft.Exchange.Management.SystemConfigurationTasks.MailboxAuditLogRecord", "System.Object"]
MAX_RESULT_SIZE = 250_000
MAILBOX_RECORD_TYPES = (2, 3, 50)
LOGON_TYPES = {0: "Owner", 1: "Admin", 2: "Delegate"}


@cmdlet(NAME)
def search_mailbox_audit_log(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params(NAME, params, ("Identity", "Mailboxes", "StartDate", "EndDate", "Operations", "ShowDetails",
                              "ResultSize", "LogonTypes", "ExternalAccess", "HasAttachments", "GroupMailbox",
                              "IncludeInactiveMailbox"))
    size = p.integer("ResultSize", 1000) or 1000
    if not 1 <= size <= MAX_RESULT_SIZE:
        raise SimCmdletError(
            f"Cannot validate argument on parameter 'ResultSize'. The {size} argument is outside the range "
            f"1-{MAX_RESULT_SIZE}.", category="InvalidData", error_id=f"ParameterArgumentValidationError,{NAME}",
            exception_type="System.Management.Automation.ParameterBindingValidationException",
        )
    show_details = p.switch("ShowDetails")
    if show_details and p.has("Mailboxes"):
        raise SimCmdletError("The ShowDetails parameter can't be used with the Mailboxes parameter.",
                             category="InvalidArgument", error_id=f"ParameterBindingException,{NAME}",
                             exception_type="System.Management.Automation.ParameterBindingException")
    identities: list[str | None] = [p.text("Identity") or ""] if p.has("Identity") else []
    identities = identities or list(p.texts("Mailboxes") or []) or [None]
    tenant = session.tenant
    boxes: list[dict[str, Any]] = []
    for identity in identities:
        found = find_mailboxes(session, identity)
        if identity is not None and not found:
            raise not_found(NAME, identity, tenant.config.organization)
        boxes.extend(found)
    maybe_fail(tenant, NAME)
    end = p.date("EndDate") or datetime.now(UTC)
    start = p.date("StartDate") or end - timedelta(days=90)
    operations = p.texts("Operations")
    logon_types = {t.lower() for t in p.texts("LogonTypes") or []}
    if not logon_types:
        # Learn, Search-MailboxAuditLog -LogonTypes: without it, Delegate and Admin entries are returned; the
        # owner's own access (most MailItemsAccessed) only when asked for (issue 12 point 8; the harsher side).
        logon_types = {"delegate", "admin"}
    upns = {str(b["UserPrincipalName"]).lower(): b for b in boxes}
    # One mailbox: its UPN is in every record of it, so a text scan narrows before parsing JSON.
    narrow = next(iter(upns)) if len(upns) == 1 else None
    positions = tenant.select(start=start, end=end, operations=operations, record_types=MAILBOX_RECORD_TYPES,
                              free_text=narrow)
    events: list[dict[str, Any]] = []
    for text in reversed(tenant.store.texts(positions)):  # newest first
        record = json.loads(text)
        owner = str(record.get("MailboxOwnerUPN") or "").lower()
        if owner not in upns:
            continue
        logon = LOGON_TYPES.get(int(record.get("LogonType") or 0), "Owner")
        if logon_types and logon.lower() not in logon_types:
            continue
        events.append(record)
        if len(events) >= size:
            break
    if not show_details:
        return _summaries(events, upns)
    return [SimObject(list(EVENT_TYPE), _event(r, upns[str(r["MailboxOwnerUPN"]).lower()])) for r in events]


def _summaries(events: list[dict[str, Any]], upns: dict[str, dict[str, Any]]) -> list[SimObject]:
    """Without -ShowDetails: one row per mailbox with its most recent access."""
    latest: dict[str, str] = {}
    for record in events:
        latest.setdefault(str(record["MailboxOwnerUPN"]).lower(), str(record["CreationTime"]))
    return [
        SimObject(list(SUMMARY_TYPE), {
            "MailboxIdentity": upns[upn]["Identity"],
            "MailboxResolvedOwnerName": upns[upn]["DisplayName"],
            "LastAccessed": datetime.fromisoformat(when).replace(tzinfo=UTC),
            "Identity": upns[upn]["ExchangeGuid"],
            "IsValid": True,
            "ObjectState": "New",
        })
        for upn, when in latest.items()
    ]


def _event(record: dict[str, Any], mailbox: dict[str, Any]) -> dict[str, Any]:
    props = record.get("OperationProperties") or []
    flat = " ".join(f"{p.get('Name')}:{p.get('Value')}" for p in props if isinstance(p, dict))
    item = record.get("Item") or {}
    parent = item.get("ParentFolder") or {}
    folders = record.get("Folders")
    return {
        "Operation": record.get("Operation"),
        "OperationResult": record.get("ResultStatus", "Succeeded"),
        "LogonType": LOGON_TYPES.get(int(record.get("LogonType") or 0), "Owner"),
        "ExternalAccess": bool(record.get("ExternalAccess")),
        "FolderId": parent.get("Id"),
        "FolderPathName": parent.get("Path"),
        "ClientInfoString": record.get("ClientInfoString", ""),
        "ClientIPAddress": record.get("ClientIPAddress", ""),
        "ClientMachineName": "",
        "ClientProcessName": "",
        "ClientVersion": "",
        "InternalLogonType": LOGON_TYPES.get(int(record.get("InternalLogonType") or 0), "Owner"),
        "MailboxOwnerUPN": record.get("MailboxOwnerUPN"),
        "MailboxOwnerSid": record.get("MailboxOwnerSid"),
        "LogonUserDisplayName": record.get("UserId") if record.get("UserId") != record.get("MailboxOwnerUPN")
        else mailbox.get("DisplayName"),
        "LogonUserSid": record.get("LogonUserSid"),
        "OriginatingServer": record.get("OriginatingServer"),
        "SessionId": record.get("SessionId", ""),
        "OperationProperties": flat,
        "AuditOperationsCountInAggregatedRecord": record.get("OperationCount", 1),
        "AggregatedRecordFoldersData": json.dumps(folders, separators=(",", ":")) if folders else "",
        "AppId": record.get("AppId", ""),
        "ClientAppId": record.get("ClientAppId", ""),
        "MailboxGuid": record.get("MailboxGuid"),
        "MailboxResolvedOwnerName": mailbox.get("DisplayName"),
        "LastAccessed": datetime.fromisoformat(str(record["CreationTime"])).replace(tzinfo=UTC),
        "Identity": record.get("Id"),
        "IsValid": True,
        "ObjectState": "New",
    }
