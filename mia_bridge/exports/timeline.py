"""Timesketch-ready timeline CSV: ``message,datetime,timestamp_desc`` plus searchable attributes.

One row per audit record (deduplicated on the record Id), sorted by time. Records whose time cannot
be read are not dropped: they are written at the end with an empty ``datetime`` and counted, so the
caller can report them (Timesketch's own importer would silently drop them).
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import tempfile
from collections.abc import Iterable, Iterator, Mapping
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
SPILL_ROWS = 200_000  # rows held before a sorted run goes to a temporary file


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
    spill_rows: int = SPILL_ROWS,
) -> TimelineStats:
    """Write the timeline CSV. ``searches_by_id``/``findings_by_id`` label rows by record Id.

    ``records`` are read once, as they come (a view over the evidence files holds none of them): past
    ``spill_rows`` rows, sorted runs of rows go to temporary files and are merged (a stable sort, the same
    order as sorting them all at once), so memory holds ``spill_rows`` rows and the Ids seen."""
    searches_by_id = searches_by_id or {}
    findings_by_id = findings_by_id or {}
    seen: set[str] = set()
    dated: list[tuple[datetime, list[str]]] = []
    undated: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="mia-timeline-") as spill:
        runs: list[Path] = []
        undated_file = Path(spill) / "undated.pickle"
        undated_spilled = 0
        rows = 0
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
            rows += 1
            if when is None:
                undated.append(row)
                if len(undated) >= spill_rows:
                    _dump(undated_file, undated, append=True)
                    undated_spilled += len(undated)
                    undated.clear()
            else:
                dated.append((when, row))
                if len(dated) >= spill_rows:
                    runs.append(_spill_run(Path(spill), len(runs), dated))
                    dated.clear()
        dated.sort(key=lambda item: item[0])
        ordered: Iterable[tuple[datetime, list[str]]] = dated
        if runs:  # heapq.merge is stable: rows of an equal time keep the order they were read in
            ordered = heapq.merge(*(_load(run) for run in runs), dated, key=lambda item: item[0])
        undated_rows: Iterable[list[str]] = undated
        if undated_spilled:
            undated_rows = itertools.chain(_load(undated_file), undated)
        try:
            write_rows(path, TIMELINE_COLUMNS, itertools.chain((row for _, row in ordered), undated_rows))
        except OSError as exc:
            raise ExportError(f"{path}: cannot write timeline: {exc.strerror or exc}", path=str(path)) from exc
    return TimelineStats(rows=rows, undated=undated_spilled + len(undated))


def _spill_run(folder: Path, number: int, dated: list[tuple[datetime, list[str]]]) -> Path:
    dated.sort(key=lambda item: item[0])
    run = folder / f"run-{number:05d}.pickle"
    _dump(run, dated)
    return run


def _dump(path: Path, items: Iterable[Any], *, append: bool = False) -> None:
    with open(path, "ab" if append else "wb") as handle:
        for item in items:
            pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _load(path: Path) -> Iterator[Any]:
    """What ``_dump`` wrote (our own temporary file), one item at a time."""
    with open(path, "rb") as handle:
        while True:
            try:
                yield pickle.load(handle)  # our own file, in a private temporary folder
            except EOFError:
                return
