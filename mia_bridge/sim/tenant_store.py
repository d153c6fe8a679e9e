"""Columnar, time-sorted store of unified audit log records for the simulated tenant.

A million records must answer a windowed query in milliseconds, so records are held as parallel
numpy columns (epoch seconds, codes for operation / record type / user / IP) plus the AuditData
JSON strings; queries bisect on time first, then filter the window with vectorised comparisons.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from mia_bridge.records import timestamps

IntArray = npt.NDArray[np.int64]

# AuditLogRecordType (Management Activity API schema): the values the simulation emits and filters on.
RECORD_TYPES: dict[str, int] = {
    "ExchangeAdmin": 1,
    "ExchangeItem": 2,
    "ExchangeItemGroup": 3,
    "SharePoint": 4,
    "SharePointFileOperation": 6,
    "AzureActiveDirectory": 8,
    "AzureActiveDirectoryAccountLogon": 9,
    "SharePointSharingOperation": 14,
    "AzureActiveDirectoryStsLogon": 15,
    "SecurityComplianceCenterEOPCmdlet": 18,
    "ExchangeAggregatedOperation": 19,
    "ExchangeItemAggregated": 50,
}
RECORD_TYPE_NAMES: dict[int, str] = {v: k for k, v in RECORD_TYPES.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalise_operation(name: str) -> str:
    """Operations compare case-insensitively, ignoring surrounding blanks and a trailing period.

    Entra operation names end in "." ("Consent to application."); Sparrow's filters omit it
    ("Consent to application") and found those records, so the service is taken to ignore it [U].
    """
    return name.strip().rstrip(".").strip().lower()


def record_type_code(value: Any) -> int | None:
    """A -RecordType value (enum name or number) as its number; None when unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    for name, code in RECORD_TYPES.items():
        if name.lower() == text.lower():
            return code
    return None


def parse_creation_time(value: str) -> int:
    """AuditData CreationTime (UTC, usually without zone) as epoch seconds; ValueError when unreadable."""
    seconds = timestamps.epoch_seconds(value)
    if seconds is None:
        raise ValueError(f"unreadable CreationTime {value[:60]!r}")
    return seconds


