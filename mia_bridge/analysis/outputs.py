"""Writing the output contract: summary.json, every table as CSV (UTF-8) and Parquet, records.parquet,
quarantine.jsonl (one line per unreadable record: file, line, reason, raw text)."""

from __future__ import annotations

import json
import queue
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mia_bridge.analysis.schema import ARROW_SCHEMAS
from mia_bridge.csv_safety import neutralise_table
from mia_bridge.errors import ExportError
from mia_bridge.safe_files import make_dir, open_private, open_private_direct, write_text

if TYPE_CHECKING:
    from mia_bridge.analysis.api import AnalysisResult
    from mia_bridge.analysis.base_tables import BaseTables

ROW_GROUP = 131_072  # Parquet rows per group: the writer holds a whole group's encoded columns
# every table written as CSV and Parquet (enrich lists the analysis files by it)
TABLES = ("events", "items", "synced_folders", "throttled_windows", "contexts", "leads", "message_lookup")


def _time_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """UTC times as ISO 8601 text, ``2024-05-01T10:00:00Z``; with the fraction of a second only when some value
    of the column has one (then every value shows as many digits, e.g. ``10:00:00.500Z``).

    Formatted zone-less and suffixed: pyarrow formats a zoned timestamp with a time-zone lookup per value,
    ten times slower.
    """
    naive = column.cast(pa.timestamp(column.type.unit))
    for unit in ("s", "ms", "us"):
        coarse = naive.cast(pa.timestamp(unit), safe=False)
        if pc.all(pc.equal(coarse.cast(naive.type), naive)).as_py() is not False:
            naive = coarse
            break
    if isinstance(naive, pa.ChunkedArray):
        return pa.chunked_array([_iso(chunk) for chunk in naive.chunks], pa.string())
    return _iso(naive)


def _iso(naive: pa.Array) -> pa.Array:
    """Zone-less times as ``2024-05-01T10:00:00Z`` text, each distinct time formatted once (an event's time
    repeats on each of its items: a hash per value is cheaper than three string passes per value)."""
    encoded = pc.dictionary_encode(naive)  # nulls stay null (a null index)
    repeated = 2 * len(encoded.dictionary) <= len(naive)
    text = pc.replace_substring((encoded.dictionary if repeated else naive).cast(pa.string()), " ", "T",
                                max_replacements=1)
    text = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
    return text.take(encoded.indices) if repeated else text


