"""One raw record (AuditData-shaped dict from any reader) → one canonical row plus its folders and items.

Every shape seen in exports is accepted: ``OperationProperties`` as a list of Name/Value pairs in any key
order, a bare object, PowerShell ``@{...}`` strings or a flat ``Name:Value`` string; ``Folders`` as a list,
a bare object, a JSON string, or PowerShell strings whose ``FolderItems=System.Object[]`` lost the ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mia_bridge.readers.base import FLAG_MESSAGE_IDS_LOST, Quarantined, RawRecord
from mia_bridge.records.cells import PS_OBJECT_ARRAY, as_list, maybe_json, parse_ps_hashtable
from mia_bridge.records.fields import LOGON_TYPES, RECORD_TYPE_NAMES
from mia_bridge.records.timestamps import parse_time

MAIL_ITEMS_ACCESSED = "MailItemsAccessed"

# The nanosecond timestamps of the tables (pandas, Parquet) span 1677-09-21 to 2262-04-11; a record dated
# outside (CreationTime 0001-01-01 is seen in damaged exports) is quarantined, not allowed to stop the run.
TABLE_TIME_MIN = datetime(1677, 9, 22, tzinfo=UTC)
TABLE_TIME_MAX = datetime(2262, 4, 10, tzinfo=UTC)

_FLAT_PROPS = re.compile(r"([A-Za-z]+)\s*[:=]\s*([^\s,;]+)")


@dataclass(slots=True)
class Folder:
    path: str | None
    folder_id: str | None
    items: list[tuple[str, str, int | None]] = field(default_factory=list)  # (raw id, normalised id, size)
    items_lost: bool = False


@dataclass(slots=True)
class Normalised:
    row: dict[str, Any]
    folders: list[Folder]


def writable(value: str) -> str:
    """``value`` with any lone surrogate (JSON allows ``"\\ud800"``; UTF-8 cannot hold it) written as its
    escape, so every table and CSV can be written; the record's JSON keeps the true value."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def json_text(data: Any) -> str:
    """JSON of ``data``: UTF-8 text, escaped to ASCII only when it holds a lone surrogate (lossless)."""
    dumped = json.dumps(data, ensure_ascii=False, default=str)
    return dumped if writable(dumped) is dumped else json.dumps(data, default=str)


