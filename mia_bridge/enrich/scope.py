"""The exposure scope of a case: which message ids were read (bind), which folders synced and which
mailboxes throttled, in the attacker's context.

Read from the analysis tables (``CASE/analysis/`` from ``mia investigate``, or the folder ``mia analyze``
wrote) and the attacker context (``findings.json`` plus any ``--suspicious-ip``/``--suspicious-app``).
Without any attacker context every bind, sync and throttled window is in scope, and the notes say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from mia_bridge.enrich.model import ACCESSED, ExposedMessage, normalise_id
from mia_bridge.errors import UsageError
from mia_bridge.evidence.layout import ANALYSIS_DIR, DIRECTORY_DIR, FINDINGS_NAME
from mia_bridge.records.timestamps import parse_time

ANALYSIS_DIRS = (ANALYSIS_DIR, ".")


@dataclass(frozen=True)
class SyncEvent:
    mailbox: str
    folder: str
    time: datetime
    context: str


@dataclass(frozen=True)
class ThrottledWindow:
    mailbox: str
    start: datetime
    end: datetime


@dataclass
class Scope:
    accessed: dict[str, ExposedMessage]
    syncs: list[SyncEvent] = field(default_factory=list)
    throttled: list[ThrottledWindow] = field(default_factory=list)
    attacker_ips: set[str] = field(default_factory=set)
    attacker_apps: set[str] = field(default_factory=set)
    internal_domains: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    analysis_dir: Path | None = None
    bind_rows: int = 0  # item rows read from the analysis (all contexts)


ROWS_AT_ONCE = 65_536  # rows of a table read at a time (items has several rows a record: millions on a large case)


def _rows(folder: Path, name: str) -> Iterator[dict[str, Any]]:
    """The rows of one analysis table (Parquet preferred, else CSV), read ``ROWS_AT_ONCE`` at a time and let go
    once used; none when it is absent."""
    parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
    if parquet.exists():
        with pq.ParquetFile(parquet) as source:
            frames: Iterable[pd.DataFrame] = (batch.to_pandas() for batch in source.iter_batches(ROWS_AT_ONCE))
            for frame in frames:
                yield from ({str(k): v for k, v in row.items()} for row in frame.to_dict("records"))
    elif csv.exists():
        with pd.read_csv(csv, dtype=str, keep_default_na=False, chunksize=ROWS_AT_ONCE) as chunks:
            for frame in chunks:
                yield from ({str(k): v for k, v in row.items()} for row in frame.to_dict("records"))


def _time(value: Any) -> datetime | None:
    """A time of an analysis table (a Parquet timestamp, or the CSV's text) as a UTC datetime."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return parse_time(value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def _context(row: dict[str, Any]) -> str:
    app = _text(row, "client_app_id") or _text(row, "app_id")
    return " | ".join((_text(row, "client_ip") or "-", app or "-", _text(row, "client_info_string") or "-"))


def load_scope(case_dir: Path, *, suspicious_ips: tuple[str, ...] = (),
               suspicious_apps: tuple[str, ...] = ()) -> Scope:
    """The exposure scope of ``case_dir``; a UsageError when it holds no analysis tables."""
    folder = next((case_dir / d for d in ANALYSIS_DIRS if (case_dir / d / "items.parquet").exists()
                   or (case_dir / d / "items.csv").exists()), None)
    if folder is None:
        raise UsageError(f"{case_dir}: no MailItemsAccessed analysis (analysis/items.parquet or items.csv)",
                         hint="run `mia investigate --out CASE` or `mia analyze ... --out CASE` first")
    ips = {i.lower() for i in suspicious_ips}
    apps = {a.lower() for a in suspicious_apps}
    findings = case_dir / FINDINGS_NAME
    if findings.exists():
        try:
            context = json.loads(findings.read_text(encoding="utf-8")).get("attacker_context") or {}
        except ValueError as exc:
            raise UsageError(f"{findings}: unreadable: {exc}") from None
        ips |= {str(i).lower() for i in context.get("ips") or []}
        apps |= {str(a).lower() for a in context.get("apps") or []}
    scope = Scope(accessed={}, attacker_ips=ips, attacker_apps=apps, analysis_dir=folder)
    known = bool(ips or apps)
    if not known:
        scope.notes.append("no attacker context (findings.json, --suspicious-ip, --suspicious-app): every bind, "
                           "folder sync and throttled window in the analysis is in scope")

    def attacker(row: dict[str, Any]) -> bool:
        if not known:
            return True
        return (_text(row, "client_ip").lower() in ips or _text(row, "client_app_id").lower() in apps
                or _text(row, "app_id").lower() in apps)

    mailboxes: set[str] = set()
    owners: set[str] = set()  # every mailbox owner in the analysis: their domains are the tenant's
    for row in _rows(folder, "items"):
        scope.bind_rows += 1
        if scope.bind_rows <= 1000 and _text(row, "mailbox").startswith("addr-"):
            raise UsageError(f"{folder}: the analysis tables were written with --hash-addresses (mailboxes are "
                             "pseudonyms): the mailboxes cannot be asked",
                             hint="enrich the unredacted case, or rerun `mia analyze evidence/ --out DIR` and "
                             "enrich DIR")  # fmt: skip
        owners.add(_text(row, "mailbox").lower())
        raw = _text(row, "internet_message_id_raw") or _text(row, "internet_message_id")
        if not raw or not attacker(row):
            continue
        key = normalise_id(raw)
        when = _time(row.get("creation_time"))
        message = scope.accessed.get(key)
        if message is None:
            message = scope.accessed[key] = ExposedMessage(key, raw, ACCESSED, first_access=when)
            message.add_reason("read (MailItemsAccessed bind)")
        elif when is not None and (message.first_access is None or when < message.first_access):
            message.first_access = when
        mailbox = _text(row, "mailbox").lower()
        message.mailboxes.add(mailbox)
        mailboxes.add(mailbox)
        if _text(row, "folder_path"):
            message.folders.add(_text(row, "folder_path"))
        message.contexts.add(_context(row))
    for row in _rows(folder, "synced_folders"):
        when = _time(row.get("creation_time"))
        if when is None or not attacker(row):
            continue
        mailbox = _text(row, "mailbox").lower()
        mailboxes.add(mailbox)
        scope.syncs.append(SyncEvent(mailbox, _text(row, "folder_path"), when, _context(row)))
    for row in _rows(folder, "throttled_windows"):
        start, end = _time(row.get("window_start")), _time(row.get("window_end"))
        mailbox = _text(row, "mailbox").lower()
        if start is None or end is None or (known and mailbox not in mailboxes):
            continue
        scope.throttled.append(ThrottledWindow(mailbox, start, end))
    owners |= mailboxes
    scope.internal_domains = _domains(case_dir) | {m.rsplit("@", 1)[1] for m in owners if "@" in m}
    return scope


def _domains(case_dir: Path) -> set[str]:
    """The tenant's domains from ``directory/domains.json`` (raw Get-MgDomain output), when present."""
    path = case_dir / DIRECTORY_DIR / "domains.json"
    if not path.exists():
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return set()
    rows = data.get("output") if isinstance(data, dict) else data
    return {str(d.get("Id") or "").lower() for d in rows or [] if isinstance(d, dict)} - {""}
