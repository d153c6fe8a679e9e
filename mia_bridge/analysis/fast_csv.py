"""Vectorised reading of large AuditData CSV exports: Purview (current and classic) and
``Search-UnifiedAuditLog | Export-Csv``.

The record is the JSON in the ``AuditData`` column: pyarrow reads the CSV a block at a time, the block's
AuditData cells are joined into JSON lines and parsed as the JSON-lines path does (``fast_jsonl``), giving
exactly the rows ``readers.auditdata_csv`` + ``normalise`` would give. Only clean input takes this path: a
cell spanning lines, an empty or invalid AuditData cell, a record that needs the export's own columns to
fill a field it lacks, blank lines, another encoding - anything returns None and the caller reads the file
row by row, which quarantines precisely. ``raw_json`` stays empty: the record's text is the row starting
at line ``source_line`` of ``source_file``, the input the analysis was run on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from mia_bridge.analysis.fast_jsonl import (
    JSON_PARSE,
    JSON_READ,
    Block,
    Irregular,
    build_chunk,
    bulk_memory_pool,
    count_lines,
    fast_allowed,
    parse_ahead,
)
from mia_bridge.analysis.intake import Chunk
from mia_bridge.readers.base import Sniff
from mia_bridge.readers.decoding import DecodedInput

NAMES = ("purview_audit_csv", "purview_classic_csv", "unified_audit_log_csv")
_BLOCK = 32 << 20
# Export columns the row-by-row reader falls back on when AuditData lacks the field (Id, CreationTime and
# Operation are required of AuditData here: build_chunk refuses records without them).
_USER_COLUMNS = ("UserId", "UserIds")


def header_lines(src: DecodedInput) -> int:
    """Lines before the first data row: the header, and Export-Csv's ``#TYPE`` line when present."""
    with src.open_binary() as handle:
        first = handle.readline(64 * 1024)
    return 2 if first.lstrip(b"\xef\xbb\xbf").startswith(b"#TYPE") else 1


def _blank(column: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    return pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column), ""))


def records_of_batch(batch: pa.RecordBatch) -> pa.Table:
    """The batch's AuditData cells parsed as JSON records (row for row), or ``Irregular``."""
    cells = pc.utf8_trim_whitespace(batch.column("AuditData"))
    if pc.any(_blank(cells)).as_py():
        raise Irregular("an empty AuditData cell")
    if pc.any(pc.match_substring_regex(cells, r"[\r\n]")).as_py():
        raise Irregular("AuditData spans lines")  # JSON lines need one record per line
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(cells)], pa.int32()), cells), "\n")[0]
    table = pa_json.read_json(pa.BufferReader(lines.as_buffer()), read_options=JSON_READ,
                              parse_options=JSON_PARSE)
    if table.num_rows != batch.num_rows:
        raise Irregular("AuditData is not one JSON object per cell")
    if pc.any(pc.is_valid(table.column("AuditData"))).as_py() or pc.any(pc.is_valid(table.column("auditData"))).as_py():
        raise Irregular("a record wraps another")
    for name in _USER_COLUMNS:  # the row reader takes the first of them that is not empty
        if name in batch.schema.names and pc.any(
            pc.and_(_blank(table.column("UserId")), pc.invert(_blank(batch.column(name))))
        ).as_py():
            raise Irregular("a record takes its UserId from the export's column")
    if "RecordType" in batch.schema.names and pc.any(
        pc.and_(pc.is_null(table.column("RecordType")), pc.invert(_blank(batch.column("RecordType"))))
    ).as_py():
        raise Irregular("a record takes its RecordType from the export's column")
    return table


def raw_batches(src: DecodedInput, sniff: Sniff, skip: int) -> Iterator[pa.RecordBatch]:
    """The export's rows a block at a time (the columns ``records_of_batch`` needs), as arrow parses them."""
    reader = pa_csv.open_csv(
        pa.input_stream(str(src.path), compression="gzip" if src.gzipped else None),
        read_options=pa_csv.ReadOptions(block_size=_BLOCK, skip_rows=skip - 1, use_threads=False),
        parse_options=pa_csv.ParseOptions(delimiter=sniff.delimiter or ",", newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in sniff.header},
            include_columns=[c for c in ("AuditData", "RecordType", *_USER_COLUMNS) if c in sniff.header],
        ),
    )
    yield from reader


def _blocks(src: DecodedInput, sniff: Sniff, skip: int) -> Iterator[Block]:
    for batch in raw_batches(src, sniff, skip):
        yield records_of_batch(batch), None  # lines are counted afterwards (cells may span lines)


def read_csv_chunks(src: DecodedInput, sniff: Sniff, fmt: str) -> list[Chunk] | None:
    """The export as chunks of consecutive records, or None when it must be read row by row."""
    if src.encoding not in ("utf-8", "utf-8-sig") or "AuditData" not in sniff.header or not fast_allowed(src):
        return None
    if any(name != name.strip() for name in sniff.header):
        return None  # the row reader trims header names; arrow takes them as they are
    bulk_memory_pool()
    chunks: list[Chunk] = []
    rows = 0
    try:
        skip = header_lines(src)
        # Checked whole first (NUL bytes, line lengths, a gzip's expansion): arrow would buffer any row.
        lines = count_lines(src)
        for table, _ in parse_ahead(_blocks(src, sniff, skip)):
            if table.num_rows:
                chunks.append(build_chunk(table, str(src.path), first_line=skip + rows + 1, fmt=fmt))
                rows += table.num_rows
        # Line numbers hold only when every row is one line: no cell spans lines, no blank line was skipped.
        if rows == 0 or lines != skip + rows:
            return None
        return chunks
    except (Irregular, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError, OSError, EOFError):
        return None  # the row reader reads it, quarantining precisely (a damaged container included)
