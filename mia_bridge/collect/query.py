"""What to collect: one audit-log query and the cmdlet parameters it maps to."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mia_bridge.errors import UsageError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class AuditQuery:
    """A unified-audit-log search over ``[start, end)``; ``name`` becomes the evidence file name."""

    name: str
    start: datetime
    end: datetime
    operations: tuple[str, ...] = ()
    record_types: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    free_text: str | None = None
    ip_addresses: tuple[str, ...] = ()
    object_ids: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for attr in ("operations", "record_types", "user_ids", "ip_addresses", "object_ids"):
            object.__setattr__(self, attr, _tuple(getattr(self, attr)))
        if not _NAME_RE.match(self.name):
            raise UsageError(
                f"query name {self.name!r} cannot be used as a file name",
                hint="use letters, digits, '.', '-' and '_' (at most 100 characters)",
            )
        for label, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None:
                raise UsageError(f"query {self.name}: {label} time {value.isoformat()} has no time zone")
        if self.end <= self.start:
            raise UsageError(
                f"query {self.name}: end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )

    @property
    def start_s(self) -> int:
        """Start as epoch seconds, rounded down (audit times have one-second resolution)."""
        return int(self.start.timestamp() // 1)

    @property
    def end_s(self) -> int:
        """End as epoch seconds, rounded up so the whole requested period is covered."""
        ts = self.end.timestamp()
        return int(ts) if ts == int(ts) else int(ts) + 1

    def filter_parameters(self) -> dict[str, Any]:
        """Search-UnifiedAuditLog filter parameters (no dates, no paging), typed for the bridge."""
        params: dict[str, Any] = {}
        if self.operations:
            params["Operations"] = list(self.operations)
        if self.record_types:
            # The cmdlet takes one RecordType; streams() makes one search per type.
            params["RecordType"] = self.record_types[0]
        if self.user_ids:
            params["UserIds"] = list(self.user_ids)
        if self.free_text:
            params["FreeText"] = self.free_text
        if self.ip_addresses:
            params["IPAddresses"] = list(self.ip_addresses)
        if self.object_ids:
            params["ObjectIds"] = list(self.object_ids)
        return params

    def streams(self) -> list[dict[str, Any]]:
        """Filter parameter sets to search, one per record type (``-RecordType`` takes one value).

        All streams of a query share one evidence file; duplicates across them are removed.
        """
        base = self.filter_parameters()
        if len(self.record_types) <= 1:
            return [base]
        return [{**base, "RecordType": rt} for rt in self.record_types]

    def describe(self) -> dict[str, Any]:
        """JSON-safe parameters for the manifest and the resume fingerprint."""
        return {
            "name": self.name,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "operations": list(self.operations),
            "record_types": list(self.record_types),
            "user_ids": list(self.user_ids),
            "free_text": self.free_text,
            "ip_addresses": list(self.ip_addresses),
            "object_ids": list(self.object_ids),
        }

    def fingerprint(self) -> str:
        """A stable digest of the parameters: a resumed run must ask the same question."""
        blob = json.dumps(self.describe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()
