"""The analysis API: inputs (files or live records) in, summary and tables out.

``analyze_files`` reads exports; ``analyze_records`` takes raw AuditData dicts or JSON strings (the live
investigation feeds collected records here); ``write_outputs`` writes the output contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mia_bridge.analysis import fast_csv, fast_jsonl
from mia_bridge.analysis import mailitemsaccessed as mia
from mia_bridge.analysis.dedup import deduplicate
from mia_bridge.analysis.intake import Intake
from mia_bridge.analysis.leads import rank_leads
from mia_bridge.analysis.message_lookup import lookup_messages
from mia_bridge.analysis.normalise import json_text
from mia_bridge.analysis.outputs import OutputWriter, write_outputs
from mia_bridge.analysis.summary import build_summary
from mia_bridge.errors import ReaderError, UnreadableInput
from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput, file_kind
from mia_bridge.readers.raw_auditdata_json import unwrap
from mia_bridge.readers.registry import prepare, read_prepared
from mia_bridge.readers.values import DEFAULT_MAX_RECORD_BYTES

__all__ = ["AnalysisOptions", "AnalysisResult", "OutputWriter", "analyze_files", "analyze_records", "write_outputs"]


@dataclass(frozen=True)
class AnalysisOptions:
    start: datetime | None = None
    end: datetime | None = None
    message_ids: list[str] | None = None  # entries as given: "<id>", "id", or "mailbox,id"
    suspicious_ips: Sequence[str] = ()
    suspicious_apps: Sequence[str] = ()
    known_good_ips: Sequence[str] = ()
    format: str | None = None  # force a reader (files only)
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES  # a larger record is quarantined (its start kept)


@dataclass
class InputReport:
    path: str
    format: str | None
    records_read: int = 0
    records_quarantined: int = 0
    error: str | None = None


@dataclass
class AnalysisResult:
    summary: dict[str, Any]
    records: pd.DataFrame
    events: pd.DataFrame
    bind_items: mia.BindItems  # the item table, built on first use of ``items`` (millions of rows on big inputs)
    synced_folders: pd.DataFrame
    throttled_windows: pd.DataFrame
    contexts: pd.DataFrame
    leads: pd.DataFrame
    message_lookup: pd.DataFrame | None
    quarantine: pd.DataFrame
    inputs: list[InputReport] = field(default_factory=list)
    _items: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def items(self) -> pd.DataFrame:
        """One row per accessed item of bind events (``schema.ITEM_COLUMNS``)."""
        if self._items is None:
            self._items = self.bind_items.frame()
        return self._items

    @property
    def items_built(self) -> bool:
        """Whether ``items`` has been materialised (else writers build it a slice at a time)."""
        return self._items is not None


def analyze_files(paths: Sequence[Path], options: AnalysisOptions, writer: OutputWriter | None = None
                  ) -> AnalysisResult:
    """Read and analyse every input; unreadable files are reported in the summary.

    With ``writer``, the tables are handed to it as soon as each is ready (``writer.finish(result)`` completes
    the output). Raises ``ReaderError`` (exit code 1) when not a single input could be read.
    """
    for path in paths:  # refused before anything is read: opening a FIFO or a device could block forever
        kind = file_kind(Path(path))
        if kind is not None and not kind.startswith(("no such", "cannot")):
            raise ReaderError(f"{path}: is {kind}, not a regular file; nothing was read",
                              hint="give exported files (copy a pipe or a device to a file first)")
    intake = Intake()
    reports: list[InputReport] = []
    for path in paths:
        try:
            reader, src, sniffed = prepare(Path(path), options.format, options.max_record_bytes)
        except UnreadableInput as exc:
            reports.append(InputReport(str(path), None, error=exc.message))
            continue
        report = InputReport(str(path), reader.NAME)
        before_read, before_q = intake.read, len(intake.quarantined)
        try:
            _read_one(intake, reader, src, sniffed)
        except (OSError, EOFError, ValueError, UnicodeError, RecursionError, MemoryError, pa.ArrowException) as exc:
            # The file's own problem: the records read before it stay, the other inputs are read.
            report.error = (f"{path}: reading stopped after {intake.read - before_read} record(s): "
                            f"{type(exc).__name__}: {exc}")
        report.records_read = intake.read - before_read
        report.records_quarantined = len(intake.quarantined) - before_q
        reports.append(report)
    if paths and all(r.error is not None and r.records_read == 0 for r in reports):
        problems = "; ".join(r.error or "" for r in reports)
        raise ReaderError(f"no input could be read: {problems}")
    return _analyse(intake, options, reports, writer)


def _read_one(intake: Intake, reader: Reader, src: DecodedInput, sniffed: Sniff) -> None:
    chunks = None
    if reader.NAME == fast_jsonl.NAME and sniffed.json_kind == "lines":
        chunks = fast_jsonl.read_jsonl_chunks(src)  # None: irregular input, read record by record
    elif reader.NAME in fast_csv.NAMES:
        chunks = fast_csv.read_csv_chunks(src, sniffed, reader.NAME)  # likewise
    if chunks is not None:
        while chunks:  # handed over one by one: the intake lets them go once it has concatenated them
            intake.add_chunk(chunks.pop(0))
    else:
        intake.extend(read_prepared(reader, src, sniffed))


def _records_from(records: Iterable[dict[str, Any] | str], source: str) -> Iterator[RawRecord | Quarantined]:
    for number, record in enumerate(records, start=1):
        if isinstance(record, str):
            try:
                obj = json.loads(record)
            except ValueError as exc:
                yield Quarantined(source, number, f"invalid JSON: {exc}", record)
                continue
            raw = record
        else:
            obj = record
            raw = json_text(record)
        if not isinstance(obj, dict):
            yield Quarantined(source, number, "expected a JSON object", raw)
            continue
        data = unwrap(obj)
        if isinstance(data, str):
            yield Quarantined(source, number, data, raw)
            continue
        yield RawRecord(data=data, source=source, line=number, fmt="records", raw=raw)


def analyze_records(
    records: Iterable[dict[str, Any] | str], options: AnalysisOptions, *, source: str
) -> AnalysisResult:
    """Analyse raw AuditData records (dicts or JSON strings); ``source`` names them in messages."""
    intake = Intake()
    report = InputReport(source, "records")
    intake.extend(_records_from(records, source))
    report.records_read = intake.read
    report.records_quarantined = len(intake.quarantined)
    return _analyse(intake, options, [report])


def _return_freed_memory() -> None:
    """Hand arrow's freed pages back to the system now rather than after its decay time: done at the two
    points where hundreds of MB were just freed, it keeps the peak ≈70 MB lower at 1,000,000 records (making
    every free immediate instead cost 4 s of system time)."""
    pa.default_memory_pool().release_unused()


def _analyse(intake: Intake, options: AnalysisOptions, reports: list[InputReport],
             writer: OutputWriter | None = None) -> AnalysisResult:
    records, folders, items_rows = intake.tables()
    _return_freed_memory()  # the read's per-block temporaries
    with ThreadPoolExecutor(max_workers=1) as side:
        # The longest single step (arrow hashes millions of ids without the GIL): it runs while the records
        # are de-duplicated. Shared by the item counts and the summary.
        factorizing = side.submit(pd.factorize, items_rows["internet_message_id"])
        keep, conflicts, records["fingerprint"] = deduplicate(records)
        unique = records if bool(keep.all()) else records.loc[keep].copy()  # no copy when nothing was removed
        in_period = pd.Series(True, index=unique.index)
        if options.start is not None:
            in_period &= unique["creation_time"] >= pd.Timestamp(options.start)
        if options.end is not None:
            in_period &= unique["creation_time"] <= pd.Timestamp(options.end)
        unique["in_period"] = in_period.astype("boolean")
        records_out = unique.reset_index(drop=True)
        if writer is not None:
            writer.records(records_out)
        period = unique if bool(in_period.all()) else unique.loc[in_period]
        events = mia.event_table(period)
        events_out = events.reset_index(drop=True)
        if writer is not None:
            writer.table("events", events_out)
        codes, uniques = factorizing.result()
        message_ids = (codes.astype(np.int32) if len(uniques) < 2**31 else codes, uniques)  # held to the end
    # The ids live on as codes: the item table rebuilds the column from them.
    items = mia.bind_items(events, items_rows.drop(columns=["internet_message_id"]), message_ids)
    del items_rows  # the kept rows live on in ``items``
    _return_freed_memory()  # the message ids as strings
    if writer is not None and not options.message_ids:  # with a lookup, the whole table is built below
        writer.items(items)
    synced = mia.synced_folder_table(events, folders)
    del folders
    windows = mia.throttled_windows(events)
    contexts = mia.context_table(events, items, synced)
    leads = rank_leads(
        contexts,
        suspicious_ips=options.suspicious_ips,
        suspicious_apps=options.suspicious_apps,
        known_good_ips=options.known_good_ips,
        throttled_mailboxes=windows["mailbox"].tolist(),
    )
    if writer is not None:
        for name, frame in (("synced_folders", synced), ("throttled_windows", windows), ("contexts", contexts),
                            ("leads", leads)):
            writer.table(name, frame)
    item_frame = lookup = None
    if options.message_ids:
        item_frame = items.frame()
        lookup = lookup_messages(options.message_ids, item_frame, synced, windows)
    quarantine = intake.quarantine_frame()
    summary = build_summary(
        read=intake.read, parsed=len(records), quarantined=len(quarantine), unique=unique, period=period,
        events=events, items=items, synced=synced, windows=windows, contexts=contexts, leads=leads,
        conflicts=conflicts, options=options, inputs=[vars(r) for r in reports], lookup=lookup,
    )
    return AnalysisResult(
        summary=summary, records=records_out, events=events_out, bind_items=items,
        synced_folders=synced, throttled_windows=windows, contexts=contexts, leads=leads,
        message_lookup=lookup, quarantine=quarantine, inputs=reports, _items=item_frame,
    )
