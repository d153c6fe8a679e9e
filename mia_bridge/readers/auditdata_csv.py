"""Shared reading for CSV exports that carry the whole record as JSON in an ``AuditData`` column.

Purview (current and classic) and ``Search-UnifiedAuditLog | Export-Csv`` differ only in the other
columns; the record itself is always the AuditData JSON.

The same exports are also read column-wise, for the bulk case (``columnar_blocks``; the analysis's parallel
ingest uses the pieces: ``raw_batches`` splits the rows, ``records_of_batch`` parses their AuditData):
pyarrow reads the CSV a block at a time, the block's AuditData cells are joined into JSON lines and parsed
into the raw fields of ``raw_auditdata_json.SCHEMA``, nothing normalised (``analysis/columnar.py`` does
that). Only clean input takes this path: a cell spanning lines, an empty or invalid AuditData cell, a record
that needs the export's own columns to fill a field it lacks, blank lines, another encoding raise
``Irregular`` (or an arrow error) and the caller reads the file row by row, which quarantines precisely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mia_bridge.readers.base import Irregular, Quarantined, RawRecord, Sniff
from mia_bridge.readers.csv_records import read_csv_records
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.raw_auditdata_json import (
    _SCRATCH,
    ColumnarBlock,
    _newlines,
    count_lines,
    limit_allowed,
    parse_lines,
)
from mia_bridge.records.cell_bytes import end_bytes
from mia_bridge.records.cells import parse_json

NAMES = ("purview_audit_csv", "purview_classic_csv", "unified_audit_log_csv")  # the formats read here
_BLOCK = 32 << 20
# Export columns the row-by-row reader falls back on when AuditData lacks the field (Id, CreationTime and
# Operation are required of AuditData by the analysis's columnar rows, which refuse records without them).
_USER_COLUMNS = ("UserId", "UserIds")


def record_of_row(row: dict[str, str]) -> dict[str, Any] | str:
    """The AuditData record of one row, completed from the export's own columns; or why there is none."""
    cell = (row.get("AuditData") or "").strip()
    if not cell:
        return "empty AuditData cell"
    data, error = parse_json(cell)
    if error is not None:
        return f"{error.replace('invalid JSON', 'invalid JSON in AuditData', 1)}"
    if not isinstance(data, dict):
        return "AuditData is not a JSON object"
    # Fall back to the export's own columns when AuditData lacks a field.
    if not data.get("Id") and row.get("RecordId"):
        data["Id"] = row["RecordId"]
    if not data.get("CreationTime") and row.get("CreationDate"):
        data["CreationTime"] = row["CreationDate"]
    if not data.get("Operation"):
        data["Operation"] = row.get("Operation") or row.get("Operations") or None
    if not data.get("UserId"):
        data["UserId"] = row.get("UserId") or row.get("UserIds") or None
    if data.get("RecordType") in (None, "") and row.get("RecordType"):
        data["RecordType"] = row["RecordType"]
    return data


def read_auditdata_csv(src: DecodedInput, sniff: Sniff, fmt: str) -> Iterator[RawRecord | Quarantined]:
    return read_csv_records(src, sniff, fmt, record_of_row)


# --- the columnar read ------------------------------------------------------------------------------------


def columnar_allowed(src: DecodedInput, sniff: Sniff) -> bool:
    """Whether the columnar read may take the export: UTF-8 with an AuditData column, header names as arrow
    takes them (the row reader trims them), a record size limit that suits it (``limit_allowed``)."""
    return (src.encoding in ("utf-8", "utf-8-sig") and "AuditData" in sniff.header and limit_allowed(src)
            and all(name == name.strip() for name in sniff.header))


def columnar_blocks(src: DecodedInput, sniff: Sniff) -> Iterator[ColumnarBlock]:
    """The export's records (its AuditData) as raw arrow tables, block by block, each with the line of its
    first row.

    Raises ``Irregular`` (or an arrow error, ``OSError``) when the file must be read row by row instead,
    possibly after some blocks were given: the caller then drops what it took.
    """
    if not columnar_allowed(src, sniff):
        raise Irregular("not UTF-8, no AuditData column, header names with spaces or a small record size limit")
    skip = header_lines(src)
    # Checked whole first (NUL bytes, line lengths, a gzip's expansion): arrow would buffer any row.
    lines = count_lines(src)
    rows = 0
    for batch in raw_batches(src, sniff, skip):
        table = records_of_batch(batch)
        if table.num_rows:
            yield table, skip + rows + 1
            rows += table.num_rows
    # Line numbers hold only when every row is one line: no cell spans lines, no blank line was skipped.
    if rows == 0 or lines != skip + rows:
        raise Irregular("rows spanning lines, or blank lines")


def header_lines(src: DecodedInput) -> int:
    """Lines before the first data row: the header, and Export-Csv's ``#TYPE`` line when present."""
    with src.open_binary() as handle:
        first = handle.readline(64 * 1024)
    return 2 if first.lstrip(b"\xef\xbb\xbf").startswith(b"#TYPE") else 1


def _blank(column: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    return pc.or_kleene(pc.is_null(column), pc.equal(_trimmed(column), ""))


def _trimmed(cells: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``utf8_trim_whitespace`` of the cells, without the copy of every cell when no cell can need it: a cell
    whose first and last bytes are printable ASCII (``{`` and ``}`` in an export) has nothing to trim. Any
    other end byte (a space, a control character, the start or end of a multi-byte character) takes the
    trim itself, so the result is always the trim's."""
    for chunk in cells.chunks if isinstance(cells, pa.ChunkedArray) else [cells]:
        first, last, filled = end_bytes(chunk)
        if not bool((((first > 0x20) & (first < 0x80) & (last > 0x20) & (last < 0x80)) | ~filled).all()):
            return pc.utf8_trim_whitespace(cells)
    return cells


def records_of_batch(batch: pa.RecordBatch) -> pa.Table:
    """The batch's AuditData cells parsed as raw JSON records (row for row), or ``Irregular``."""
    cells = _trimmed(batch.column("AuditData"))
    if pc.any(_blank(cells)).as_py():  # trimmed already: _blank's own trim is the check alone
        raise Irregular("an empty AuditData cell")
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(cells)], pa.int32()), cells), "\n")[0]
    # JSON lines need one record per line: the joined text has exactly one newline between cells, and no CR
    with memoryview(lines.as_buffer()) as text:
        newlines = _newlines(text, np.empty(_SCRATCH, dtype=bool))
        carriage_return = bool((np.frombuffer(text, dtype=np.uint8) == 13).any())
    if newlines != max(len(cells) - 1, 0) or carriage_return:
        raise Irregular("AuditData spans lines")
    table = parse_lines(lines.as_buffer(), None)  # Irregular when a record wraps another
    if table.num_rows != batch.num_rows:
        raise Irregular("AuditData is not one JSON object per cell")
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
