"""Streaming ingest: inputs in, the base tables (``base_tables.BaseTables``) out, on disk, in bounded memory.

Every input is read as today (clean bulk exports by their reader's columnar read and ``columnar.build_chunk``,
else by the format's reader and ``normalise`` record by record), but each chunk of rows is written to a
Parquet part in the work folder as soon as it is built: nothing is concatenated in memory. ``rec`` numbers
the parsed records globally in input order; parts are named ``part-NNNNNN.parquet`` in ``rec`` order.
Quarantined records go to ``quarantine.jsonl`` as they come.

Parallel parsing: a clean JSON-lines file is cut into blocks of whole lines (``_BLOCK`` bytes, by the
reader's ``plain_blocks``/``stream_blocks``); the lines of each block are counted first, so every block knows
its first ``rec`` and line before it is parsed, and a pool of processes (one per core) parses the blocks
(``parse_lines``) and writes their parts. A gzip file is decompressed here and its blocks sent to the pool; a
Purview/UAL CSV is split into rows by arrow's CSV reader here (``auditdata_csv.raw_batches``: it knows
quoting) and the rows' AuditData parsed in the pool (``records_of_batch``). When a file turns out irregular
part-way (a blank line, a field of an unexpected type), its parts are deleted and it is read record by
record, which quarantines precisely: the same fallback as ``analyze_files``. The workers are started by
multiprocessing's forkserver: a calling script needs the usual ``if __name__ == "__main__":`` guard. If a
worker dies (killed, out of memory), the input is parsed again in this process.

De-duplication (``dedup.deduplicate``, unchanged) runs only on the records whose Id occurs more than once,
found by DuckDB over the records dataset; they are taken in hash partitions of Ids of at most
``DEDUP_PARTITION_ROWS`` records, one at a time, so an export given twice (every Id shared) costs a scan of
the records per partition but never holds more than a partition. ``fingerprint`` and ``duplicate`` are then
written into the parts that hold such records (the others keep null/False).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mia_bridge.analysis.base_tables import BaseTables
from mia_bridge.analysis.columnar import ArrowChunk, build_tables, bulk_memory_pool
from mia_bridge.analysis.dedup import deduplicate
from mia_bridge.analysis.engines.embedded import _address_space_limit, _default_memory_limit
from mia_bridge.analysis.intake import (
    BUILT_COLUMNS,
    FOLDER_ROW_COLUMNS,
    ITEM_ROW_COLUMNS,
    QUARANTINE_COLUMNS,
    Chunk,
    Intake,
    typed_records,
)
from mia_bridge.errors import MiaError, ReaderError, UnreadableInput
from mia_bridge.readers import auditdata_csv, raw_auditdata_json
from mia_bridge.readers.base import Irregular, Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput, file_kind
from mia_bridge.readers.registry import prepare, read_prepared

if TYPE_CHECKING:
    from mia_bridge.analysis.api import AnalysisOptions, InputReport

__all__ = ["DEDUP_PARTITION_ROWS", "IngestError", "ingest_files", "ingest_records"]

_BLOCK = 32 << 20  # bytes of JSON lines per parallel task
_RECORD_ROWS = 50_000  # records read one by one are written a part per this many
DEDUP_PARTITION_ROWS = 1_000_000  # records of shared Ids de-duplicated at once (≈0.5 kB each in memory)
_PARSE_ERRORS = (Irregular, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError)


class IngestError(MiaError):
    """The work folder could not be written (full disk, permissions): not the input's fault."""


def _schema(frame: pd.DataFrame) -> pa.Schema:
    return pa.Schema.from_pandas(frame, preserve_index=False)


def _empty_records() -> pd.DataFrame:
    frame = typed_records(pd.DataFrame(columns=BUILT_COLUMNS))
    frame["rec"] = pd.Series(dtype="int64")
    frame["fingerprint"] = pd.Series(dtype="UInt64")
    frame["duplicate"] = pd.Series(dtype="bool")
    return frame


