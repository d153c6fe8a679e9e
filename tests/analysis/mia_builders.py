"""Builders for synthetic MailItemsAccessed records (documented AuditData shape)."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def mia(
    when: str,
    *,
    access: str = "Bind",
    throttled: str | None = "False",
    mailbox: str = "victim@contoso.example",
    ip: str | None = "198.51.100.7",
    app: str = "00000002-0000-0ff1-ce00-000000000000",
    client: str = "Client=OWA;Action=ViaProxy",
    session: str | None = "s-owner",
    folders: list[dict[str, Any]] | None = None,
    record_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    props = [{"Name": "MailAccessType", "Value": access}]
    if throttled is not None:
        props.append({"Name": "IsThrottled", "Value": throttled})
    record: dict[str, Any] = {
        "CreationTime": when, "Id": record_id or f"00000000-0000-4000-8000-{next(_ids):012d}",
        "Operation": "MailItemsAccessed", "RecordType": 50, "Workload": "Exchange", "UserId": mailbox,
        "MailboxOwnerUPN": mailbox, "AppId": app, "ClientInfoString": client, "LogonType": 0,
        "OperationProperties": props,
    }
    if ip is not None:
        record["ClientIPAddress"] = ip
    if session is not None:
        record["SessionId"] = session
    if folders is not None:
        record["Folders"] = folders
    record.update(extra)
    return record


def folder(path: str | None, *ids: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": "LgAAAA" + (path or "x")}
    if path is not None:
        entry["Path"] = path
    if ids:
        entry["FolderItems"] = [{"InternetMessageId": i} for i in ids]
    return entry


def odd_records() -> list[dict[str, Any]]:
    """Records that exercise every corner of the MailItemsAccessed shapes (both readers must agree on them)."""
    return [
        mia("2024-05-01T10:00:00", ip="[2001:DB8::1]:443", folders=[
            folder("\\Inbox", " <A@x> ", "<b@x>"), {"Id": "f-only"},
            {"FolderItems": [{"InternetMessageId": "<c@x>", "SizeInBytes": 12}, {"SizeInBytes": 3}]}]),
        mia("2024-05-01T10:01:00", access="sync", throttled="TRUE", session=None, ip=None, RecordType=2,
            Item={"ParentFolder": {"Name": "Inbox"}}),
        mia("2024-05-01T10:02:00", throttled=None, Item={"InternetMessageId": "<D@x>", "SizeInBytes": 5,
                                                          "ParentFolder": {"Path": "\\Drafts", "Id": "p"}}),
        # str.strip() also removes \x1c-\x1f: the ASCII kernels must too.
        mia("2024-05-01T10:02:30", ip="\x1f198.51.100.9 ", client="\x1dOWA\x1c", folders=[
            folder("\x1e\\Inbox ", "\x1e<E@X>\x1c ", "\x1f\x1c")]),
        {"CreationTime": "2024-05-01T10:03:00", "Id": "adm-1", "Operation": "Set-Mailbox", "RecordType": 1,
         "UserId": "Admin@Contoso.example", "ClientIP": "203.0.113.5:5123", "LogonType": 2,
         "OperationProperties": [{"Name": "MailAccessType", "Value": ""}, {"Name": "MailAccessType", "Value": "Bind"}]},
        # Names repeat (the last wins), carry spaces, come in any case; values too.
        mia("2024-05-01T10:04:00", OperationProperties=[
            {"Name": "IsThrottled", "Value": "True"}, {"Name": "MailAccessType", "Value": "bInD"},
            {"Name": " IsThrottled ", "Value": " false "}, {"Name": "MailAccessType", "Value": "Sync"},
            {"Name": None, "Value": "x"}, {"Name": "Other", "Value": None}]),
        mia("2024-05-01T10:05:00", OperationProperties=[
            {"Name": "MailAccessType", "Value": "Bind"}, {"Name": "MailAccessType", "Value": None},
            {"Name": "IsThrottled", "Value": "maybe"}]),
        mia("2024-05-01T10:06:00", OperationProperties=[]),
    ]