# Columns whose values are nearly all distinct (ids, the record's text and hash, its line): pyarrow would build
# a dictionary for each and throw it away, and their min/max statistics select nothing. They are written plain,
# without statistics; every other column as before. The content is the same (the encoding differs).
_DISTINCT_COLUMNS = frozenset({"record_id", "internet_message_id", "internet_message_id_raw", "content_hash",
                               "raw_json", "source_line"})


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """``pq.ParquetWriter`` options for ``schema``: dictionary and statistics only where they pay. Dictionary
    pages only for text: on times, sizes and counts they were slower and larger than plain pages (at 1,000,000
    realistic records: items' size_in_bytes 0.25 s / 20.7 MB against 0.14 s / 15.5 MB)."""
    keep = [name for name in schema.names if name not in _DISTINCT_COLUMNS]
    text = [f.name for f in schema
            if f.name in keep and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
    return {"use_dictionary": text, "write_statistics": keep}


def _csv_ready(table: pa.Table) -> pa.Table:
    """The table with its UTC timestamps as ISO 8601 text (``_time_text``) and every text cell that a spreadsheet
    would take for a formula neutralised (``csv_safety``, vectorised)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz in ("UTC", "+00:00"):
            table = table.set_column(index, field.name, _time_text(table.column(index)))
    return neutralise_table(table)


def _sink(path: Path) -> pa.NativeFile:
    """``path`` opened for pyarrow's writers: private, never through a symlink, past the page cache where the
    system allows (``safe_files.open_private_direct``: the tables are gigabytes, written once)."""
    return pa.PythonFile(open_private_direct(path), mode="w")


def _write_csv(table: pa.Table, path: Path) -> None:
    with _sink(path) as sink:  # UTF-8; pyarrow's writer is far faster than DataFrame.to_csv
        pa_csv.write_csv(_csv_ready(table), sink)


def _write_parquet(table: pa.Table, path: Path) -> None:
    with _sink(path) as sink:
        pq.write_table(table, sink, row_group_size=ROW_GROUP, **_parquet_options(table.schema))


class _OwnedWriter:
    """A pyarrow stream writer that closes the file it writes to (``_write_slices`` closes the writer)."""

    def __init__(self, path: Path, make: Callable[[pa.NativeFile], Any]) -> None:
        self._sink = _sink(path)
        self._writer = make(self._sink)

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()


_Slices = queue.Queue[pa.Table | None]  # slices of a streamed table; None: no more


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows, a row group at a time."""
    with pq.ParquetFile(path) as source:
        yield from source.iter_batches(batch_size=ROW_GROUP)


def _write_slices(slices: _Slices, open_writer: Callable[[pa.Schema], Any]) -> None:
    """Write the slices ``OutputWriter.stream`` hands on with the writer ``open_writer`` makes for their schema.
    After any failure it still drains the queue, so the builder never blocks on a full one (and the run
    never hangs); the failure is raised once the builder is done."""
    writer: Any = None
    failure: Exception | None = None
    try:
        while (table := slices.get()) is not None:
            if failure is not None:
                continue
            try:
                if writer is None:
                    writer = open_writer(table.schema)
                writer.write_table(table)
            except Exception as exc:  # kept and raised below, after draining
                failure = exc
    finally:
        if writer is not None:
            writer.close()
    if failure is not None:
        raise failure


class OutputWriter:
    """Writes the output contract under ``out_dir`` as its parts become ready, on background threads (every
    writer releases the GIL while it encodes and writes), so writing overlaps the rest of the analysis.

    Use as a context manager; ``finish(result)`` writes what was not handed over yet, waits for every writer
    and returns name → path. Frames handed over must not change afterwards.
    """

    def __init__(self, out_dir: Path, *, keep_base: bool = False) -> None:
        self.out_dir = out_dir
        self.keep_base = keep_base  # also keep the base tables as out_dir/base (saved_base)
        self.written: dict[str, Path] = {}
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._pending: list[Future[None]] = []

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _path(self, name: str) -> Path:
        if not self.written:
            self._make_dir()
        path = self.out_dir / name
        self.written[name] = path
        return path

    def _make_dir(self) -> None:
        try:
            make_dir(self.out_dir)
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> ExportError:
        return ExportError(f"{self.out_dir}: cannot write the analysis outputs: {exc.strerror or exc}")

    def table(self, name: str, frame: pd.DataFrame | pa.Table) -> None:
        """Start writing ``frame`` as ``name``.csv and ``name``.parquet."""
        if isinstance(frame, pa.Table):
            table = frame
        else:  # the table's own schema: types as every engine writes them, even when the frame is empty
            table = pa.Table.from_pandas(frame, schema=ARROW_SCHEMAS.get(name), preserve_index=False)
        csv_path, parquet_path = self._path(f"{name}.csv"), self._path(f"{name}.parquet")
        self._pending += [self._pool.submit(_write_csv, table, csv_path),
                          self._pool.submit(_write_parquet, table, parquet_path)]

    def stream(self, name: str, batches: Iterator[pa.RecordBatch], schema: pa.Schema, *, csv: bool = True) -> Path:
        """Write ``batches`` (of ``schema``) as ``name``.parquet (and ``name``.csv), each batch as it comes: the
        table is never whole in memory. The batches are pulled here, in the caller's thread; encoding and
        writing run on the writer's threads. Returns the Parquet file's path (complete once ``finish``
        returns)."""
        parquet_path = self._path(f"{name}.parquet")
        to_parquet: _Slices = queue.Queue(maxsize=2)
        queues = [to_parquet]
        self._pending.append(self._pool.submit(
            _write_slices, to_parquet,
            lambda schema: _OwnedWriter(parquet_path,
                                        lambda sink: pq.ParquetWriter(sink, schema, **_parquet_options(schema)))))
        to_csv: _Slices | None = None
        if csv:
            csv_path = self._path(f"{name}.csv")
            to_csv = queue.Queue(maxsize=2)
            queues.append(to_csv)
            csv_schema = _csv_ready(schema.empty_table()).schema
            self._pending.append(self._pool.submit(
                _write_slices, to_csv,
                lambda _: _OwnedWriter(csv_path, lambda sink: pa_csv.CSVWriter(sink, csv_schema))))
        try:
            empty = True
            for batch in batches:
                empty = False
                table = pa.Table.from_batches([batch], schema=schema)
                to_parquet.put(table)
                if to_csv is not None:
                    to_csv.put(_csv_ready(table))
            if empty:  # the files still get their header / schema
                to_parquet.put(schema.empty_table())
                if to_csv is not None:
                    to_csv.put(_csv_ready(schema.empty_table()))
        finally:
            for slices in queues:
                slices.put(None)
        return parquet_path

    def save_base(self, base: BaseTables) -> None:
        """Keep the run's base tables as ``base/`` (``saved_base.save``)."""
        from mia_bridge.analysis import saved_base

        if not self.written:
            self._make_dir()
        inputs = [entry if isinstance(entry, dict) else vars(entry) for entry in base.inputs]
        try:
            self.written[saved_base.FOLDER] = saved_base.save(base, inputs, self.out_dir)
        except OSError as exc:
            raise self._failed(exc) from None

    def finish(self, result: AnalysisResult) -> dict[str, Path]:
        """Write what was not handed over yet, wait for every writer; returns name → path."""
        try:
            for name in ("records", *TABLES):
                if f"{name}.parquet" in self.written:
                    continue
                if name in result.files:  # from the engine's Parquet file, a row group at a time
                    source = result.files[name]
                    if name == "records":
                        with open(source, "rb") as src, open_private(self._path("records.parquet"), "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        continue
                    self.stream(name, _parquet_batches(source), pq.read_schema(source))
                elif (frame := result.table(name)) is not None:  # fetched whole (the lookup)
                    self.table(name, frame)
            for future in self._pending:
                future.result()  # re-raises a writer's OSError here
            quarantine_path = self._path("quarantine.jsonl")
            with open_private(quarantine_path, "w") as handle:
                for row in result.quarantine.to_dict("records"):
                    line = None if pd.isna(row["line"]) else int(row["line"])
                    entry = {"file": row["file"], "line": line, "reason": row["reason"], "raw": row["raw"]}
                    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            summary_path = self._path("summary.json")
            write_text(summary_path, json.dumps(result.summary, indent=2, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:
            raise self._failed(exc) from None
        return dict(self.written)


def write_outputs(result: AnalysisResult, out_dir: Path) -> dict[str, Path]:
    """Write every output of ``result`` under ``out_dir`` (created); returns name → path."""
    with OutputWriter(out_dir) as writer:
        return writer.finish(result)
