"""Shared reading for CSV exports that carry the whole record as JSON in an ``AuditData`` column.

Purview (current and classic) and ``Search-UnifiedAuditLog | Export-Csv`` differ only in the other
columns; the record itself is always the AuditData JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from mia_bridge.readers.base import Quarantined, RawRecord, Sniff
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.values import iter_csv_rows


def read_auditdata_csv(src: DecodedInput, sniff: Sniff, fmt: str) -> Iterator[RawRecord | Quarantined]:
    name = str(src.path)
    with src.open_text() as handle:
        for line, row, raw, error in iter_csv_rows(handle, sniff.delimiter or ","):
            if row is None:
                yield Quarantined(name, line, error or "unreadable row", raw)
                continue
            cell = (row.get("AuditData") or "").strip()
            if not cell:
                yield Quarantined(name, line, "empty AuditData cell", raw)
                continue
            try:
                data = json.loads(cell)
            except ValueError as exc:
                yield Quarantined(name, line, f"invalid JSON in AuditData: {exc}", raw)
                continue
            if not isinstance(data, dict):
                yield Quarantined(name, line, "AuditData is not a JSON object", raw)
                continue
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
            yield RawRecord(data=data, source=name, line=line, fmt=fmt, raw=raw)
