"""The Spark engine's reading, run on the executors: the project's own readers and normalisation, per split.

Spark hands each task the lines of one or more file splits (``_metadata.file_block_start``), in file order.
A split's lines are written to a local temporary file and read by exactly the code the embedded engine reads
a file with (``api._read_one``: the vectorised JSON-lines / CSV paths, else readers + ``normalise``), so there
is one normaliser. Its rows come back as one union-shaped Arrow table (``kind`` says which relation a row
belongs to), numbered within the split; the driver turns split-local numbers into file lines and global
``rec`` positions from the per-split counts (``S`` rows).

Nothing here imports pyspark: executors need only pyarrow and this package.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from mia_bridge.analysis.intake import BUILT_COLUMNS, Intake
from mia_bridge.analysis.schema import RECORD_COLUMNS
from mia_bridge.errors import MiaError, UnreadableInput

# What the Spark engine reads: every format the readers know that is one record a line (a file Spark splits
# is read split by split), plain or .gz.
FORMATS_TAKEN = ("raw AuditData JSON lines and the other JSON-lines exports mia reads",
                 "Purview / Search-UnifiedAuditLog CSV exports and the other CSV exports mia reads",
                 "a JSON array only as long as Spark does not split it (one split: 128 MB)",
                 "any of these gzipped with a .gz name",
                 "a saved base: the --out folder of `mia analyze --keep-base` (or its base/), alone")

_ARROW_TYPES = {"string": pa.string(), "Int64": pa.int64(), "boolean": pa.bool_(),
                "datetime64[ns, UTC]": pa.timestamp("us", tz="UTC")}

COMPRESSED = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")  # Spark decompresses these by name
KIND_RECORD, KIND_FOLDER, KIND_ITEM, KIND_QUARANTINE, KIND_SPLIT = "R", "F", "I", "Q", "S"

# One schema for every row the mapper emits; ``pos``: the row's position within its split and relation.
MAPPED_SCHEMA = pa.schema(
    [("kind", pa.string()), ("file_idx", pa.int32()), ("block", pa.int64()), ("pos", pa.int64()),
     ("local_rec", pa.int64())]
    + [(name, _ARROW_TYPES[RECORD_COLUMNS[name]]) for name in BUILT_COLUMNS]
    + [("folder_path", pa.string()), ("folder_id", pa.string()), ("internet_message_id", pa.string()),
       ("internet_message_id_raw", pa.string()), ("size_in_bytes", pa.int64()),
       ("q_line", pa.int64()), ("q_reason", pa.string()), ("q_raw", pa.string()),
       ("s_lines", pa.int64()), ("s_read", pa.int64()), ("s_parsed", pa.int64()), ("s_error", pa.string())]
)


def spark_schema_ddl() -> str:
    """``MAPPED_SCHEMA`` as a Spark DDL string (for ``mapInArrow``)."""
    names = {pa.string(): "string", pa.int32(): "int", pa.int64(): "bigint", pa.bool_(): "boolean",
             pa.timestamp("us", tz="UTC"): "timestamp"}
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in MAPPED_SCHEMA)


@dataclass(frozen=True)
class FilePlan:
    """What the driver worked out about one input file from its start."""

    display: str  # the name the tables and messages give the file (the path as given, else Spark's URI)
    fmt: str  # reader NAME
    prefix: bytes  # lines before the first record (a CSV's header, Export-Csv's #TYPE line), each with "\n"
    prefix_lines: int
    max_record_bytes: int
    whole: bool = False  # a JSON array: readable only when Spark does not split the file


def canonical_uri(uri: str) -> str:
    """One spelling of a file's URI (Spark writes ``file:/x`` in ``_metadata`` and ``file:///x`` elsewhere)."""
    parsed = urlparse(uri)
    return f"{parsed.scheme}://{parsed.netloc}{unquote(parsed.path)}"


def _empty(n: int, names: list[str]) -> dict[str, pa.Array]:
    return {name: pa.nulls(n, MAPPED_SCHEMA.field(name).type) for name in names}