def _empty_rows(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
    frame["rec"] = frame["rec"].astype("int64")
    if "size_in_bytes" in frame:
        frame["size_in_bytes"] = frame["size_in_bytes"].astype("Int64")
    return frame


RECORDS_SCHEMA = _schema(_empty_records())
FOLDERS_SCHEMA = _schema(_empty_rows(FOLDER_ROW_COLUMNS))
ITEMS_SCHEMA = _schema(_empty_rows(ITEM_ROW_COLUMNS))
_DATASETS = (("records", RECORDS_SCHEMA), ("folders", FOLDERS_SCHEMA), ("items", ITEMS_SCHEMA))


def _part_name(seq: int) -> str:
    return f"part-{seq:06d}.parquet"


# The base tables are a private work format, written once and read a few times by the analysis's SQL.
# Dictionary pages only for columns of few distinct values: on ids, addresses, sessions and user names they
# cost most of the write (a hash per value) and save nothing under lz4 (measured on 1,000,000 realistic
# records: 4.4 → 3.1 CPU-s for the parts, 221 → 218 MiB). Statistics likewise only for the numbers and times
# (min/max of every string cost ≈0.9 CPU-s per million records; parts are one row group each, nothing skips).
_DICTIONARY = frozenset({"operation", "record_type_name", "workload", "source_format", "source_file", "logon_type",
                         "mail_access_type", "result_status", "flags", "app_id", "client_app_id", "record_type",
                         "is_throttled", "message_ids_lost", "duplicate", "folder_path"})
_COMPRESSION = "lz4"  # measured on 50,000 records: half snappy's CPU at about its size


def _write_table(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression=_COMPRESSION,
                   use_dictionary=[n for n in table.column_names if n in _DICTIONARY],
                   write_statistics=[f.name for f in table.schema if not pa.types.is_large_string(f.type)])


def _write(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    _write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def write_chunk(workdir: Path, seq: int, chunk: Chunk | ArrowChunk, rec_base: int) -> int:
    """Write one chunk's three parts (``rec`` shifted by ``rec_base``); returns its record count."""
    if isinstance(chunk, ArrowChunk):
        return _write_arrow(workdir, seq, chunk, rec_base)
    n = len(chunk.records)
    records = chunk.records.reset_index(drop=True)
    records["rec"] = np.arange(rec_base, rec_base + n, dtype=np.int64)
    records["fingerprint"] = pd.array([None] * n, dtype="UInt64")
    records["duplicate"] = np.zeros(n, dtype=bool)
    name = _part_name(seq)
    _write(records, RECORDS_SCHEMA, workdir / "records" / name)
    for folder, rows, schema in (("folders", chunk.folders, FOLDERS_SCHEMA), ("items", chunk.items, ITEMS_SCHEMA)):
        if len(rows):
            rows = rows.reset_index(drop=True)
            rows["rec"] = rows["rec"].to_numpy(dtype=np.int64) + rec_base
            _write(rows, schema, workdir / folder / name)
    return n


def _write_arrow(workdir: Path, seq: int, chunk: ArrowChunk, rec_base: int) -> int:
    """``write_chunk`` for arrow tables: the same parts, with no pandas between the parse and the file."""
    n = chunk.records.num_rows
    name = _part_name(seq)
    extra = {"rec": pa.array(np.arange(rec_base, rec_base + n, dtype=np.int64)),
             "fingerprint": pa.nulls(n, pa.uint64()), "duplicate": pa.array(np.zeros(n, dtype=bool))}
    _write_table(_typed(chunk.records, RECORDS_SCHEMA, extra), workdir / "records" / name)
    for folder, rows, schema in (("folders", chunk.folders, FOLDERS_SCHEMA), ("items", chunk.items, ITEMS_SCHEMA)):
        if rows.num_rows:
            shifted = pc.add(rows.column("rec"), pa.scalar(rec_base, pa.int64()))
            _write_table(_typed(rows, schema, {"rec": shifted}), workdir / folder / name)
    return n


def _typed(table: pa.Table, schema: pa.Schema, replaced: dict[str, Any]) -> pa.Table:
    """``table``'s columns (or ``replaced``'s) cast to ``schema``, whose metadata the parts carry."""
    return pa.Table.from_arrays(
        [(replaced[f.name] if f.name in replaced else table.column(f.name)).cast(f.type) for f in schema],
        schema=schema)


# --- the pool's tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """One block: where its records go (``seq``, ``rec_base``, ``first_line``) and where its text is."""

    workdir: Path
    seq: int
    rec_base: int
    first_line: int
    source: str
    fmt: str
    lines: int = 0  # physical lines of a JSON-lines block (must equal its records)
    path: str | None = None  # a plain file's byte range ...
    start: int = 0
    end: int = 0
    data: bytes | None = None  # ... or the block's bytes (gzip)
    batch: pa.RecordBatch | None = None  # ... or a CSV block's rows


def _parse(task: _Task) -> ArrowChunk:
    if task.batch is not None:
        table = auditdata_csv.records_of_batch(task.batch)
    elif task.data is not None:
        table = raw_auditdata_json.parse_lines(task.data, task.lines)
    else:
        assert task.path is not None
        with (open(task.path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
              memoryview(mapped)[task.start:task.end] as block):
            table = raw_auditdata_json.parse_lines(block, task.lines)
    return build_tables(table, task.source, first_line=task.first_line, fmt=task.fmt)


# (record count or why the block is irregular, process id, its peak RSS, its CPU seconds so far)
_Result = tuple[int | str, int, int, float]


def _run(task: _Task) -> _Result:
    """Parse and write one block. Errors writing the work folder raise ``IngestError``."""
    try:
        chunk = _parse(task)
    except _PARSE_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}", os.getpid(), _peak_rss(), _cpu_seconds()
    workdir, seq, rec_base = task.workdir, task.seq, task.rec_base
    written = _guard_write(lambda: write_chunk(workdir, seq, chunk, rec_base), workdir)
    return written, os.getpid(), _peak_rss(), _cpu_seconds()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM) in bytes; 0 where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _worker_init() -> None:
    bulk_memory_pool()


class _Pool:
    """Runs tasks in worker processes (``workers`` > 1) or here, with at most ``2 × workers`` in flight."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self.peaks: dict[int, int] = {}  # worker process id → its peak RSS
        self.cpu: dict[int, float] = {}  # worker process id → its CPU seconds

    @property
    def worker_peaks(self) -> list[int]:
        return sorted(self.peaks.values())

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = "forkserver" if "forkserver" in _start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context(method), initializer=_worker_init)
        return self._pool

    def map_ordered(self, tasks: Iterable[_Task], parallel: bool) -> Generator[int | str, None, None]:
        """Each task's result in task order; the tasks are drawn lazily (their input is read as they go). When
        the caller stops early, the tasks in flight are finished or cancelled before this returns, so none
        writes a part afterwards."""
        if not parallel or self.workers < 2:
            for task in tasks:
                yield _run(task)[0]
            return
        pool = self._executor()
        pending: list[Future[_Result]] = []
        try:
            for task in tasks:
                pending.append(pool.submit(_run, task))
                if len(pending) >= 2 * self.workers:
                    yield self._result(pending.pop(0))
            while pending:
                yield self._result(pending.pop(0))
        finally:
            for future in pending:
                future.cancel()
            wait(pending)

    def _result(self, future: Future[_Result]) -> int | str:
        result, pid, peak, cpu = future.result()
        self.peaks[pid] = max(peak, self.peaks.get(pid, 0))
        self.cpu[pid] = max(cpu, self.cpu.get(pid, 0.0))
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


# --- the work folder --------------------------------------------------------------------------------------


@dataclass
class _Sink:
    workdir: Path
    seq: int = 0
    rec: int = 0  # records parsed (the next rec)
    read: int = 0
    quarantined: int = 0
    parts: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq → [first rec, end rec)
    _quarantine: Any = None

    def open(self) -> None:
        for name, _ in _DATASETS:
            target = self.workdir / name
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
        self._quarantine = (self.workdir / "quarantine.jsonl").open("w", encoding="utf-8", newline="\n")

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def placed(self, seq: int, rec_base: int, records: int) -> None:
        self.parts[seq] = (rec_base, rec_base + records)

    def drop(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            self.parts.pop(seq, None)
            for name, _ in _DATASETS:
                (self.workdir / name / _part_name(seq)).unlink(missing_ok=True)

    def quarantine(self, item: Quarantined) -> None:
        self.quarantined += 1
        self._quarantine.write(json.dumps(dict(zip(QUARANTINE_COLUMNS, (item.source, item.line, item.reason,
                                                                        item.raw), strict=True))) + "\n")

    def close(self) -> None:
        if self._quarantine is not None:
            self._quarantine.close()
        for name, schema in _DATASETS:  # an empty dataset still has its schema
            folder = self.workdir / name
            if not any(folder.glob("*.parquet")):
                pq.write_table(schema.empty_table(), folder / _part_name(0))


class _Batcher:
    """Records read one by one: normalised through an ``Intake`` and written a part per ``_RECORD_ROWS``."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.intake = Intake()

    def add_all(self, items: Iterable[RawRecord | Quarantined]) -> None:
        for item in items:
            if self.intake.add(item) is not None:
                self.sink.quarantine(self.intake.quarantined.pop())
            self.sink.read += 1
            if len(self.intake.rows) >= _RECORD_ROWS:
                self.flush()

    def flush(self) -> None:
        if not self.intake.rows:
            return
        chunk = Chunk(*self.intake.tables())
        seq = self.sink.next_seq()
        written = _guard_write(lambda: write_chunk(self.sink.workdir, seq, chunk, self.sink.rec), self.sink.workdir)
        self.sink.placed(seq, self.sink.rec, written)
        self.sink.rec += written
        self.intake = Intake()


def _guard_write(action: Callable[[], int], workdir: Path) -> int:
    try:
        return action()
    except OSError as exc:
        raise IngestError(f"cannot write the base tables under {workdir}: {exc}",
                          hint="give a work folder on a disk with room (about the size of the inputs)") from None


# --- fast paths -------------------------------------------------------------------------------------------


@dataclass
class _InputRun:
    sink: _Sink
    pool: _Pool
    src: DecodedInput
    fmt: str
    rec_base: int
    seqs: list[int] = field(default_factory=list)
    rows: int = 0

    def task(self, lines: int, first_line: int, **where: Any) -> _Task:
        seq = self.sink.next_seq()
        self.seqs.append(seq)
        task = _Task(self.sink.workdir, seq, self.rec_base + self.rows, first_line, str(self.src.path), self.fmt,
                     lines=lines, **where)
        return task

    def run(self, tasks: Iterator[_Task], parallel: bool) -> bool:
        """Run the tasks (each counted in ``rows`` as it is made); False when a block was irregular."""
        placed: list[tuple[int, int, int]] = []
        made: list[tuple[int, int]] = []  # (seq, rec_base) of each task: not the task, which may hold its text

        def counted() -> Iterator[_Task]:
            for task in tasks:
                made.append((task.seq, task.rec_base))
                yield task

        results = self.pool.map_ordered(counted(), parallel)
        try:
            for result in results:
                seq, rec_base = made[len(placed)]
                if isinstance(result, str):
                    return False
                placed.append((seq, rec_base, result))
        finally:
            results.close()  # waits for the blocks in flight
        for seq, base, count in placed:
            self.sink.placed(seq, base, count)
        return True


def _columnar_jsonl(run: _InputRun, block: int, parallel: bool) -> bool:
    src = run.src
    if not raw_auditdata_json.columnar_allowed(src):
        return False

    def tasks() -> Iterator[_Task]:
        if src.gzipped:
            for data, lines in raw_auditdata_json.stream_blocks(src, block):
                yield run.task(lines, run.rows + 1, data=data)
                run.rows += lines
        else:
            # Blocks no longer than the record size limit: a line inside a block is then within it.
            for start, end, lines in raw_auditdata_json.plain_blocks(str(src.path), src.max_record_bytes,
                                                                     min(block, src.max_record_bytes)):
                yield run.task(lines, run.rows + 1, path=str(src.path), start=start, end=end)
                run.rows += lines

    try:
        return run.run(tasks(), parallel) and run.rows > 0
    except (Irregular, OSError, EOFError):
        return False


def _columnar_csv(run: _InputRun, sniffed: Sniff, parallel: bool) -> bool:
    src = run.src
    if not auditdata_csv.columnar_allowed(src, sniffed):
        return False
    try:
        skip = auditdata_csv.header_lines(src)
        lines = raw_auditdata_json.count_lines(src)  # checked whole first: arrow would buffer any row

        def tasks() -> Iterator[_Task]:
            for batch in auditdata_csv.raw_batches(src, sniffed, skip):
                if batch.num_rows:
                    yield run.task(0, skip + run.rows + 1, batch=batch)
                    run.rows += batch.num_rows

        # Line numbers hold only when every row is one line: no cell spans lines, no blank line was skipped.
        return run.run(tasks(), parallel) and run.rows > 0 and lines == skip + run.rows
    except (*_PARSE_ERRORS, OSError, EOFError):
        return False


# --- the API ----------------------------------------------------------------------------------------------


def _columnar(run: _InputRun, sniffed: Sniff, block: int, parallel: bool) -> bool:
    if run.fmt == raw_auditdata_json.NAME:
        return _columnar_jsonl(run, block, parallel)
    return _columnar_csv(run, sniffed, parallel)


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _read_input(sink: _Sink, pool: _Pool, reader: Reader, src: DecodedInput, sniffed: Sniff, block: int,
                parallel_from: int) -> None:
    try:
        size = src.path.stat().st_size
    except OSError:
        size = 0
    parallel = size >= parallel_from
    run = _InputRun(sink, pool, src, reader.NAME, sink.rec)
    done = False
    if (reader.NAME == raw_auditdata_json.NAME and sniffed.json_kind == "lines") or reader.NAME in auditdata_csv.NAMES:
        bulk_memory_pool()
        try:
            done = _columnar(run, sniffed, block, parallel)
        except BrokenProcessPool:  # a worker died (killed, out of memory): this process parses the input
            pool.workers = 1
            sink.drop(run.seqs)
            run = _InputRun(sink, pool, src, reader.NAME, sink.rec)
            done = _columnar(run, sniffed, block, parallel=False)
    if done:
        sink.rec += run.rows
        sink.read += run.rows
        return
    sink.drop(run.seqs)  # irregular part-way: read again record by record
    batcher = _Batcher(sink)
    try:
        batcher.add_all(read_prepared(reader, src, sniffed))
    finally:
        batcher.flush()


def ingest_files(paths: Iterable[Path], options: AnalysisOptions, workdir: Path, *, workers: int | None = None,
                 block_bytes: int = _BLOCK, parallel_from: int = 2 * _BLOCK,
                 dedup_partition_rows: int = DEDUP_PARTITION_ROWS) -> BaseTables:
    """Read every input into the base tables under ``workdir`` (created; earlier tables there replaced).

    Inputs of at least ``parallel_from`` bytes are parsed by ``workers`` processes (default: one per core).
    Unreadable files are reported in ``inputs``; raises ``ReaderError`` when not a single input could be read,
    ``IngestError`` when the work folder cannot be written.
    """
    from mia_bridge.analysis.api import InputReport

    paths = [Path(p) for p in paths]
    for path in paths:  # refused before anything is read: opening a FIFO or a device could block forever
        kind = file_kind(path)
        if kind is not None and not kind.startswith(("no such", "cannot")):
            raise ReaderError(f"{path}: is {kind}, not a regular file; nothing was read",
                              hint="give exported files (copy a pipe or a device to a file first)")
    sink = _open_sink(workdir)
    pool = _Pool(_workers(workers))
    reports: list[InputReport] = []
    try:
        for path in paths:
            try:
                reader, src, sniffed = prepare(path, options.format, options.max_record_bytes)
            except UnreadableInput as exc:
                reports.append(InputReport(str(path), None, error=exc.message))
                continue
            report = InputReport(str(path), reader.NAME)
            before_read, before_q = sink.read, sink.quarantined
            try:
                _read_input(sink, pool, reader, src, sniffed, block_bytes, parallel_from)
            except (OSError, EOFError, ValueError, UnicodeError, RecursionError, MemoryError,
                    pa.ArrowException) as exc:
                # The file's own problem: the records read before it stay, the other inputs are read.
                report.error = (f"{path}: reading stopped after {sink.read - before_read} record(s): "
                                f"{type(exc).__name__}: {exc}")
            report.records_read = sink.read - before_read
            report.records_quarantined = sink.quarantined - before_q
            reports.append(report)
    finally:
        pool.close()
        sink.close()
    if paths and all(r.error is not None and r.records_read == 0 for r in reports):
        problems = "; ".join(r.error or "" for r in reports)
        raise ReaderError(f"no input could be read: {problems}")
    conflicts = _deduplicate(sink, dedup_partition_rows)
    return _tables(sink, conflicts, reports, pool.worker_peaks, sum(pool.cpu.values()))


def ingest_records(records: Iterable[dict[str, Any] | str], source: str, options: AnalysisOptions, workdir: Path,
                   *, dedup_partition_rows: int = DEDUP_PARTITION_ROWS) -> BaseTables:
    """Raw AuditData records (dicts or JSON strings, the live path's) into the base tables under ``workdir``;
    ``source`` names them in messages. ``options`` is taken for symmetry with ``ingest_files`` (nothing in it
    applies to records already in hand)."""
    from mia_bridge.analysis.api import InputReport, _records_from

    sink = _open_sink(workdir)
    report = InputReport(source, "records")
    batcher = _Batcher(sink)
    try:
        batcher.add_all(_records_from(records, source))
        batcher.flush()
    finally:
        sink.close()
    report.records_read = sink.read
    report.records_quarantined = sink.quarantined
    conflicts = _deduplicate(sink, dedup_partition_rows)
    return _tables(sink, conflicts, [report], [], 0.0)


def _open_sink(workdir: Path) -> _Sink:
    sink = _Sink(Path(workdir))
    try:
        sink.open()
    except OSError as exc:
        raise IngestError(f"cannot create the base tables under {workdir}: {exc}") from None
    return sink


@dataclass(frozen=True)
class IngestedTables(BaseTables):
    """``BaseTables`` and what the ingest measured: the peak RSS of each worker process (bytes), their CPU time."""

    worker_peaks: list[int] = field(default_factory=list)
    worker_cpu_seconds: float = 0.0


def _tables(sink: _Sink, conflicts: list[dict[str, Any]], reports: list[Any], peaks: list[int],
            cpu: float) -> IngestedTables:
    w = sink.workdir
    return IngestedTables(records=w / "records", folders=w / "folders", items=w / "items",
                          quarantine=w / "quarantine.jsonl", read=sink.read, parsed=sink.rec,
                          quarantined=sink.quarantined, conflicts=conflicts, inputs=reports, worker_peaks=peaks,
                          worker_cpu_seconds=cpu)


# --- de-duplication ---------------------------------------------------------------------------------------


_ID_HASH = "hash(coalesce(record_id, ''))"
_DUCKDB_MEMORY = "512MB"  # DuckDB spills to the work folder past this
_DEDUP_COLUMNS = ("rec", "record_id", "raw_json", "source_file", "source_format", "source_line", "flags")


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _deduplicate(sink: _Sink, partition_rows: int) -> list[dict[str, Any]]:
    """Run ``dedup.deduplicate`` on the records whose Id is shared, a hash partition of Ids at a time, and write
    ``fingerprint``/``duplicate`` into their parts; returns the conflicts (sorted by Id, as today)."""
    import duckdb

    if sink.rec == 0:
        return []
    temp = sink.workdir / "dedup"
    if temp.exists():
        shutil.rmtree(temp)
    (temp / "marks").mkdir(parents=True)
    records = _sql_path(sink.workdir / "records" / "*.parquet")
    conflicts: list[dict[str, Any]] = []
    # Under an address-space limit (ulimit -v) the embedded engine's rule: a quarter of it, fewer malloc arenas,
    # one thread; 512 MB and two threads of DuckDB's fail to allocate (or hang) inside a 1 GB limit.
    limited = _address_space_limit() is not None
    con = duckdb.connect(config={"threads": 1 if limited else 2,
                                 "memory_limit": _default_memory_limit() if limited else _DUCKDB_MEMORY,
                                 "temp_directory": str(temp / "spill"), "preserve_insertion_order": False})
    try:
        # Ids are grouped by their 64-bit hash (8 bytes a key, not the Id's text): a collision only brings two
        # Ids that occur once into a partition, where deduplicate() leaves them alone (it groups on the Id).
        con.execute(f"CREATE TEMP TABLE shared AS SELECT {_ID_HASH} AS h, count(*) AS n "
                    f"FROM read_parquet({records}) GROUP BY 1 HAVING count(*) > 1")
        total = int(con.sql("SELECT coalesce(sum(n), 0) FROM shared").fetchall()[0][0])
        if total == 0:
            return []
        parts = max(1, math.ceil(total / partition_rows))
        columns = ", ".join(f"r.{c}" for c in _DEDUP_COLUMNS)
        mapper = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype()}
        for part in range(parts):
            table = con.sql(
                f"SELECT {columns} FROM read_parquet({records}) r WHERE {_ID_HASH} IN "
                f"(SELECT h FROM shared WHERE h % {parts} = {part}) ORDER BY r.rec").to_arrow_table()
            assert table is not None
            frame = table.to_pandas(types_mapper=mapper.get)
            del table
            recs = frame.pop("rec").to_numpy(dtype=np.int64)
            keep, found, fingerprint = deduplicate(frame)
            conflicts.extend(found)
            del frame
            compared = fingerprint.notna().to_numpy(dtype=bool)  # all but hash collisions
            marks = pa.table({"rec": recs[compared], "fingerprint": fingerprint[compared].to_numpy(dtype=np.uint64),
                              "duplicate": ~keep.to_numpy(dtype=bool)[compared]})
            pq.write_table(marks, temp / "marks" / _part_name(part))
        sorted_marks = temp / "marks.parquet"
        con.execute(f"COPY (SELECT * FROM read_parquet({_sql_path(temp / 'marks' / '*.parquet')}) ORDER BY rec) "
                    f"TO {_sql_path(sorted_marks)} (FORMAT parquet)")
    except OSError as exc:
        raise IngestError(f"cannot write the de-duplication's files under {temp}: {exc}") from None
    finally:
        con.close()
    _mark_parts(sink, sorted_marks)
    shutil.rmtree(temp, ignore_errors=True)
    conflicts.sort(key=lambda c: str(c["record_id"]))
    return conflicts