def epoch_seconds(moment: datetime) -> int:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return int((aware - _EPOCH).total_seconds() // 1)


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def client_ip_of(record: dict[str, Any]) -> str:
    """The address a record was made from, without a port (fields differ per workload)."""
    for key in ("ClientIP", "ClientIPAddress", "ActorIpAddress"):
        value = record.get(key)
        if value:
            return strip_port(str(value))
    return ""


def strip_port(ip: str) -> str:
    ip = ip.strip()
    if ip.startswith("["):  # [v6]:port
        return ip[1 : ip.index("]")] if "]" in ip else ip
    if ip.count(":") == 1:  # v4:port
        return ip.split(":", 1)[0]
    return ip


class _Vocab:
    """Strings interned to small integer codes (so columns stay numeric)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def code(self, value: str) -> int:
        found = self.codes.get(value)
        if found is None:
            found = len(self.codes)
            self.codes[value] = found
        return found

    def lookup(self, values: Iterable[str]) -> list[int]:
        return [self.codes[v] for v in values if v in self.codes]


class AuditStore:
    """Audit records sorted by CreationTime; appends are buffered and merged on the next query."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ops = _Vocab()
        self._users = _Vocab()
        self._ips = _Vocab()
        self._objects = _Vocab()
        self.times: IntArray = np.empty(0, dtype=np.int64)
        self._op_col: IntArray = np.empty(0, dtype=np.int64)
        self._rt_col: IntArray = np.empty(0, dtype=np.int64)
        self._user_col: IntArray = np.empty(0, dtype=np.int64)
        self._ip_col: IntArray = np.empty(0, dtype=np.int64)
        self._obj_col: IntArray = np.empty(0, dtype=np.int64)
        self.json: list[str] = []
        self._rows: list[tuple[int, int, int, int, int, int, str]] = []  # single appends
        self._chunks: list[tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray, list[str]]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self.json) + len(self._rows) + sum(len(c[6]) for c in self._chunks)

    # --- codes (generators precompute them once per user / kind) ----------------------------------

    def operation_code(self, operation: str) -> int:
        with self._lock:
            return self._ops.code(normalise_operation(operation))

    def user_code(self, user: str) -> int:
        with self._lock:
            return self._users.code(user.lower())

    def ip_code(self, ip: str) -> int:
        with self._lock:
            return self._ips.code(strip_port(ip).lower())

    def object_code(self, object_id: str) -> int:
        with self._lock:
            return self._objects.code(object_id.lower())

    # --- appends ------------------------------------------------------------------------------------

    def add_record(self, record: dict[str, Any]) -> None:
        """Add one AuditData dict (it needs CreationTime, Operation, RecordType and a unique Id)."""
        for key in ("CreationTime", "Operation", "RecordType", "Id"):
            if key not in record:
                raise ValueError(f"audit record lacks {key}: {str(record)[:200]}")
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        self.add_serialized(
            parse_creation_time(str(record["CreationTime"])),
            str(record["Operation"]),
            int(record["RecordType"]),
            str(record.get("UserId") or ""),
            client_ip_of(record),
            str(record.get("ObjectId") or ""),
            text,
        )

    def add_serialized(
        self, when: int, operation: str, record_type: int, user: str, ip: str, object_id: str, text: str
    ) -> None:
        """One record whose AuditData JSON is already serialised, with its filter fields."""
        with self._lock:
            self._rows.append((
                when, self.operation_code(operation), record_type, self.user_code(user), self.ip_code(ip),
                self.object_code(object_id), text,
            ))

    def extend_columns(self, times: IntArray, operations: IntArray, record_types: IntArray, users: IntArray,
                       ips: IntArray, objects: IntArray, texts: list[str]) -> None:
        """Bulk append for generators: parallel columns of codes (from the ``*_code`` methods) and JSON."""
        columns = [np.asarray(c, dtype=np.int64) for c in (times, operations, record_types, users, ips, objects)]
        if any(len(c) != len(texts) for c in columns):
            raise ValueError("extend_columns: columns differ in length")
        with self._lock:
            self._chunks.append((*columns, list(texts)))  # type: ignore[arg-type]

    def _merge(self) -> None:
        if self._rows:
            cols = list(zip(*self._rows, strict=True))
            self._rows = []
            arrays = [np.asarray(c, dtype=np.int64) for c in cols[:6]]
            self._chunks.append((*arrays, list(cols[6])))  # type: ignore[arg-type]
        if not self._chunks:
            return
        chunks = self._chunks
        self._chunks = []
        times = np.concatenate([self.times, *(c[0] for c in chunks)])
        order = np.argsort(times, kind="stable")
        self.times = times[order]
        for i, name in enumerate(("_op_col", "_rt_col", "_user_col", "_ip_col", "_obj_col"), start=1):
            column = np.concatenate([getattr(self, name), *(c[i] for c in chunks)])
            setattr(self, name, column[order])
        texts = self.json
        for chunk in chunks:
            texts.extend(chunk[6])
        self.json = [texts[i] for i in order.tolist()]

    def select(
        self,
        start: int,
        end: int,
        *,
        operations: Sequence[str] | None = None,
        record_types: Sequence[int] | None = None,
        user_ids: Sequence[str] | None = None,
        ip_addresses: Sequence[str] | None = None,
        object_ids: Sequence[str] | None = None,
        free_text: str | None = None,
    ) -> IntArray:
        """Positions (ascending CreationTime, insertion order within a second) of the matching records,
        for start <= CreationTime < end."""
        with self._lock:
            self._merge()
            lo = int(np.searchsorted(self.times, start, side="left"))
            hi = int(np.searchsorted(self.times, end, side="left"))
            if hi <= lo:
                return np.empty(0, dtype=np.int64)
            mask = np.ones(hi - lo, dtype=bool)
            for values, vocab, col, norm in (
                (operations, self._ops, self._op_col, normalise_operation),
                (user_ids, self._users, self._user_col, str.lower),
                (ip_addresses, self._ips, self._ip_col, lambda s: strip_port(s).lower()),
                (object_ids, self._objects, self._obj_col, str.lower),
            ):
                if values is not None:
                    codes = vocab.lookup(norm(v) for v in values)
                    mask &= np.isin(col[lo:hi], np.asarray(codes, dtype=np.int64))
            if record_types is not None:
                mask &= np.isin(self._rt_col[lo:hi], np.asarray(list(record_types), dtype=np.int64))
            if not free_text:
                return np.nonzero(mask)[0].astype(np.int64) + lo
            candidates: Iterable[int] = range(lo, hi) if mask.all() else (np.nonzero(mask)[0] + lo).tolist()
            texts = self.json
            needle = free_text.lower()
            if needle == free_text.upper():  # no letters: no case folding needed
                kept = [p for p in candidates if needle in texts[p]]
            else:
                kept = [p for p in candidates if needle in texts[p].lower()]
            positions = np.asarray(kept, dtype=np.int64)
            return positions

    def compact(self) -> None:
        """Merge buffered records now (so the first query does not pay for it)."""
        with self._lock:
            self._merge()

    def texts(self, positions: Iterable[int]) -> list[str]:
        with self._lock:
            self._merge()
            return [self.json[int(p)] for p in positions]

    def snapshot(self) -> list[str]:
        """Every AuditData JSON string, in time order."""
        with self._lock:
            self._merge()
            return list(self.json)

    def time_at(self, position: int) -> int:
        with self._lock:
            self._merge()
            return int(self.times[position])

    def record_type_at(self, position: int) -> int:
        with self._lock:
            self._merge()
            return int(self._rt_col[position])
