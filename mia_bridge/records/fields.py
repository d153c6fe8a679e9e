"""Accessors over one AuditData dict, used by every package that reads a record's fields (the findings,
attribution, offline searches, the timeline, the Sparrow files' selection, the analysis of evidence).

AuditData shapes vary by workload and by export (see exchange-platform-facts.md §1): a one-element
array may arrive as a bare object, ``ClientIP`` may carry a port, and Exchange admin cmdlet records
keep their arguments in ``Parameters`` as ``[{Name, Value}]``. Values are decoded as ``cells`` decodes
them; times are read by ``timestamps.parse_time``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from mia_bridge.records.cells import as_list, parse_ps_hashtable
from mia_bridge.records.timestamps import parse_time

__all__ = [
    "LOGON_TYPES",
    "RECORD_TYPE_NAMES",
    "access_properties",
    "accessed_messages",
    "as_list",
    "client_ip",
    "guids_in",
    "is_throttled",
    "mail_access_type",
    "mailbox_of",
    "name_values",
    "operation_of",
    "parameters",
    "record_apps",
    "record_id",
    "record_ip",
    "record_time",
    "record_type_code",
    "strip_port",
    "synced_folders",
    "unique_by_id",
    "user_of",
]  # fmt: skip

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

R = TypeVar("R", bound=Mapping[str, Any])

# AuditLogRecordType (Management Activity API schema): name -> number; LogonType: number -> name.
RECORD_TYPE_NAMES: dict[str, int] = {
    "ExchangeAdmin": 1, "ExchangeItem": 2, "ExchangeItemGroup": 3, "SharePoint": 4,
    "SharePointFileOperation": 6, "OneDrive": 7, "AzureActiveDirectory": 8,
    "AzureActiveDirectoryAccountLogon": 9, "DataCenterSecurityCmdlet": 10, "ComplianceDLPSharePoint": 11,
    "Sway": 12, "ComplianceDLPExchange": 13, "SharePointSharingOperation": 14,
    "AzureActiveDirectoryStsLogon": 15, "SkypeForBusinessPSTNUsage": 16, "SkypeForBusinessUsersBlocked": 17,
    "SecurityComplianceCenterEOPCmdlet": 18, "ExchangeAggregatedOperation": 19, "PowerBIAudit": 20,
    "MicrosoftTeams": 25, "ThreatIntelligence": 28, "MailSubmission": 29, "MicrosoftFlow": 30,
    "AeD": 31, "MicrosoftStream": 32, "ComplianceDLPSharePointClassification": 33,
    "ThreatFinder": 34, "Project": 35, "SharePointListOperation": 36, "SharePointCommentOperation": 37,
    "DataGovernance": 38, "Kaizala": 39, "SecurityComplianceAlerts": 40, "ThreatIntelligenceUrl": 41,
    "SecurityComplianceInsights": 42, "MIPLabel": 43, "WorkplaceAnalytics": 44, "PowerAppsApp": 45,
    "PowerAppsPlan": 46, "ThreatIntelligenceAtpContent": 47, "LabelContentExplorer": 48,
    "TeamsHealthcare": 49, "ExchangeItemAggregated": 50, "HygieneEvent": 51, "DataInsightsRestApiAudit": 52,
    "InformationBarrierPolicyApplication": 53, "SharePointListItemOperation": 54,
    "SharePointContentTypeOperation": 55, "SharePointFieldOperation": 56,
}
LOGON_TYPES: dict[str, str] = {"0": "Owner", "1": "Admin", "2": "Delegated", "3": "Transport", "4": "SystemService",
               "5": "BestAccess", "6": "DelegatedAdmin"}


def record_type_code(value: Any) -> int | None:
    """A RecordType given as its number (``50``, ``"50"``) or its name (``ExchangeItemAggregated``, any case);
    None for a name this table does not know."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    return _RECORD_TYPE_CODES.get(text.lower())


_RECORD_TYPE_CODES = {name.lower(): code for name, code in RECORD_TYPE_NAMES.items()}


def name_values(value: Any) -> dict[str, str]:
    """``[{Name, Value}]`` (Parameters, OperationProperties, ExtendedProperties) as a dict."""
    out: dict[str, str] = {}
    for item in as_list(value):
        if isinstance(item, Mapping) and "Name" in item:
            raw = item.get("Value", item.get("NewValue"))
            out[str(item["Name"])] = "" if raw is None else str(raw)
    return out


def parameters(record: Mapping[str, Any]) -> dict[str, str]:
    """Cmdlet parameters of an Exchange admin record; OperationProperties for UpdateInboxRules."""
    params = name_values(record.get("Parameters"))
    if not params:
        params = name_values(record.get("OperationProperties"))
    return params


