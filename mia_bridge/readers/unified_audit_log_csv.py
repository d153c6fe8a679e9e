"""``Search-UnifiedAuditLog | Export-Csv``: ``RecordType,CreationDate,UserIds,Operations,AuditData,ResultIndex,...``.

With or without the ``#TYPE`` first line; the column set depends on the Select-Object used, so the
PowerShell result-object columns (ResultIndex, ResultCount, Identity, ObjectState) mark it.
"""

from __future__ import annotations

from collections.abc import Iterator

from mia_bridge.readers.auditdata_csv import read_auditdata_csv
from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput


class UnifiedAuditLogCsvReader(Reader):
    NAME = "unified_audit_log_csv"
    DESCRIPTION = "Search-UnifiedAuditLog | Export-Csv (RecordType, CreationDate, UserIds, Operations, AuditData, ...)"
    REQUIRED = frozenset({"CreationDate", "UserIds", "Operations", "AuditData"})
    MARKERS = frozenset({"ResultIndex", "ResultCount", "Identity", "ObjectState", "IsValid"})
    PRIORITY = 30

    def matches(self, sniff: Sniff) -> bool:
        return sniff.columns >= self.REQUIRED and bool(self.MARKERS & sniff.columns)

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        return read_auditdata_csv(src, sniff, self.NAME)
