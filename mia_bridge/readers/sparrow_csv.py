"""CISA Sparrow ``*_Operations_Export.csv``: AuditData flattened to columns (AAD, EXO, EXO2, SharePoint sets).

Nested values are compact JSON strings; a one-element array may be a bare object; deeper levels may be
PowerShell-stringified (``@{InternetMessageId=...}``); ``<``/``>`` were stripped from message ids.
Normalisation handles those shapes; this reader only decodes the JSON cells.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.csv_records import read_csv_records
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.records.cells import maybe_json

# Common to all four Sparrow column sets.
REQUIRED = frozenset({"CreationTime", "Id", "Operation", "RecordType", "UserKey", "UserType", "Workload"})


class SparrowCsvReader(Reader):
    NAME = "sparrow_csv"
    DESCRIPTION = "CISA Sparrow *_Operations_Export.csv (AuditData fields as columns)"
    PRIORITY = 35

    def matches(self, sniff: Sniff) -> bool:
        return sniff.columns >= REQUIRED and "AuditData" not in sniff.columns

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        yield from read_csv_records(src, sniff, self.NAME, _to_record)


def _to_record(row: dict[str, str]) -> dict[str, Any]:
    """Sparrow's columns are AuditData fields; nested ones were re-serialised to JSON strings."""
    return {key: maybe_json(value) for key, value in row.items() if value != ""}
