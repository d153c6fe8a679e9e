"""Raw AuditData records as JSON lines or a JSON array (Management Activity API, Graph, our evidence files).

Also accepts objects that wrap the record: ``{"AuditData": "<json>"}`` (Search-UnifiedAuditLog output
through ConvertTo-Json) and Graph's ``{"auditData": {...}}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff, records_from
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.json_records import iter_json_objects
from mia_bridge.records.cells import parse_json

_API_KEYS = frozenset({"Operation", "CreationTime", "RecordType", "AuditData", "auditData", "Workload"})
_EXPORT_FIELDS = (("CreationDate", "CreationTime"), ("Operations", "Operation"), ("UserIds", "UserId"))
_OTHER_TABLE_KEYS = frozenset({"OfficeId", "OfficeWorkload", "RawEventData", "ActionType", "OperationName"})


def unwrap(obj: dict[str, Any]) -> dict[str, Any] | str:
    """The AuditData dict of ``obj``, or a reason string when the wrapper holds no usable record."""
    for key in ("AuditData", "auditData"):
        if key in obj:
            inner = obj[key]
            if isinstance(inner, str):
                inner, error = parse_json(inner)
                if error is not None:
                    return f"{key}: {error}"
            if not isinstance(inner, dict):
                return f"{key} is not a JSON object"
            if key == "auditData":  # Graph: top-level fields complete the record
                inner.setdefault("Id", obj.get("id"))
                inner.setdefault("CreationTime", obj.get("createdDateTime"))
                inner.setdefault("Operation", obj.get("operation"))
                inner.setdefault("UserId", obj.get("userPrincipalName"))
            else:
                for outer, field in _EXPORT_FIELDS:
                    if not inner.get(field) and obj.get(outer):
                        inner[field] = obj[outer]
            return inner
    return obj


class RawAuditDataJsonReader(Reader):
    NAME = "raw_auditdata_json"
    DESCRIPTION = "Raw AuditData records, JSON lines or JSON array"
    PRIORITY = 60

    def matches(self, sniff: Sniff) -> bool:
        obj = sniff.first_json
        if sniff.json_kind is None:
            return False
        if obj is None:
            return True  # JSON, but the first record is broken: read it and quarantine per record
        keys = set(obj)
        return bool(keys & _API_KEYS) and not keys & _OTHER_TABLE_KEYS

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        return records_from(iter_json_objects(src, sniff), unwrap, source=str(src.path), fmt=self.NAME)
