"""Purview portal audit search CSV (2023+): ``RecordId,CreationDate,RecordType,Operation,UserId,AuditData,...``."""

from __future__ import annotations

from collections.abc import Iterator

from mia_bridge.readers.auditdata_csv import read_auditdata_csv
from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput


class PurviewAuditCsvReader(Reader):
    NAME = "purview_audit_csv"
    DESCRIPTION = "Purview portal audit search CSV (RecordId, CreationDate, RecordType, Operation, UserId, AuditData)"
    REQUIRED = frozenset({"RecordId", "CreationDate", "Operation", "UserId", "AuditData"})
    PRIORITY = 20

    def matches(self, sniff: Sniff) -> bool:
        return sniff.columns >= self.REQUIRED

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        return read_auditdata_csv(src, sniff, self.NAME)
