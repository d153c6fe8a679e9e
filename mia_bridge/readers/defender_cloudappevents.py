"""Microsoft Defender advanced hunting ``CloudAppEvents`` rows (JSON lines, or CSV), record in ``RawEventData``.

Exports made with a shallow ``ConvertTo-Json`` depth stringify nested values
(``"@{Value=Bind; Name=MailAccessType}"``, ``FolderItems=System.Object[]``): normalisation parses what is
there and flags the lost message ids. Rows without RawEventData (other tables in the same hunting
export, e.g. IdentityDirectoryEvents) are built from the table columns and flagged, not dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import FLAG_NO_RAW_EVENT, Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.json_records import iter_json_objects
from mia_bridge.readers.values import iter_csv_rows
from mia_bridge.records.cells import parse_json


def _from_columns(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": row.get("ReportId") or None,
        "CreationTime": row.get("Timestamp"),
        "Operation": row.get("ActionType"),
        "UserId": row.get("AccountUpn") or row.get("AccountDisplayName") or row.get("AccountName") or None,
        "ClientIP": row.get("IPAddress") or None,
        "Workload": row.get("Application") or None,
    }


def to_record(row: dict[str, Any]) -> tuple[dict[str, Any] | None, tuple[str, ...], str | None]:
    """``(AuditData, flags, error)`` for one hunting row."""
    raw_event = row.get("RawEventData")
    if isinstance(raw_event, str) and raw_event.strip():
        raw_event, error = parse_json(raw_event)
        if error is not None:
            return None, (), f"RawEventData: {error}"
    if isinstance(raw_event, dict) and raw_event:
        data = dict(raw_event)
        data.setdefault("CreationTime", row.get("Timestamp"))
        return data, (), None
    if not row.get("Timestamp") and not row.get("ActionType"):
        return None, (), "row has neither RawEventData nor Timestamp/ActionType"
    return _from_columns(row), (FLAG_NO_RAW_EVENT,), None


class DefenderCloudAppEventsReader(Reader):
    NAME = "defender_cloudappevents"
    DESCRIPTION = "Microsoft Defender advanced hunting CloudAppEvents (RawEventData), JSON lines or CSV"
    PRIORITY = 40

    def matches(self, sniff: Sniff) -> bool:
        if sniff.first_json is not None:
            keys = set(sniff.first_json)
            return "RawEventData" in keys or {"ActionType", "Timestamp"} <= keys
        return {"RawEventData", "ActionType"} <= sniff.columns

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        name = str(src.path)
        items: Iterator[tuple[int, dict[str, Any] | None, str, str | None]]
        items = iter_json_objects(src, sniff) if sniff.json_kind is not None else self._csv_rows(src, sniff)
        for line, obj, raw, error in items:
            if obj is None:
                yield Quarantined(name, line, error or "unreadable record", raw)
                continue
            data, flags, problem = to_record(obj)
            if data is None:
                yield Quarantined(name, line, problem or "unreadable record", raw)
                continue
            yield RawRecord(data=data, source=name, line=line, fmt=self.NAME, raw=raw, flags=flags)

    @staticmethod
    def _csv_rows(src: DecodedInput, sniff: Sniff) -> Iterator[tuple[int, dict[str, Any] | None, str, str | None]]:
        with src.open_text() as handle:
            yield from iter_csv_rows(handle, sniff.delimiter or ",", src.max_record_bytes)