def _table(kind: str, file_idx: int, block: int, columns: dict[str, Any], n: int) -> pa.Table:
    arrays: dict[str, Any] = _empty(n, MAPPED_SCHEMA.names)
    arrays["kind"] = pa.repeat(pa.scalar(kind, pa.string()), n)
    arrays["file_idx"] = pa.repeat(pa.scalar(file_idx, pa.int32()), n)
    arrays["block"] = pa.repeat(pa.scalar(block, pa.int64()), n)
    arrays["pos"] = pa.array(np.arange(n, dtype=np.int64))
    for name, values in columns.items():
        target = MAPPED_SCHEMA.field(name).type
        if isinstance(values, pd.Series):
            if pa.types.is_timestamp(target):
                values = values.dt.tz_convert("UTC").dt.as_unit("us")
            values = pa.array(values, type=target, from_pandas=True)  # column-wise: no Python object per value
        elif not isinstance(values, pa.Array):
            values = pa.array(values, type=target)
        arrays[name] = values.cast(target)
    return pa.Table.from_pydict(arrays, schema=MAPPED_SCHEMA)


def read_split(lines: list[bytes], plan: FilePlan, file_idx: int, block: int, workdir: str,
               last_newline: bool = True) -> Iterator[pa.Table]:
    """The rows of one split (its lines, without their "\n"), read as the embedded engine reads a file;
    ``last_newline``: whether the split's last line ended with one."""
    from mia_bridge.analysis.api import _read_one  # the one reading path (imported late: api imports a lot)
    from mia_bridge.readers.registry import prepare

    prefix = plan.prefix if block > 0 else b""
    skip = plan.prefix_lines if block > 0 else 0
    fd, name = tempfile.mkstemp(prefix="split-", suffix=".txt", dir=workdir)
    intake = Intake()
    error: str | None = None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(prefix)
            for number, line in enumerate(lines, start=1):
                handle.write(line)
                if number < len(lines) or last_newline:
                    handle.write(b"\n")
        try:
            reader, src, sniffed = prepare(Path(name), plan.fmt, plan.max_record_bytes)
            _read_one(intake, reader, src, sniffed)
        except (OSError, EOFError, ValueError, UnicodeError, RecursionError, MemoryError, pa.ArrowException,
                MiaError) as exc:
            reason = exc.reason if isinstance(exc, UnreadableInput) else f"{type(exc).__name__}: {exc}"
            error = f"{plan.display}: reading stopped after {intake.read} record(s): {reason}"
        records, folders, items = intake.tables()
    finally:
        Path(name).unlink(missing_ok=True)
    n = len(records)
    if n:
        columns: dict[str, Any] = {c: records[c] for c in BUILT_COLUMNS}
        columns["source_file"] = pa.repeat(pa.scalar(plan.display), n)
        columns["source_line"] = records["source_line"] - skip
        columns["local_rec"] = pa.array(np.arange(n, dtype=np.int64))
        yield _table(KIND_RECORD, file_idx, block, columns, n)
    if len(folders):
        yield _table(KIND_FOLDER, file_idx, block, {
            "local_rec": folders["rec"].astype("int64"), "folder_path": folders["folder_path"],
            "folder_id": folders["folder_id"]}, len(folders))
    if len(items):
        yield _table(KIND_ITEM, file_idx, block, {
            "local_rec": items["rec"].astype("int64"), "folder_path": items["folder_path"],
            "internet_message_id": items["internet_message_id"],
            "internet_message_id_raw": items["internet_message_id_raw"],
            "size_in_bytes": items["size_in_bytes"]}, len(items))
    if intake.quarantined:
        q = intake.quarantined
        yield _table(KIND_QUARANTINE, file_idx, block, {
            "source_file": [plan.display] * len(q),
            "q_line": [None if e.line is None else e.line - skip for e in q],
            "q_reason": [e.reason.replace(name, plan.display) for e in q],
            "q_raw": [e.raw for e in q]}, len(q))
    yield _table(KIND_SPLIT, file_idx, block, {
        "s_lines": [len(lines)], "s_read": [intake.read], "s_parsed": [n], "s_error": [error]}, 1)


