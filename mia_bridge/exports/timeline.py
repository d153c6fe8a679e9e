"""Timesketch-ready timeline CSV: ``message,datetime,timestamp_desc`` plus searchable attributes.

One row per audit record (deduplicated on the record Id), sorted by time. Records whose time cannot
be read are not dropped: they are written at the end with an empty ``datetime`` and counted, so the
caller can report them (Timesketch's own importer would silently drop them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge.csv_safety import write_rows
from mia_bridge.errors import ExportError
from mia_bridge.records.fields import client_ip, mail_access_type, record_time

TIMELINE_COLUMNS: tuple[str, ...] = (
    "message", "datetime", "timestamp_desc", "record_id", "operation", "user_id", "client_ip", "app_id",
    "workload", "record_type", "mail_access_type", "searches", "findings",
)  # fmt: skip
TIMESTAMP_DESC = "Audit record creation time"


@dataclass(frozen=True)
class TimelineStats:
    rows: int
    undated: int


def _message(record: Mapping[str, Any]) -> str:
    user = record.get("UserId") or "(unknown user)"
    operation = record.get("Operation") or "(unknown operation)"
    parts = [f"{user}: {operation}"]
    access = mail_access_type(record)
    if access:
        parts.append(f"[{access}]")
    target = record.get("MailboxOwnerUPN") or record.get("ObjectId")
    if target and target != user:
        parts.append(f"on {target}")
    ip = client_ip(record)
    if ip:
        parts.append(f"from {ip}")
    return " ".join(parts)


def write_timeline(
    path: Path,
    records: Iterable[Mapping[str, Any]],
    *,
    searches_by_id: Mapping[str, Iterable[str]] | None = None,
    findings_by_id: Mapping[str, Iterable[str]] | None = None,
) -> TimelineStats:
    """Write the timeline CSV. ``searches_by_id``/``findings_by_id`` label rows by record Id."""
    searches_by_id = searches_by_id or {}
    findings_by_id = findings_by_id or {}
    seen: set[str] = set()
    dated: list[tuple[datetime, list[str]]] = []
    undated: list[list[str]] = []
    for record in records:
        record_id = str(record.get("Id") or "")
        if record_id:
            if record_id in seen:
                continue
            seen.add(record_id)
        when = record_time(record)
        row = [
            _message(record),
            when.isoformat() if when else "",
            TIMESTAMP_DESC,
            record_id,
            str(record.get("Operation") or ""),
            str(record.get("UserId") or ""),
            client_ip(record),
            str(record.get("AppId") or record.get("ApplicationId") or ""),
            str(record.get("Workload") or ""),
            str(record.get("RecordType") or ""),
            mail_access_type(record),
            ";".join(sorted(set(searches_by_id.get(record_id, ())))),
            ";".join(findings_by_id.get(record_id, ())),
        ]
        if when is None:
            undated.append(row)
        else:
            dated.append((when, row))
    dated.sort(key=lambda item: item[0])
    try:
        write_rows(path, TIMELINE_COLUMNS, itertools.chain((row for _, row in dated), undated))
    except OSError as exc:
        raise ExportError(f"{path}: cannot write timeline: {exc.strerror or exc}", path=str(path)) from exc
    return TimelineStats(rows=len(dated) + len(undated), undated=len(undated))
