"""``Search-MailboxAuditLog -ShowDetails | Export-Csv`` (mailbox-stored audit log; the cmdlet is retired).

Mapped onto AuditData names: ``LastAccessed`` is the time, ``AggregatedRecordFoldersData`` holds the
Folders JSON, ``AuditOperationsCountInAggregatedRecord`` the OperationCount, and ``OperationProperties``
is a flat ``MailAccessType:Bind IsThrottled:False`` string (normalisation parses it). There is no record id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.csv_records import read_csv_records
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.records.cells import maybe_json

REQUIRED = frozenset({"Operation", "LastAccessed", "MailboxOwnerUPN", "LogonType", "ClientInfoString"})
FIELD_MAP = {
    "LastAccessed": "CreationTime",
    "AggregatedRecordFoldersData": "Folders",
    "AuditOperationsCountInAggregatedRecord": "OperationCount",
    "OperationResult": "ResultStatus",
}
_DROP = frozenset({"RunspaceId", "IsValid", "ObjectState"})


def to_auditdata(row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column, value in row.items():
        if value == "" or column in _DROP:
            continue
        data[FIELD_MAP.get(column, column)] = maybe_json(value)
    data.setdefault("Workload", "Exchange")
    # The actor: the logon user when it is an address, else the mailbox owner (owner logons).
    logon_user = str(data.get("LogonUserDisplayName") or "")
    data["UserId"] = logon_user if "@" in logon_user else data.get("MailboxOwnerUPN")
    if not data.get("ClientIPAddress") and data.get("ClientIP"):
        data["ClientIPAddress"] = data["ClientIP"]
    return data


class MailboxAuditLogCsvReader(Reader):
    NAME = "mailbox_audit_log_csv"
    DESCRIPTION = "Search-MailboxAuditLog -ShowDetails | Export-Csv"
    PRIORITY = 30

    def matches(self, sniff: Sniff) -> bool:
        return sniff.columns >= REQUIRED

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        yield from read_csv_records(src, sniff, self.NAME, to_auditdata)
