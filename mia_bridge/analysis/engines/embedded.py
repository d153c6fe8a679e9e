"""The embedded engine: DuckDB runs the analysis SQL (``analysis/sql``) over the base tables, out of core.

DuckDB works within ``memory_limit`` and spills to ``temp_directory`` (under the work folder) past it, so
memory does not grow with the input. No output table is ever whole in memory: each is pulled as Arrow record
batches and written as they come (to the output writer, or to the work folder when there is none yet). That
includes contexts and leads, which grow with the number of access contexts (millions on a tenant-wide pull).
Only the message-id lookup (one row per id the user listed) and the ten top leads of summary.json are
fetched whole.

How each statement is held is this engine's choice (the SQL does not say): ``events`` and the small tables
are materialised (every later statement reads them), ``unique_records`` and ``bind_items`` stay views over
the base tables (read twice or three times; materialised they would hold millions of rows).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from mia_bridge.analysis import sql
from mia_bridge.analysis.base_tables import BaseTables
from mia_bridge.analysis.schema import ARROW_SCHEMAS
from mia_bridge.errors import ExportError

NAME = "embedded"
BATCH_ROWS = 131_072  # rows per Arrow batch pulled from DuckDB (one Parquet row group)
DEFAULT_MEMORY_LIMIT = "1.5GB"
MEMORY_LIMIT_ENV = "MIA_DUCKDB_MEMORY_LIMIT"  # e.g. "4GB": more memory, less spilling

# output name -> statement name, for the tables streamed (every output but the lookup)
STREAMED = {"records": "unique_records", "events": "events", "items": "bind_items", "synced_folders": "synced_folders",
            "throttled_windows": "throttled_windows", "contexts": "contexts", "leads": "leads"}
OUTPUT_OF = {statement: output for output, statement in STREAMED.items()}
TOP_LEADS = 10  # summary.json's top_leads
MATERIALISED = ("events", "synced_folders", "throttled_windows", "contexts")
# Output in the base records' order (its ORDER BY is ``rec``): pulled in the scan's order instead of sorted,
# when the records dataset is provably in ``rec`` order (``_in_rec_order``). The sort held every record with
# its raw JSON: past memory at 10M records it spilled them all (51 s for this phase at 10M against 18 s at 5M).
SCAN_ORDERED = ("unique_records",)
# Output statement -> (joined table, its unique key): the statement's columns taken from that table are not
# carried through its sort but gathered afterwards, batch by batch, from the table read in key order
# (``late_plan``, ``_gather``). bind_items repeats its event's eight columns on each of its ~6 items: sorted with them,
# 5.9M item rows at 1M records spilled past the memory limit (14.0–14.7 s against 3.5–3.8 s; BENCHMARKS.md).
LATE_COLUMNS = {"bind_items": ("events", "seq")}


class Sink(Protocol):
    """Where the engine hands its tables (``outputs.OutputWriter``)."""

    def stream(self, name: str, batches: Iterator[pa.RecordBatch], schema: pa.Schema, *, csv: bool) -> Path: ...

    def table(self, name: str, frame: pd.DataFrame | pa.Table) -> None: ...


@dataclass(frozen=True)
class Parameters:
    """What the analysis is asked, beyond the data (``sql`` package docstring: the small relations)."""

    start: datetime | None = None
    end: datetime | None = None
    option_values: list[tuple[str, str]] = field(default_factory=list)  # (list, value)
    lookup_requests: list[tuple[int, str, str | None, str]] | None = None  # entry_no, as given, mailbox, id


@dataclass
class EngineResult:
    files: dict[str, Path]  # every table of STREAMED as a Parquet file (the output's, or the work folder's)
    tables: dict[str, pa.Table]  # [message_lookup]: fetched whole (one row per listed id)
    top_leads: pa.Table  # the first TOP_LEADS rows of leads
    counts: dict[str, Any]  # summary_counts' row
    lists: dict[str, list[tuple[str, int]]]  # summary_lists: list -> [(value, n)] sorted by value


def _address_space_limit() -> int | None:
    """The process's address-space limit (``ulimit -v``), if one is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else int(soft)


def _default_memory_limit() -> str:
    """1.5 GB; under an address-space limit a quarter of it, and glibc's malloc limited to two arenas (each
    thread's arena reserves 64 MB of address space: DuckDB's threads alone would take most of 1 GB)."""
    limit = _address_space_limit()
    if limit is None:
        return DEFAULT_MEMORY_LIMIT
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
    return f"{max(limit // 4, 64 << 20) >> 20}MB"


