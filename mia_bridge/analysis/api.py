"""The analysis API: inputs (files or live records) in, summary and tables out.

``analyze_files`` reads exports; ``analyze_records`` takes raw AuditData dicts or JSON strings (the live
investigation feeds collected records here); ``write_outputs`` writes the output contract.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mia_bridge.analysis import saved_base
from mia_bridge.analysis.base_tables import BaseTables
from mia_bridge.analysis.columnar import read_csv_chunks, read_jsonl_chunks
from mia_bridge.analysis.engines import EMBEDDED, ENGINES
from mia_bridge.analysis.engines.embedded import EmbeddedEngine, Parameters
from mia_bridge.analysis.ingest import ingest_files, ingest_records
from mia_bridge.analysis.intake import QUARANTINE_COLUMNS, Intake
from mia_bridge.analysis.leads import option_values
from mia_bridge.analysis.message_lookup import lookup_requests
from mia_bridge.analysis.normalise import json_text
from mia_bridge.analysis.outputs import OutputWriter, write_outputs
from mia_bridge.analysis.summary import build_summary
from mia_bridge.errors import UsageError
from mia_bridge.readers import auditdata_csv, raw_auditdata_json
from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.raw_auditdata_json import unwrap
from mia_bridge.readers.registry import read_prepared
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
    engine: str = EMBEDDED  # engines.ENGINES


@dataclass
class InputReport:
    path: str
    format: str | None
    records_read: int = 0
    records_quarantined: int = 0
    error: str | None = None


# The big tables' columns as pandas' nullable types (as schema.RECORD_COLUMNS gives them)
_NULLABLE = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype(), pa.uint64(): pd.UInt64Dtype(),
             pa.large_string(): pd.StringDtype()}


@dataclass
class AnalysisResult:
    """The summary, the quarantine, and every table as a Parquet file: the output's when a writer took them
    during the analysis (complete once ``writer.finish`` returns), else the work folder's (kept while this
    result lives). A table is read whole only when asked for (``records``, ``leads``...): on a tenant-wide pull
    contexts and leads have millions of rows, so ``rows`` and ``head`` read only what they need."""

    summary: dict[str, Any]
    quarantine: pd.DataFrame
    files: dict[str, Path]
    inputs: list[InputReport] = field(default_factory=list)
    work: Any = field(default=None, repr=False)  # the work folder holding ``files``, if any (a TemporaryDirectory)
    # tables fetched whole by the engine (the message-id lookup), and those read on first use
    loaded: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame | None:
        """The table ``name`` whole (None when this analysis has none, e.g. no lookup was asked)."""
        if name not in self.loaded:
            if name not in self.files:
                return None
            # the big tables with pandas' nullable types (as schema.RECORD_COLUMNS gives them)
            mapper = _NULLABLE.get if name in ("records", "events", "items") else None
            self.loaded[name] = pq.read_table(self.files[name]).to_pandas(types_mapper=mapper)
        return self.loaded[name]

    def rows(self, name: str) -> int:
        """The number of rows of ``name``, from the file's metadata (nothing read)."""
        if name in self.loaded:
            return len(self.loaded[name])
        return pq.ParquetFile(self.files[name]).metadata.num_rows if name in self.files else 0

    def head(self, name: str, n: int) -> pd.DataFrame | None:
        """The first ``n`` rows of ``name``, read a row group at a time."""
        if name in self.loaded or name not in self.files:
            frame = self.table(name)
            return None if frame is None else frame.head(n)
        parquet = pq.ParquetFile(self.files[name])
        first = next(parquet.iter_batches(batch_size=max(n, 1)), None)
        batches = [] if first is None else [first]
        return pa.Table.from_batches(batches, schema=parquet.schema_arrow).slice(0, n).to_pandas()

    def _whole(self, name: str) -> pd.DataFrame:
        frame = self.table(name)
        if frame is None:
            raise KeyError(f"this analysis has no {name} table")
        return frame

    @property
    def records(self) -> pd.DataFrame:
        """Every unique record (``schema.RECORD_COLUMNS``)."""
        return self._whole("records")

    @property
    def events(self) -> pd.DataFrame:
        """One row per MailItemsAccessed record in the period (``schema.EVENT_COLUMNS``)."""
        return self._whole("events")

    @property
    def items(self) -> pd.DataFrame:
        """One row per accessed item of bind events (``schema.ITEM_COLUMNS``)."""
        return self._whole("items")

    @property
    def synced_folders(self) -> pd.DataFrame:
        return self._whole("synced_folders")

    @property
    def throttled_windows(self) -> pd.DataFrame:
        return self._whole("throttled_windows")

    @property
    def contexts(self) -> pd.DataFrame:
        return self._whole("contexts")

    @property
    def leads(self) -> pd.DataFrame:
        return self._whole("leads")

    @property
    def message_lookup(self) -> pd.DataFrame | None:
        """One row per message id listed with ``--message-ids``; None when none was."""
        return self.table("message_lookup")