def _mark_parts(sink: _Sink, sorted_marks: Path) -> None:
    """Write the marks (sorted by rec) into the record parts that hold them, a part at a time."""
    batches = pq.ParquetFile(sorted_marks).iter_batches(batch_size=1 << 16)
    recs = np.empty(0, dtype=np.int64)
    prints = np.empty(0, dtype=np.uint64)
    dups = np.empty(0, dtype=bool)
    exhausted = False
    for seq, (lo, hi) in sorted(sink.parts.items(), key=lambda p: p[1][0]):
        while not exhausted and (len(recs) == 0 or recs[-1] < hi):
            batch = next(batches, None)
            if batch is None:
                exhausted = True
                break
            recs = np.concatenate([recs, batch.column("rec").to_numpy()])
            prints = np.concatenate([prints, batch.column("fingerprint").to_numpy()])
            dups = np.concatenate([dups, batch.column("duplicate").to_numpy(zero_copy_only=False)])
        taken = int(np.searchsorted(recs, hi))
        if taken:
            _mark_part(sink.workdir / "records" / _part_name(seq), lo, hi, recs[:taken], prints[:taken], dups[:taken])
            recs, prints, dups = recs[taken:], prints[taken:], dups[taken:]


def _mark_part(path: Path, lo: int, hi: int, recs: np.ndarray, prints: np.ndarray, dups: np.ndarray) -> None:
    table = pq.read_table(path)
    n = hi - lo
    where = recs - lo
    values = np.zeros(n, dtype=np.uint64)
    valid = np.zeros(n, dtype=bool)
    duplicate = np.zeros(n, dtype=bool)
    values[where], valid[where], duplicate[where] = prints, True, dups
    table = table.set_column(table.schema.get_field_index("fingerprint"), "fingerprint",
                             pa.array(values, mask=~valid, type=pa.uint64()))
    table = table.set_column(table.schema.get_field_index("duplicate"), "duplicate", pa.array(duplicate))
    fresh = path.with_suffix(".tmp")
    try:
        _write_table(table, fresh)
        os.replace(fresh, path)
    except OSError as exc:
        raise IngestError(f"cannot rewrite {path}: {exc}") from None


def read_table(dataset: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A base-table dataset (a Parquet file or a folder of parts, in name order) as one frame: for tests and
    small inputs only (it holds the whole dataset)."""
    files = sorted(dataset.glob("*.parquet")) if dataset.is_dir() else [dataset]
    tables = [pq.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables).to_pandas().reset_index(drop=True)


def read_quarantine(path: Path) -> pd.DataFrame:
    """The quarantine JSON lines as ``intake.QUARANTINE_COLUMNS`` (as ``Intake.quarantine_frame``)."""
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return pd.DataFrame([[r[c] for c in QUARANTINE_COLUMNS] for r in rows],
                        columns=QUARANTINE_COLUMNS).astype({"line": "Int64"})