def strip_port(address: str) -> str:
    text = address.strip()
    if text.startswith("["):  # [IPv6]:port
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:  # IPv4:port
        return text.split(":", 1)[0]
    return text


def operation_of(record: Mapping[str, Any]) -> str:
    """The operation, lower case, without Entra's trailing period ("Consent to application.")."""
    return str(record.get("Operation") or "").strip().rstrip(".").strip().lower()


def client_ip(record: Mapping[str, Any]) -> str:
    """The client address as written, whichever field the workload uses (ClientIPAddress, ClientIP,
    ActorIpAddress)."""
    for key in ("ClientIPAddress", "ClientIP", "ActorIpAddress"):
        value = record.get(key)
        if value:
            return str(value)
    return ""


def record_ip(record: Mapping[str, Any]) -> str:
    """The client address without port or brackets, lower case (what the findings compare)."""
    address = client_ip(record)
    return strip_port(address).lower() if address else ""


def record_apps(record: Mapping[str, Any]) -> set[str]:
    """Application ids acting in a record (AppId, ClientAppId, ApplicationId, AppAccessContext)."""
    apps = set()
    for key in ("AppId", "ClientAppId", "ApplicationId"):
        value = record.get(key)
        if value:
            apps.add(str(value).lower())
    context = record.get("AppAccessContext")
    if isinstance(context, Mapping) and context.get("ClientAppId"):
        apps.add(str(context["ClientAppId"]).lower())
    return apps


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """CreationTime as aware UTC (``parse_time``: ISO 8601 and the portals' US dates); None when unreadable."""
    return parse_time(record.get("CreationTime"))


def record_id(record: Mapping[str, Any]) -> str:
    return str(record.get("Id") or "")


def unique_by_id(records: Iterable[R]) -> list[R]:
    """Records in order, each Id once (records without an Id are all kept)."""
    seen: set[str] = set()
    out: list[R] = []
    for record in records:
        rid = record_id(record)
        if rid and rid in seen:
            continue
        seen.add(rid)
        out.append(record)
    return out


def user_of(record: Mapping[str, Any]) -> str:
    return str(record.get("UserId") or "").lower()


def mailbox_of(record: Mapping[str, Any]) -> str:
    return str(record.get("MailboxOwnerUPN") or record.get("UserId") or "").lower()


def guids_in(value: Any) -> set[str]:
    """Every GUID anywhere in a (nested) value, lower case."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return {match.lower() for match in _GUID.findall(text)}


def access_properties(record: Mapping[str, Any]) -> dict[str, str]:
    return name_values(record.get("OperationProperties"))


def mail_access_type(record: Mapping[str, Any]) -> str:
    return access_properties(record).get("MailAccessType", "")


def is_throttled(record: Mapping[str, Any]) -> bool:
    return access_properties(record).get("IsThrottled", "").lower() == "true"


def _object(value: Any) -> Any:
    """A PowerShell-stringified object (``@{InternetMessageId=...; SizeInBytes=...}``, what Sparrow's files hold
    below ConvertTo-Json's depth) as a dict; anything else unchanged."""
    if isinstance(value, str) and value.lstrip().startswith("@{"):
        return parse_ps_hashtable(value) or value
    return value


def accessed_messages(record: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(folder path, InternetMessageId) for each message a bind record names."""
    current_path = ""
    for folder in map(_object, as_list(record.get("Folders"))):
        if not isinstance(folder, Mapping):
            continue
        current_path = str(folder.get("Path") or current_path)
        for item in map(_object, as_list(folder.get("FolderItems"))):
            if isinstance(item, Mapping) and item.get("InternetMessageId"):
                yield current_path, str(item["InternetMessageId"])
    item = record.get("Item")
    if isinstance(item, Mapping) and item.get("InternetMessageId"):
        parent = item.get("ParentFolder")
        path = str(parent.get("Path") or parent.get("Name") or "") if isinstance(parent, Mapping) else ""
        yield path, str(item["InternetMessageId"])


def synced_folders(record: Mapping[str, Any]) -> list[str]:
    """Folder paths a sync record names (both shapes: Folders[].Path and Item.ParentFolder)."""
    paths = [str(f.get("Path")) for f in as_list(record.get("Folders")) if isinstance(f, Mapping) and f.get("Path")]
    item = record.get("Item")
    if isinstance(item, Mapping) and isinstance(item.get("ParentFolder"), Mapping):
        parent = item["ParentFolder"]
        path = parent.get("Path") or parent.get("Name")
        if path:
            paths.append(str(path))
    return paths
