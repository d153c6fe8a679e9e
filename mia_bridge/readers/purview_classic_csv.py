"""Classic Security & Compliance portal export: ``CreationDate,UserIds,Operations,AuditData``."""

from __future__ import annotations

from collections.abc import Iterator

from mia_bridge.readers.auditdata_csv import read_auditdata_csv
from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput


class PurviewClassicCsvReader(Reader):
    NAME = "purview_classic_csv"
    DESCRIPTION = "Classic Security & Compliance audit export CSV (CreationDate, UserIds, Operations, AuditData)"
    REQUIRED = frozenset({"CreationDate", "UserIds", "Operations", "AuditData"})
    PRIORITY = 40  # after the Export-Csv reader, whose columns are a superset

    def matches(self, sniff: Sniff) -> bool:
        return sniff.columns >= self.REQUIRED

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        return read_auditdata_csv(src, sniff, self.NAME)