def map_partition(batches: Iterator[pa.RecordBatch], plans: dict[str, tuple[int, FilePlan]],
                  workdir: str | None) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: the batches hold ``value`` (binary), ``path`` and ``block``; every split's rows
    arrive together and in order. Files the driver refused (absent from ``plans``) are passed over."""
    folder = workdir if workdir and os.path.isdir(workdir) else tempfile.gettempdir()
    current: tuple[str, int] | None = None
    lines: list[bytes] = []
    size = -1  # the file's size when the split is the whole (uncompressed) file, else -1

    def flush() -> Iterator[pa.RecordBatch]:
        if current is None or current[0] not in plans:
            return
        file_idx, plan = plans[current[0]]
        last_newline = size < 0 or sum(len(line) + 1 for line in lines) == size
        for table in read_split(lines, plan, file_idx, current[1], folder, last_newline):
            yield from table.to_batches()

    for batch in batches:
        values = batch.column("value").to_pylist()
        paths = [canonical_uri(p) for p in batch.column("path").to_pylist()]
        blocks = batch.column("block").to_pylist()
        wholes = batch.column("whole").to_pylist()
        sizes = batch.column("size").to_pylist()
        for value, path, block, whole, file_size in zip(values, paths, blocks, wholes, sizes, strict=True):
            key = (path, block)
            if key != current:
                yield from flush()
                current, lines = key, []
                size = file_size if whole and not path.endswith(COMPRESSED) else -1
            lines.append(value if value is not None else b"")
    yield from flush()


def head_lines(batches: Iterator[pa.RecordBatch], limit_lines: int, limit_bytes: int) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body for the driver's sniff: the first lines of each file's first split."""
    taken: dict[str, tuple[int, int]] = {}
    for batch in batches:
        out_path: list[str] = []
        out_idx: list[int] = []
        out_value: list[bytes] = []
        for value, uri in zip(batch.column("value").to_pylist(), batch.column("path").to_pylist(), strict=True):
            path = canonical_uri(uri)
            count, size = taken.get(path, (0, 0))
            if count >= limit_lines or size >= limit_bytes:
                continue
            data = value or b""
            taken[path] = (count + 1, size + len(data) + 1)
            out_path.append(path)
            out_idx.append(count)
            out_value.append(data)
        if out_path:
            yield pa.RecordBatch.from_pydict({"path": out_path, "idx": out_idx, "value": out_value},
                                             schema=pa.schema([("path", pa.string()), ("idx", pa.int64()),
                                                               ("value", pa.binary())]))


def pick_lines(batches: Iterator[pa.RecordBatch], wanted: dict[tuple[str, int], frozenset[int]]
               ) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: the lines at ``wanted[(file, split start)]`` (0-based positions in the split)."""
    schema = pa.schema([("path", pa.string()), ("block", pa.int64()), ("idx", pa.int64()), ("value", pa.binary())])
    current: tuple[str, int] | None = None
    index = -1
    for batch in batches:
        found: dict[str, list[Any]] = {"path": [], "block": [], "idx": [], "value": []}
        for value, uri, block in zip(batch.column("value").to_pylist(), batch.column("path").to_pylist(),
                                     batch.column("block").to_pylist(), strict=True):
            key = (canonical_uri(uri), block)
            if key != current:
                current, index = key, -1
            index += 1
            if index in wanted.get(key, ()):
                found["path"].append(key[0])
                found["block"].append(block)
                found["idx"].append(index)
                found["value"].append(value or b"")
        if found["path"]:
            yield pa.RecordBatch.from_pydict(found, schema=schema)


def csv_text(batches: Iterator[pa.RecordBatch], columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body for a table's CSV on the cluster: each batch as the local writer makes its CSV
    (``outputs._csv_ready``: ISO 8601 UTC times, formula-like text neutralised), every column as text."""
    from mia_bridge.analysis.outputs import _csv_ready

    for batch in batches:
        table = _csv_ready(pa.Table.from_batches([batch]))
        yield from pa.table({c: table.column(c).cast(pa.string()) for c in columns}).to_batches()
