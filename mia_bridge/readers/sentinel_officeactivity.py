"""Microsoft Sentinel ``OfficeActivity`` exports, CSV (portal export) and JSON (one row object per line).

Sentinel renames some AuditData fields (``OfficeId`` is the record id, ``Client_IPAddress``,
``Logon_Type``, ``OfficeWorkload``), stores ``Folders``/``OperationProperties`` as JSON *strings*, and the
portal CSV suffixes time columns with `` [UTC]`` and writes dates like ``4/28/2021, 3:05:26.000 PM``.
Projections such as msticpy's ``TimeGenerated,UserId,ClientIP,Operation,Parameters`` read the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff, records_from
from mia_bridge.readers.csv_records import read_csv_records
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.json_records import iter_json_objects
from mia_bridge.records.cells import maybe_json

# Sentinel column -> AuditData field. Columns not listed keep their name.
FIELD_MAP = {
    "OfficeId": "Id",
    "TimeGenerated": "CreationTime",
    "OfficeWorkload": "Workload",
    "Client_IPAddress": "ClientIPAddress",
    "Logon_Type": "LogonType",
}
# Sentinel bookkeeping, not part of the audit record.
_DROP = frozenset(
    {"TenantId", "SourceSystem", "Type", "_ResourceId", "SourceRecordId", "OfficeTenantId", "OfficeTenantId_"}
)


def to_auditdata(row: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or value == "":
            continue
        name = column.removesuffix(" [UTC]")
        if name in _DROP or (name.endswith("_") and name[:-1] in row):
            continue
        data[FIELD_MAP.get(name, name)] = maybe_json(value)
    if not data.get("CreationTime") and data.get("Start_Time"):
        # Exports without TimeGenerated (e.g. the admin-cmdlet CSV) still carry Start_Time: the event time.
        data["CreationTime"] = data["Start_Time"]
    return data


def _is_time_column(columns: frozenset[str]) -> bool:
    return "TimeGenerated" in columns or "TimeGenerated [UTC]" in columns


class SentinelOfficeActivityCsvReader(Reader):
    NAME = "sentinel_officeactivity_csv"
    DESCRIPTION = "Microsoft Sentinel OfficeActivity CSV export (or a projection of it)"
    PRIORITY = 45

    def matches(self, sniff: Sniff) -> bool:
        cols = sniff.columns
        if "Operation" not in cols or "AuditData" in cols:
            return False
        return bool({"OfficeId", "OfficeWorkload"} & cols) or (_is_time_column(cols) and "UserId" in cols)

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        yield from read_csv_records(src, sniff, self.NAME, to_auditdata)


class SentinelOfficeActivityJsonReader(Reader):
    NAME = "sentinel_officeactivity_json"
    DESCRIPTION = "Microsoft Sentinel OfficeActivity rows as JSON"
    PRIORITY = 45

    def matches(self, sniff: Sniff) -> bool:
        obj = sniff.first_json or {}
        return bool({"OfficeId", "OfficeWorkload"} & set(obj)) or obj.get("Type") == "OfficeActivity"

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        return records_from(iter_json_objects(src, sniff), to_auditdata, source=str(src.path), fmt=self.NAME)
