"""Shared reading for CSV exports that carry the whole record as JSON in an ``AuditData`` column.

Purview (current and classic) and ``Search-UnifiedAuditLog | Export-Csv`` differ only in the other
columns; the record itself is always the AuditData JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Sniff
from mia_bridge.readers.csv_records import read_csv_records
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.records.cells import parse_json


def record_of_row(row: dict[str, str]) -> dict[str, Any] | str:
    """The AuditData record of one row, completed from the export's own columns; or why there is none."""
    cell = (row.get("AuditData") or "").strip()
    if not cell:
        return "empty AuditData cell"
    data, error = parse_json(cell)
    if error is not None:
        return f"{error.replace('invalid JSON', 'invalid JSON in AuditData', 1)}"
    if not isinstance(data, dict):
        return "AuditData is not a JSON object"
    # Fall back to the export's own columns when AuditData lacks a field.
    if not data.get("Id") and row.get("RecordId"):
        data["Id"] = row["RecordId"]
    if not data.get("CreationTime") and row.get("CreationDate"):
        data["CreationTime"] = row["CreationDate"]
    if not data.get("Operation"):
        data["Operation"] = row.get("Operation") or row.get("Operations") or None
    if not data.get("UserId"):
        data["UserId"] = row.get("UserId") or row.get("UserIds") or None
    if data.get("RecordType") in (None, "") and row.get("RecordType"):
        data["RecordType"] = row["RecordType"]
    return data


def read_auditdata_csv(src: DecodedInput, sniff: Sniff, fmt: str) -> Iterator[RawRecord | Quarantined]:
    return read_csv_records(src, sniff, fmt, record_of_row)
