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
    """AuditData CreationTime (UTC, usually without zone) as epoch seconds."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return int((parsed.replace(tzinfo=UTC) - _EPOCH).total_seconds())


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
        self._pending: list[tuple[int, int, int, int, int, int, str]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self.json) + len(self._pending)

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
        """Fast path for generators: the AuditData JSON already serialised, filter fields given."""
        with self._lock:
            self._pending.append(
                (
                    when,
                    self._ops.code(normalise_operation(operation)),
                    record_type,
                    self._users.code(user.lower()),
                    self._ips.code(ip.lower()),
                    self._objects.code(object_id.lower()),
                    text,
                )
            )

    def extend_serialized(self, rows: Iterable[tuple[int, str, int, str, str, str, str]]) -> None:
        """Bulk ``add_serialized``: (epoch, operation, record type, user, ip, object id, AuditData JSON)."""
        ops, users, ips, objects = self._ops.code, self._users.code, self._ips.code, self._objects.code
        with self._lock:
            self._pending.extend(
                (
                    when,
                    ops(normalise_operation(op)),
                    rt,
                    users(user.lower()),
                    ips(ip.lower()),
                    objects(obj.lower()),
                    text,
                )
                for when, op, rt, user, ip, obj, text in rows
            )

    def _merge(self) -> None:
        if not self._pending:
            return
        pending = self._pending
        self._pending = []
        cols = list(zip(*pending, strict=True))
        times = np.concatenate([self.times, np.asarray(cols[0], dtype=np.int64)])
        order = np.argsort(times, kind="stable")
        self.times = times[order]
        self._op_col = np.concatenate([self._op_col, np.asarray(cols[1], dtype=np.int64)])[order]
        self._rt_col = np.concatenate([self._rt_col, np.asarray(cols[2], dtype=np.int64)])[order]
        self._user_col = np.concatenate([self._user_col, np.asarray(cols[3], dtype=np.int64)])[order]
        self._ip_col = np.concatenate([self._ip_col, np.asarray(cols[4], dtype=np.int64)])[order]
        self._obj_col = np.concatenate([self._obj_col, np.asarray(cols[5], dtype=np.int64)])[order]
        texts = self.json + list(cols[6])
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
