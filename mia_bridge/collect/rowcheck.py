"""Is a returned row one of the query's? A row outside its window or not matching its filters is a
row of another search (quirk session-crosstalk, sim/quirks.py: Goose v2 saw "cross query
interference"), so the page that carries it cannot be trusted.

The check must never refuse a row the service legitimately returns (that would refetch forever), so
it is strict where the semantics are plain (the time window, Operations, RecordType, UserIds against
UserId) and lenient where they are not documented: IPAddresses and ObjectIds only require the value
to appear somewhere in the AuditData text (as written or JSON-escaped); FreeText, whose matching is not
documented, is not checked; unparseable rows and missing fields pass.
"""

from __future__ import annotations

import json
from typing import Any

from mia_bridge.collect.windows import Window
from mia_bridge.evidence.store import AuditRow
from mia_bridge.records.fields import record_type_code


def _operation(name: str) -> str:
    # As the service compares them: case-insensitive, a trailing "." ignored (sim/tenant_store.py [U]).
    return name.strip().rstrip(".").strip().lower()


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]




def _spellings(value: str) -> set[str]:
    """The value as it may appear inside AuditData JSON text (escaped or not), lower case."""
    text = value.strip().lower()
    escaped = {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    return escaped | {e.replace("/", "\\/") for e in escaped}  # .NET writers may escape "/" as "\/"


class RowCheck:
    """Checks rows against one stream's Search-UnifiedAuditLog parameters and one window."""

    def __init__(self, params: dict[str, Any], window: Window, *, end_inclusive: bool = True) -> None:
        self.window = window
        self.end_inclusive = end_inclusive  # False once the service is known to leave EndDate's second out
        self.operations = {_operation(v) for v in _values(params.get("Operations"))}
        codes = [record_type_code(v) for v in _values(params.get("RecordType"))]
        self.record_types = {c for c in codes if c is not None} if codes and None not in codes else set()
        self.user_ids = {v.strip().lower() for v in _values(params.get("UserIds"))}
        # Each filter is a list of alternatives: the row must contain one of each list.
        ips = _values(params.get("IPAddresses"))
        groups = [_values(params.get("ObjectIds")),
                  [] if any(ip.count(":") > 1 for ip in ips) else [ip.split(":")[0] for ip in ips]]  # v6: skipped
        self.needles = [[v for n in g for v in _spellings(n)] for g in groups if g and all(n.strip() for n in g)]
        self._parse = bool(self.operations or self.record_types or self.user_ids)

    def problem(self, row: AuditRow) -> str:
        """Why ``row`` cannot be the query's, or "" when it may be."""
        w = self.window
        # EndDate inclusive or not is undocumented: a row at exactly the end second is accepted until the
        # service is known to leave that second out (ual.EndDateRule); then it can only be another search's.
        if row.time is not None and not w.start <= row.time <= w.end:
            return f"a row outside the window (record {row.key}, CreationTime {row.time} not in [{w.start}, {w.end}))"
        if row.time == w.end and not self.end_inclusive:
            return (f"a row at the window's end (record {row.key}, CreationTime {row.time}), a second this "
                    "service leaves out")
        if not row.parsed:
            return ""
        if self.needles:
            low = row.text.lower()
            missing = next((g for g in self.needles if not any(n in low for n in g)), None)
            if missing is not None:
                return f"a row not matching the filters (record {row.key} contains none of {missing!r})"
        if not self._parse:
            return ""
        record = json.loads(row.text)
        operation = record.get("Operation")
        if self.operations and isinstance(operation, str) and _operation(operation) not in self.operations:
            return f"a row not matching the filters (record {row.key}, Operation {operation!r})"
        code = record.get("RecordType")
        if self.record_types and code is not None:
            found = record_type_code(code)
            if found is not None and found not in self.record_types:
                return f"a row not matching the filters (record {row.key}, RecordType {code!r})"
        user = record.get("UserId")
        if self.user_ids and isinstance(user, str) and user.strip().lower() not in self.user_ids:
            return f"a row not matching the filters (record {row.key}, UserId {user!r})"
        return ""
