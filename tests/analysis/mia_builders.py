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
