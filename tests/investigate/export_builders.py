"""Exports of audit records in the formats responders receive, built from AuditData dicts.

- Purview audit search CSV (RecordId, CreationDate, RecordType as a name, Operation, UserId, AuditData, ...),
- raw AuditData JSON lines (Management Activity API, ``Search-UnifiedAuditLog`` dumps), optionally gzipped,
- Microsoft Sentinel OfficeActivity rows (CSV with the portal's `` [UTC]`` columns, or JSON lines): the record's
  fields as columns, renamed as Sentinel renames them (``OfficeId``, ``OfficeWorkload``, ``Client_IPAddress``,
  ``Logon_Type``), nested values as JSON strings, plus Sentinel's bookkeeping columns.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mia_bridge.investigate.offline import RECORD_TYPES

PURVIEW_HEADER = ["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData",
                  "AssociatedAdminUnits", "AssociatedAdminUnitsNames"]
_TYPE_NAMES = {code: name for name, code in RECORD_TYPES.items()}
_CANONICAL = {"exchangeitemaggregated": "ExchangeItemAggregated", "exchangeitem": "ExchangeItem",
              "exchangeadmin": "ExchangeAdmin", "azureactivedirectory": "AzureActiveDirectory",
              "azureactivedirectorystslogon": "AzureActiveDirectoryStsLogon", "sharepointfileoperation":
              "SharePointFileOperation", "onedrive": "OneDrive", "sharepoint": "SharePoint"}
SENTINEL_RENAME = {"Id": "OfficeId", "Workload": "OfficeWorkload", "ClientIPAddress": "Client_IPAddress",
                   "LogonType": "Logon_Type", "CreationTime": "TimeGenerated"}


def type_name(value: Any) -> str:
    name = _TYPE_NAMES.get(int(value)) if str(value).isdigit() else None
    return _CANONICAL.get(name or "", name or str(value))


def _write(path: Path, text: str, *, gz: bool = False, encoding: str = "utf-8") -> Path:
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]], *, gz: bool = False) -> Path:
    return _write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), gz=gz)


def write_purview_csv(path: Path, records: Iterable[Mapping[str, Any]], *, gz: bool = False) -> Path:
    """Purview's audit search export: UTF-8 with BOM, CRLF, AuditData as a JSON cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PURVIEW_HEADER)
    for r in records:
        writer.writerow([r.get("Id", ""), f"{r.get('CreationTime', '')}.0000000Z", type_name(r.get("RecordType", "")),
                         r.get("Operation", ""), r.get("UserId", ""), json.dumps(r, ensure_ascii=False), "", ""])
    return _write(path, buffer.getvalue(), gz=gz, encoding="utf-8-sig")


def sentinel_row(record: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"TenantId": "9f3c0b1e-0000-4000-8000-000000000001", "SourceSystem": "OfficeActivityManager",
                           "Type": "OfficeActivity"}
    for key, value in record.items():
        name = SENTINEL_RENAME.get(key, key)
        if key == "CreationTime":
            value = f"{value}Z"
        elif key == "RecordType":
            value = type_name(value)
        elif isinstance(value, (list, dict)):
            value = json.dumps(value, ensure_ascii=False)  # Sentinel keeps nested fields as JSON strings
        row[name] = value
    return row


def write_sentinel_json(path: Path, records: Iterable[Mapping[str, Any]], *, gz: bool = False) -> Path:
    return write_jsonl(path, (sentinel_row(r) for r in records), gz=gz)


def write_sentinel_csv(path: Path, records: Iterable[Mapping[str, Any]], *, gz: bool = False) -> Path:
    """The Sentinel portal's CSV export: time columns suffixed `` [UTC]``, every column of every row."""
    rows = [sentinel_row(r) for r in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    header = [f"{c} [UTC]" if c == "TimeGenerated" else c for c in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return _write(path, buffer.getvalue(), gz=gz, encoding="utf-8-sig")