# Seconds per phase of the last analysis in this process (read, base tables, each statement): benchmarks
# print them (where the time goes).
TIMINGS: dict[str, float] = {}


def analyze_files(paths: Sequence[Path], options: AnalysisOptions, writer: OutputWriter | None = None
                  ) -> AnalysisResult:
    """Read and analyse every input; unreadable files are reported in the summary.

    With ``writer``, the tables are handed to it as soon as each is ready (``writer.finish(result)`` completes
    the output). Raises ``ReaderError`` (exit code 1) when not a single input could be read. A saved base
    (``saved_base``: the folder ``--keep-base`` wrote) is analysed instead of being read again.
    """
    TIMINGS.clear()
    saved = saved_base.find_in(list(paths))
    work = tempfile.TemporaryDirectory(prefix="mia-analysis-")
    try:
        started = time.perf_counter()
        if saved is not None:
            loaded, manifest = saved_base.load(saved)
            base = dataclasses.replace(loaded, inputs=[InputReport(**manifest.report(str(paths[0])))])
        else:
            base = ingest_files(paths, options, Path(work.name) / "base")
        TIMINGS["read"] = time.perf_counter() - started
        return _analyse(base, options, work, writer)
    except BaseException:
        work.cleanup()
        raise


def _read_one(intake: Intake, reader: Reader, src: DecodedInput, sniffed: Sniff) -> None:
    """One input into an in-memory ``Intake`` (vectorised when it can be): what the Spark engine's executors do
    with their split, and the reference the streaming ingest is tested against."""
    chunks = None
    if reader.NAME == raw_auditdata_json.NAME and sniffed.json_kind == "lines":
        chunks = read_jsonl_chunks(src)  # None: irregular input, read record by record
    elif reader.NAME in auditdata_csv.NAMES:
        chunks = read_csv_chunks(src, sniffed, reader.NAME)  # likewise
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
    TIMINGS.clear()
    work = tempfile.TemporaryDirectory(prefix="mia-analysis-")
    try:
        started = time.perf_counter()
        base = ingest_records(records, source, options, Path(work.name) / "base")
        TIMINGS["read"] = time.perf_counter() - started
        return _analyse(base, options, work)
    except BaseException:
        work.cleanup()
        raise


def _quarantine_frame(path: Path) -> pd.DataFrame:
    """quarantine.jsonl of the base tables as a frame (``intake.QUARANTINE_COLUMNS``)."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            rows.append((entry["file"], entry["line"], entry["reason"], entry["raw"]))
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS).astype({"line": "Int64"})


def _parameters(options: AnalysisOptions) -> Parameters:
    return Parameters(start=options.start, end=options.end, option_values=option_values(
        suspicious_ips=options.suspicious_ips, suspicious_apps=options.suspicious_apps,
        known_good_ips=options.known_good_ips),
        lookup_requests=lookup_requests(options.message_ids) if options.message_ids else None)


def _analyse(base: BaseTables, options: AnalysisOptions, work: tempfile.TemporaryDirectory[str],
             writer: OutputWriter | None = None) -> AnalysisResult:
    """Analyse the base tables ingest wrote under ``work``; what only the analysis read is removed after it."""
    result = analyse_base(base, options, list(base.inputs), Path(work.name), writer, work, engine=options.engine)
    if writer is not None and writer.keep_base:
        writer.save_base(base)
    shutil.rmtree(Path(work.name) / "base", ignore_errors=True)  # read; the result keeps only its tables
    shutil.rmtree(Path(work.name) / "spill", ignore_errors=True)
    return result


def analyse_base(base: BaseTables, options: AnalysisOptions, reports: list[InputReport], work_dir: Path,
                 writer: OutputWriter | None = None, work: Any = None, engine: str = EMBEDDED) -> AnalysisResult:
    """Run the analysis over ``base`` on ``engine``; big tables go to ``writer`` as they are made (else to
    ``work_dir``, which ``work`` keeps alive with the result)."""
    if engine != EMBEDDED:
        raise UsageError(f"unknown analysis engine {engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")
    engine_run = EmbeddedEngine(work_dir)
    run = engine_run.run(base, _parameters(options), writer)
    TIMINGS.update({f"sql:{name}": seconds for name, seconds in engine_run.timings.items()})
    return result_of(run, base, _quarantine_frame(base.quarantine), options, reports, work)


def result_of(run: Any, base: Any, quarantine: pd.DataFrame, options: AnalysisOptions, reports: list[InputReport],
              work: Any) -> AnalysisResult:
    """An engine's run (``EngineResult``) as the analysis result, with its summary."""
    loaded = {name: table.to_pandas() for name, table in run.tables.items()}
    summary = build_summary(base, run.counts, run.lists, top_leads=run.top_leads.to_pandas(),
                            lookup=loaded.get("message_lookup"), options=options, inputs=[vars(r) for r in reports])
    return AnalysisResult(summary=summary, quarantine=quarantine, files=run.files, inputs=reports, work=work,
                          loaded=loaded)