def _utc(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _dataset(path: Path) -> list[str]:
    """The Parquet files of a dataset path (a file, or a folder of files in name order)."""
    if path.is_dir():
        return [str(p) for p in sorted(path.glob("*.parquet"))]
    return [str(path)]


def _files(path: Path) -> str:
    """The dataset's files as a DuckDB list literal (a view's definition cannot take parameters)."""
    return "[" + ", ".join("'" + name.replace("'", "''") + "'" for name in _dataset(path)) + "]"


def _in_rec_order(path: Path) -> bool:
    """Whether the dataset's rows are in ascending ``rec`` order file after file (in name order), as far as the
    Parquet statistics can tell: each row group's ``rec`` range starts after the previous one's ends. What
    they cannot tell (the order inside a row group) ``_scan_ordered`` checks as the rows come."""
    last = -1
    for name in _dataset(path):
        metadata = pq.ParquetFile(name).metadata
        if "rec" not in metadata.schema.names:
            return False
        column = metadata.schema.names.index("rec")
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if metadata.row_group(group).num_rows == 0:
                continue
            if stats is None or not stats.has_min_max or stats.null_count or stats.min <= last:
                return False
            last = stats.max
    return True


def _scan_ordered(batches: Iterator[pa.RecordBatch], rec: int) -> Iterator[pa.RecordBatch]:
    """``batches`` as they come, each checked to continue the ascending ``rec`` order (column ``rec``): a
    record out of order stops the run (never a silently reordered records.parquet)."""
    last = -1
    for batch in batches:
        column = batch.column(rec)
        if len(column):
            values = column.to_numpy(zero_copy_only=False)
            if values[0] <= last or bool((values[1:] <= values[:-1]).any()):
                raise ExportError("records.parquet: the engine's scan returned the records out of input order "
                                  "(an internal fault; please report it)")
            last = int(values[-1])
        yield batch


@dataclass(frozen=True)
class LatePlan:
    """How a statement is pulled with a joined table's columns gathered after its sort (``LATE_COLUMNS``)."""

    narrow: str  # the statement with only its other columns and the key, in its own order
    table: str  # what the key reads the gathered columns from, in key order
    key: str
    gathered: tuple[str, ...]


def late_plan(statement: str) -> LatePlan | None:
    """The statement's own SQL with the joined table's columns (but its key) left out of the projection, so
    the sort carries fewer bytes; None when the statement is not a plain join whose projection names that
    table's columns directly (then it is pulled as written)."""
    if statement not in LATE_COLUMNS:
        return None
    table, key = LATE_COLUMNS[statement]
    tree = sqlglot.parse_one(sql.body(statement), read="duckdb")
    aliases = {t.alias_or_name for t in tree.find_all(exp.Table) if t.name == table}
    if not isinstance(tree, exp.Select) or len(aliases) != 1 or not all(
        isinstance(p, exp.Column) for p in tree.expressions
    ):
        return None
    alias = aliases.pop()
    late = [p.name for p in tree.expressions if p.table == alias and p.name != key]
    kept = [p for p in tree.expressions if p.table != alias or p.name == key]
    if key not in {p.name for p in kept} or not late:
        return None
    narrow = tree.copy()
    narrow.set("expressions", [p.copy() for p in kept])
    gathered = ", ".join(f'"{c}"' for c in (key, *late))
    return LatePlan(f"{narrow.sql(dialect='duckdb')} ORDER BY {sql.order_by(statement)}",
                    f'SELECT {gathered} FROM {table} ORDER BY "{key}"', key, tuple(late))


def _gather(narrow: Iterator[pa.RecordBatch], table: Iterator[pa.RecordBatch], plan: LatePlan,
            names: list[str]) -> Iterator[pa.RecordBatch]:
    """Each batch of ``narrow`` (ascending ``key``) with the gathered columns of its rows' keys, from ``table``
    (ascending, unique ``key``): a merge that holds one batch of each side, plus rows sharing a key."""
    held: pa.Table | None = None
    for batch in narrow:
        if not len(batch):
            continue
        keys = batch.column(batch.schema.get_field_index(plan.key)).to_numpy()
        while held is None or not len(held) or held.column(0)[-1].as_py() < keys[-1]:
            more = next(table, None)
            if more is None:
                break
            piece = pa.Table.from_batches([more])
            held = piece if held is None else pa.concat_tables([held, piece])
        held_keys = held.column(0).to_numpy() if held is not None else np.empty(0, dtype=np.int64)
        at = np.searchsorted(held_keys, keys)
        if held is None or at[-1] >= len(held_keys) or not np.array_equal(held_keys[at], keys):
            raise ExportError(f"{plan.table}: a row's {plan.key} has no match (an internal fault; please report it)")
        rows = held.take(pa.array(at))
        columns = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
        columns.update({name: rows.column(name).combine_chunks() for name in plan.gathered if name in names})
        yield pa.RecordBatch.from_arrays([columns[n] for n in names], names=names)
        held = held.slice(int(np.searchsorted(held_keys, keys[-1])))


def _head(batches: Iterator[pa.RecordBatch], rows: int, kept: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches`` as they come, their first ``rows`` rows also put in ``kept``."""
    for batch in batches:
        if rows > 0:
            kept.append(batch.slice(0, rows))
            rows -= len(kept[-1])
        yield batch


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([batch.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema)


class EmbeddedEngine:
    def __init__(self, work: Path, memory_limit: str | None = None, threads: int | None = None) -> None:
        self.work = work
        self.memory_limit = memory_limit or os.environ.get(MEMORY_LIMIT_ENV) or _default_memory_limit()
        self.threads = threads or os.cpu_count() or 1
        self.timings: dict[str, float] = {}  # seconds per statement (with its writing), for benchmarks
        self._records_in_order = False  # the base records dataset is in rec order (_in_rec_order)
        self._top_leads: list[pa.RecordBatch] = []  # the first TOP_LEADS rows of leads, kept as it streams

    def _connect(self) -> duckdb.DuckDBPyConnection:
        spill = self.work / "spill"
        spill.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(":memory:", config={
            "memory_limit": self.memory_limit, "temp_directory": str(spill), "threads": self.threads,
            "preserve_insertion_order": True,
        })
        return con

    def _base_views(self, con: duckdb.DuckDBPyConnection, base: BaseTables) -> None:
        con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet({_files(base.records)})")
        for name, path in (("folders", base.folders), ("items", base.items)):
            files = _dataset(path)
            index = pa.table({"filename": files, "file_index": list(range(len(files)))})
            self._relation(con, f"_{name}_files", index)
            # pos: the row's position in the dataset's order (file in name order, then row), as one BIGINT
            con.execute(
                f"CREATE VIEW {name} AS SELECT d.* EXCLUDE (filename, file_row_number), "
                f"f.file_index * CAST(1099511627776 AS BIGINT) + d.file_row_number AS pos "
                f"FROM read_parquet({_files(path)}, filename = true, file_row_number = true) AS d "
                f"JOIN _{name}_files AS f ON f.filename = d.filename")

    @staticmethod
    def _relation(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
        con.register(f"_{name}_arrow", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}_arrow")
        con.unregister(f"_{name}_arrow")

    def _parameters(self, con: duckdb.DuckDBPyConnection, params: Parameters) -> None:
        stamp = pa.timestamp("ns", tz="UTC")
        self._relation(con, "period", pa.table({"start_time": pa.array([_utc(params.start)], stamp),
                                                "end_time": pa.array([_utc(params.end)], stamp)}))
        values = params.option_values
        self._relation(con, "option_values", pa.table({"list": pa.array([v[0] for v in values], pa.string()),
                                                       "value": pa.array([v[1] for v in values], pa.string())}))
        requests = params.lookup_requests or []
        self._relation(con, "lookup_requests", pa.table({
            "entry_no": pa.array([r[0] for r in requests], pa.int64()),
            "requested_as": pa.array([r[1] for r in requests], pa.string()),
            "mailbox": pa.array([r[2] for r in requests], pa.string()),
            "internet_message_id": pa.array([r[3] for r in requests], pa.string()),
        }))

    @staticmethod
    def _output_query(statement: str, output: str, *, ordered: bool = True, extra: tuple[str, ...] = ()) -> str:
        columns = ", ".join(f'"{c}"' for c in [*ARROW_SCHEMAS[output].names, *extra])
        order = sql.order_by(statement) if ordered else ""
        return f"SELECT {columns} FROM {statement}" + (f" ORDER BY {order}" if order else "")

    def _batches(self, con: duckdb.DuckDBPyConnection, query: str, schema: pa.Schema, *,
                 check_rec: bool = False) -> Iterator[pa.RecordBatch]:
        """The query's rows as batches of ``schema``; with ``check_rec``, the query has a last column ``rec``
        (dropped) that must ascend (``_scan_ordered``)."""
        batches: Iterator[pa.RecordBatch] = iter(con.sql(query).to_arrow_reader(BATCH_ROWS))
        if check_rec:
            batches = _scan_ordered(batches, len(schema))
        for batch in batches:
            yield _cast(batch, schema)

    def _streamed(self, con: duckdb.DuckDBPyConnection, output: str, sink: Sink | None) -> Path:
        statement, schema = STREAMED[output], ARROW_SCHEMAS[output]
        # Pulled here, on this connection: the sink writes each batch on its own threads as it comes.
        if statement in SCAN_ORDERED and self._records_in_order:
            # DuckDB keeps a scan's order (preserve_insertion_order); checked batch by batch all the same
            query = self._output_query(statement, output, ordered=False, extra=("rec",))
            batches = self._batches(con, query, schema, check_rec=True)
        elif (plan := late_plan(statement)) is not None:
            narrow = iter(con.sql(plan.narrow).to_arrow_reader(BATCH_ROWS))
            table = iter(con.cursor().sql(plan.table).to_arrow_reader(BATCH_ROWS))
            batches = (_cast(b, schema) for b in _gather(narrow, table, plan, schema.names))
        else:
            batches = self._batches(con, self._output_query(statement, output), schema)
        if output == "leads":  # summary.json's top leads: the stream's first rows, not the query run again
            batches = _head(batches, TOP_LEADS, self._top_leads)
        if sink is not None:
            return sink.stream(output, batches, schema, csv=output != "records")
        path = self.work / "tables" / f"{output}.parquet"
        path.parent.mkdir(exist_ok=True)
        with pq.ParquetWriter(path, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return path

    def _whole(self, con: duckdb.DuckDBPyConnection, output: str) -> pa.Table:
        return con.sql(self._output_query(output, output)).to_arrow_table().cast(ARROW_SCHEMAS[output])

    def run(self, base: BaseTables, params: Parameters, sink: Sink | None = None) -> EngineResult:
        con = self._connect()
        self._top_leads = []  # this run's (an engine may run more than once)
        try:
            self._base_views(con, base)
            self._records_in_order = _in_rec_order(base.records)
            self._parameters(con, params)
            files: dict[str, Path] = {}
            tables: dict[str, pa.Table] = {}
            clock = time.perf_counter()
            for name in sql.ORDER:
                if name in ("summary_counts", "summary_lists"):
                    continue
                if name == "message_lookup" and params.lookup_requests is None:
                    continue
                kind = "TABLE" if name in MATERIALISED else "VIEW"
                con.execute(f"CREATE {kind} {name} AS {sql.body(name)}")
                output = OUTPUT_OF.get(name, name)
                if output in STREAMED:
                    files[output] = self._streamed(con, output, sink)
                else:
                    tables[name] = self._whole(con, name)
                    if sink is not None:
                        sink.table(name, tables[name])
                self.timings[name] = time.perf_counter() - clock
                clock = time.perf_counter()
            top_leads = pa.Table.from_batches(self._top_leads, schema=ARROW_SCHEMAS["leads"])
            row = con.sql(sql.statement("summary_counts")).to_arrow_table().to_pylist()[0]
            lists: dict[str, list[tuple[str, int]]] = {}
            for entry in con.sql(sql.statement("summary_lists")).to_arrow_table().to_pylist():
                lists.setdefault(entry["list"], []).append((entry["value"], int(entry["n"])))
            self.timings["summary"] = time.perf_counter() - clock
            return EngineResult(files, tables, top_leads, row, lists)
        finally:
            con.close()


def run_statements(relations: dict[str, pa.Table], names: list[str]) -> dict[str, pa.Table]:
    """Run the statements ``names`` (in that order) over ``relations`` given whole, in memory; each result with
    all its columns, in its output order. For small inputs and the equivalence tests."""
    con = duckdb.connect(":memory:")
    try:
        for name, table in relations.items():
            EmbeddedEngine._relation(con, name, table)
        results = {}
        for name in names:
            con.execute(f"CREATE TABLE {name} AS {sql.body(name)}")
            order = sql.order_by(name)
            results[name] = con.sql(f"SELECT * FROM {name}" + (f" ORDER BY {order}" if order else "")).to_arrow_table()
        return results
    finally:
        con.close()