def text(value: Any) -> str | None:
    """A trimmed string or None (empty strings are missing values)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    result = writable(str(value).strip())
    return result or None


def norm_ip(value: Any) -> str | None:
    """``[2a01::1]:36185`` → ``2a01::1``; ``1.2.3.4:80`` → ``1.2.3.4``; lower-cased."""
    ip = text(value)
    if ip is None:
        return None
    if ip.startswith("["):
        ip = ip[1:].split("]", 1)[0]
    elif ip.count(":") == 1:
        ip = ip.split(":", 1)[0]
    return ip.lower() or None


def norm_message_id(value: Any) -> str | None:
    """Trimmed, angle brackets removed, lower-cased (Sparrow strips the brackets; case varies)."""
    mid = text(value)
    if mid is None:
        return None
    mid = mid.strip("<>").strip().lower()
    return mid or None


def operation_properties(value: Any) -> dict[str, str]:
    value = maybe_json(value)
    if isinstance(value, str) and not value.lstrip().startswith("@{"):
        return {name: val for name, val in _FLAT_PROPS.findall(value)}  # "MailAccessType:Bind IsThrottled:False"
    result: dict[str, str] = {}
    for entry in as_list(value):
        if isinstance(entry, str):
            entry = parse_ps_hashtable(entry) or {}
        if isinstance(entry, dict):
            name = text(entry.get("Name"))
            if name is not None:
                result[name] = text(entry.get("Value")) or ""
            elif "Name" not in entry:  # a plain mapping {"MailAccessType": "Bind"}
                result.update({str(k): text(v) or "" for k, v in entry.items()})
    return result


_INT64 = 2**63


def _size(value: Any) -> int | None:
    """An integer the tables can hold (64-bit), else None (the record's JSON keeps the value)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if -_INT64 <= number < _INT64 else None


def _items(value: Any) -> tuple[list[tuple[str, str, int | None]], bool]:
    if isinstance(value, str) and value.strip() == PS_OBJECT_ARRAY:
        return [], True
    items: list[tuple[str, str, int | None]] = []
    lost = False
    for entry in as_list(value):
        if isinstance(entry, str):
            parsed = parse_ps_hashtable(entry)
            if parsed is None:  # a bare message id string
                parsed = {"InternetMessageId": entry}
            entry = parsed
        if not isinstance(entry, dict):
            continue
        raw_id = text(entry.get("InternetMessageId"))
        mid = norm_message_id(raw_id)
        if mid is None:
            lost = True  # an item whose message id is missing: counted, flagged
            items.append(("", "", _size(entry.get("SizeInBytes"))))
            continue
        items.append((raw_id or "", mid, _size(entry.get("SizeInBytes"))))
    return items, lost


def folders_of(data: dict[str, Any]) -> list[Folder]:
    result: list[Folder] = []
    for entry in as_list(data.get("Folders")):
        if isinstance(entry, str):
            entry = parse_ps_hashtable(entry) or {"Path": entry}
        if not isinstance(entry, dict):
            continue
        items, lost = _items(entry.get("FolderItems"))
        result.append(Folder(text(entry.get("Path")), text(entry.get("Id")), items, lost))
    item = maybe_json(data.get("Item"))
    if isinstance(item, dict):  # RecordType 2 shape: Item.ParentFolder
        parent = maybe_json(item.get("ParentFolder"))
        path = None
        folder_id = None
        if isinstance(parent, dict):
            path = text(parent.get("Path")) or text(parent.get("Name"))
            folder_id = text(parent.get("Id"))
        raw_id = text(item.get("InternetMessageId"))
        mid = norm_message_id(raw_id)
        items = [(raw_id or "", mid, _size(item.get("SizeInBytes")))] if mid else []
        result.append(Folder(path, folder_id, items, False))
    return result


def _record_type(value: Any) -> tuple[int | None, str | None]:
    raw = text(value)
    if raw is None:
        return None, None
    if raw.lstrip("-").isdigit():
        number = _size(raw)
        if number is None:
            return None, raw
        names = {v: k for k, v in RECORD_TYPE_NAMES.items()}
        return number, names.get(number)
    return RECORD_TYPE_NAMES.get(raw), raw


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def fingerprint(data: dict[str, Any]) -> str:
    """A hash of the parsed record, independent of key order."""
    return hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def normalise(record: RawRecord) -> Normalised | Quarantined:
    """The canonical row of ``record``, or a ``Quarantined`` value naming what is wrong with it."""
    data = record.data
    when = parse_time(data.get("CreationTime"))
    if when is None:
        reason = "missing timestamp" if not text(data.get("CreationTime")) else (
            f"unrecognised timestamp {str(data.get('CreationTime'))[:60]!r}"
        )
        return Quarantined(record.source, record.line, reason, record.raw)
    if not TABLE_TIME_MIN <= when <= TABLE_TIME_MAX:
        return Quarantined(record.source, record.line,
                           f"CreationTime {str(data.get('CreationTime'))[:60]!r} is outside what the tables can hold "
                           f"({TABLE_TIME_MIN:%Y-%m-%d} to {TABLE_TIME_MAX:%Y-%m-%d})", record.raw)
    operation = text(data.get("Operation"))
    if operation is None:
        return Quarantined(record.source, record.line, "record has no Operation", record.raw)
    props = operation_properties(data.get("OperationProperties"))
    folders = folders_of(data)
    flags = list(record.flags)
    lost = any(folder.items_lost for folder in folders)
    if lost and FLAG_MESSAGE_IDS_LOST not in flags:
        flags.append(FLAG_MESSAGE_IDS_LOST)
    record_type, record_type_name = _record_type(data.get("RecordType"))
    ip_raw = text(data.get("ClientIPAddress")) or text(data.get("ClientIP")) or text(data.get("ActorIpAddress"))
    user = text(data.get("UserId"))
    mailbox = text(data.get("MailboxOwnerUPN")) or user
    logon = text(data.get("LogonType"))
    access = text(props.get("MailAccessType"))
    if access is not None and access.lower() in ("bind", "sync"):
        access = access.capitalize()
    row: dict[str, Any] = {
        "record_id": text(data.get("Id")),
        "creation_time": when,
        "operation": operation,
        "record_type": record_type,
        "record_type_name": record_type_name,
        "workload": text(data.get("Workload")),
        "user_id": user,
        "mailbox": mailbox.lower() if mailbox else None,
        "mailbox_guid": text(data.get("MailboxGuid")),
        "client_ip": norm_ip(ip_raw),
        "client_ip_raw": ip_raw,
        "session_id": text(data.get("SessionId")),
        "app_id": (text(data.get("AppId")) or "").lower() or None,
        "client_app_id": (text(data.get("ClientAppId")) or "").lower() or None,
        "client_info_string": text(data.get("ClientInfoString")),
        "logon_type": LOGON_TYPES.get(logon, logon) if logon is not None else None,
        "result_status": text(data.get("ResultStatus")),
        "mail_access_type": access,
        "is_throttled": _bool(props.get("IsThrottled")),
        "operation_count": _size(data.get("OperationCount")),
        "folder_count": len(folders),
        "item_count": sum(len(folder.items) for folder in folders),
        "message_ids_lost": lost,
        "flags": ";".join(flags) or None,
        "source_format": record.fmt,
        "source_file": record.source,
        "source_line": record.line,
    }
    # Without an Id only the whole parsed record tells two records apart (see dedup.fingerprints).
    row["content_hash"] = None if row["record_id"] is not None else fingerprint(data)
    row["raw_json"] = json_text(data)
    return Normalised(row=row, folders=folders)
