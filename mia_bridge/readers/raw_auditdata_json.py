"""Raw AuditData records as JSON lines or a JSON array (Management Activity API, Graph, our evidence files).

Also accepts objects that wrap the record: ``{"AuditData": "<json>"}`` (Search-UnifiedAuditLog output
through ConvertTo-Json) and Graph's ``{"auditData": {...}}``.

The same JSON lines are also read column-wise, for the bulk case (``columnar_blocks``; the analysis's
parallel ingest uses the pieces: ``plain_blocks``/``stream_blocks`` cut the file, ``parse_lines`` parses a
block). The file is cut into blocks of whole lines, mapped rather than read, and pyarrow parses each block
into a table of the raw fields analysis uses (``SCHEMA``, AuditData's own names and types): nothing is
normalised here (``analysis/columnar.py`` turns such a table into rows). Only clean, regular input takes
this path: a NUL byte, a line over the record size limit, a blank line, a wrapped record, a field of
another type raise ``Irregular`` (or an arrow error), and the caller reads the file record by record, which
quarantines precisely.
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from mia_bridge.readers.base import Irregular, Quarantined, RawRecord, Reader, Sniff, records_from
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.json_records import iter_json_objects
from mia_bridge.records.cells import parse_json

_API_KEYS = frozenset({"Operation", "CreationTime", "RecordType", "AuditData", "auditData", "Workload"})
_EXPORT_FIELDS = (("CreationDate", "CreationTime"), ("Operations", "Operation"), ("UserIds", "UserId"))
_OTHER_TABLE_KEYS = frozenset({"OfficeId", "OfficeWorkload", "RawEventData", "ActionType", "OperationName"})


def unwrap(obj: dict[str, Any]) -> dict[str, Any] | str:
    """The AuditData dict of ``obj``, or a reason string when the wrapper holds no usable record."""
    for key in ("AuditData", "auditData"):
        if key in obj:
            inner = obj[key]
            if isinstance(inner, str):
                inner, error = parse_json(inner)
                if error is not None:
                    return f"{key}: {error}"
            if not isinstance(inner, dict):
                return f"{key} is not a JSON object"
            if key == "auditData":  # Graph: top-level fields complete the record
                inner.setdefault("Id", obj.get("id"))
                inner.setdefault("CreationTime", obj.get("createdDateTime"))
                inner.setdefault("Operation", obj.get("operation"))
                inner.setdefault("UserId", obj.get("userPrincipalName"))
            else:
                for outer, field in _EXPORT_FIELDS:
                    if not inner.get(field) and obj.get(outer):
                        inner[field] = obj[outer]
            return inner
    return obj


class RawAuditDataJsonReader(Reader):
    NAME = "raw_auditdata_json"
    DESCRIPTION = "Raw AuditData records, JSON lines or JSON array"
    PRIORITY = 60

    def matches(self, sniff: Sniff) -> bool:
        obj = sniff.first_json
        if sniff.json_kind is None:
            return False
        if obj is None:
            return True  # JSON, but the first record is broken: read it and quarantine per record
        keys = set(obj)
        return bool(keys & _API_KEYS) and not keys & _OTHER_TABLE_KEYS

    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        return records_from(iter_json_objects(src, sniff), unwrap, source=str(src.path), fmt=self.NAME)


# --- the columnar read ------------------------------------------------------------------------------------

NAME = RawAuditDataJsonReader.NAME
_BLOCK = 32 << 20  # JSON parsed this many bytes at a time
_LINE_COUNT_BLOCK = 1 << 24
_SCRATCH = 1 << 22  # bytes compared at once when counting a block's lines
STRING_FIELDS = ("Id", "Operation", "Workload", "UserId", "MailboxOwnerUPN", "MailboxGuid", "ClientIPAddress",
                 "ClientIP", "ActorIpAddress", "SessionId", "AppId", "ClientAppId", "ClientInfoString",
                 "ResultStatus")

_STRING = pa.string()
_ITEM = pa.struct([("InternetMessageId", _STRING), ("SizeInBytes", pa.int64())])
_FOLDER = pa.struct([("Id", _STRING), ("Path", _STRING), ("FolderItems", pa.list_(_ITEM))])
_PARENT = pa.struct([("Id", _STRING), ("Name", _STRING), ("Path", _STRING)])
# Only the fields analysis uses are parsed; a value of another type fails the parse and the file is read
# record by record instead. Fields not listed are skipped here (they remain in the input file).
SCHEMA = pa.schema(
    [(name, _STRING) for name in STRING_FIELDS]
    + [("CreationTime", pa.timestamp("s")), ("RecordType", pa.int64()), ("LogonType", pa.int64()),
       ("OperationCount", pa.int64()),
       ("OperationProperties", pa.list_(pa.struct([("Name", _STRING), ("Value", _STRING)]))),
       ("Folders", pa.list_(_FOLDER)),
       ("Item", pa.struct([("Id", _STRING), ("ParentFolder", _PARENT), ("InternetMessageId", _STRING),
                           ("SizeInBytes", pa.int64())])),
       ("AuditData", _STRING), ("auditData", _STRING)]
)

# One thread per block: a caller that wants two cores parses the next block on another thread meanwhile.
JSON_READ = pa_json.ReadOptions(block_size=_BLOCK, use_threads=False)
JSON_PARSE = pa_json.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False)

ColumnarBlock = tuple[pa.Table, int]  # raw records (``SCHEMA``) of consecutive lines, the line of the first


def columnar_allowed(src: DecodedInput) -> bool:
    """Whether the columnar read may take ``src``: UTF-8 (the parser's only encoding) and ``limit_allowed``."""
    return src.encoding == "utf-8" and limit_allowed(src)


def limit_allowed(src: DecodedInput) -> bool:
    """Whether the record size limit suits a columnar read: line lengths are checked per block, so a limit
    below the block size is left to the record readers."""
    return src.max_record_bytes >= max(_BLOCK, _LINE_COUNT_BLOCK)


def columnar_blocks(src: DecodedInput) -> Iterator[ColumnarBlock]:
    """The file's records as raw arrow tables, block by block, each with the line of its first record.

    Raises ``Irregular`` (or an arrow error, ``OSError``) when the file must be read record by record
    instead, possibly after some blocks were given: the caller then drops what it took.
    """
    if not columnar_allowed(src):
        raise Irregular("not UTF-8, or a record size limit below the block size")
    rows = 0
    if src.gzipped:
        # Checked whole first (NUL bytes, line lengths, its expansion): arrow would buffer a line of any length.
        total_lines = count_lines(src)
        reader = pa_json.open_json(pa.input_stream(str(src.path), compression="gzip"), read_options=JSON_READ,
                                   parse_options=JSON_PARSE)
        for batch in reader:
            table = _checked(pa.Table.from_batches([batch]), None)
            if table.num_rows:
                yield table, rows + 1
                rows += table.num_rows
        if total_lines != rows:
            raise Irregular("blank lines")  # the parser skips them: line numbers would drift
    else:
        for table in _mapped_tables(str(src.path), src.max_record_bytes):
            if table.num_rows:
                yield table, rows + 1
                rows += table.num_rows
    if rows == 0:
        raise Irregular("no records")


def parse_lines(buffer: Any, lines: int | None) -> pa.Table:
    """The raw records of a block of whole JSON lines (bytes or a buffer), which has ``lines`` physical lines
    when known: ``Irregular`` when a line is blank or a record wraps another."""
    table = pa_json.read_json(pa.BufferReader(pa.py_buffer(buffer)), read_options=JSON_READ,
                              parse_options=JSON_PARSE)
    return _checked(table, lines)


def _checked(table: pa.Table, lines: int | None) -> pa.Table:
    if pc.any(pc.is_valid(table.column("AuditData"))).as_py() or pc.any(
            pc.is_valid(table.column("auditData"))).as_py():
        raise Irregular("wrapped records")  # the record reader unwraps them
    if lines is not None and lines != table.num_rows:
        raise Irregular("blank lines")  # the parser skips them: line numbers would drift
    return table


def _mapped_tables(path: str, max_record: int) -> Iterator[pa.Table]:
    """The parsed blocks of a plain file, mapped, not read: the parser reads the page cache in place (read()
    copied 1.66 GB into fresh buffers, ≈2.8 s of system time at 1,000,000 records), and each block's pages
    leave the process once parsed, so the mapping never weighs on peak memory."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            for start, end, lines in _cut(mapped, size, _BLOCK, max_record):
                with memoryview(mapped)[start:end] as block:
                    table = parse_lines(block, lines)
                yield table


def plain_blocks(path: str, max_record: int, block: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, physical lines)`` of each block of whole lines of a plain file (for parsing elsewhere,
    with ``parse_lines``); raises ``Irregular`` on a NUL byte or a line longer than ``max_record``."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield from _cut(mapped, size, block, max_record)


def _cut(mapped: mmap.mmap, size: int, block: int, max_record: int) -> Iterator[tuple[int, int, int]]:
    scratch = np.empty(_SCRATCH, dtype=bool)  # reused: fresh pages cost a fault each
    for start, end in block_bounds(mapped, size, block, max_record):
        with memoryview(mapped)[start:end] as view:
            lines = _newlines(view, scratch) + (0 if view[-1] == ord("\n") else 1)
        yield start, end, lines


def _newlines(block: memoryview, scratch: np.ndarray) -> int:
    data = np.frombuffer(block, dtype=np.uint8)
    found = 0
    for start in range(0, len(data), len(scratch)):
        part = data[start:start + len(scratch)]
        np.equal(part, ord("\n"), out=scratch[:len(part)])
        found += int(np.count_nonzero(scratch[:len(part)]))
    return found


def block_bounds(mapped: mmap.mmap, size: int, block: int, max_record: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each block of whole lines of a mapped file: at most ``block`` bytes, unless a single
    line is longer. Raises ``Irregular`` on a NUL byte or a line longer than ``max_record``. Once the caller is
    done with a block, its pages leave the process (the mapping never weighs on peak memory)."""
    start = 0
    while start < size:
        end = size if start + block >= size else mapped.rfind(b"\n", start, start + block) + 1
        if end <= start:  # a single line longer than a block
            end = mapped.find(b"\n", start + block, start + max_record + 1) + 1
            if end <= start:
                if size - start > max_record:
                    raise Irregular("a line longer than the record size limit")
                end = size
        if mapped.find(b"\x00", start, end) >= 0:  # memchr: a few ms per block
            raise Irregular("a NUL byte")
        yield start, end
        if hasattr(mapped, "madvise"):  # not on Windows
            first = start - start % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_DONTNEED, first, end - first)
        start = end


def stream_blocks(src: DecodedInput, block: int) -> Iterator[tuple[bytes, int]]:
    """``(bytes, physical lines)`` of each block of whole lines of a (gzip) stream, decompressed here within
    the input's limits; raises ``Irregular`` on a NUL byte, an over-long line or a damaged container."""
    damaged = len(src.damage)
    rest = b""
    size = min(block, src.max_record_bytes)  # so a line inside a read is within the limit
    with src.open_binary() as handle:
        while True:
            data = handle.read(size)
            if not data:
                break
            data = rest + data
            if data.find(b"\x00") >= 0:
                raise Irregular("a NUL byte")
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if len(rest) > src.max_record_bytes or data.find(b"\n") > src.max_record_bytes:
                raise Irregular("a line longer than the record size limit")
            if cut:
                whole = data[:cut]
                yield whole, whole.count(b"\n")
    if len(src.damage) > damaged:
        raise Irregular("a damaged container")
    if rest:
        yield rest, 1


def count_lines(src: DecodedInput) -> int:
    """Physical lines of the (decompressed) input, counted in large blocks (at memory speed).

    Raises ``Irregular`` on a NUL byte or a line longer than the record size limit (the record reader
    quarantines that record), ``DecompressionLimit`` (an ``OSError``) on a decompression bomb.
    """
    lines = 0
    ends_with_newline = True
    run = 0  # bytes since the last newline
    damaged = len(src.damage)
    buffer = bytearray(_LINE_COUNT_BLOCK)  # reused: a fresh block per read costs a page fault per 4 kB
    scratch = np.empty(_SCRATCH, dtype=bool)
    with src.open_binary() as handle:
        reader = cast(io.BufferedIOBase, handle)
        while size := reader.readinto(buffer):
            with memoryview(buffer)[:size] as block:
                found = _newlines(block, scratch)  # numpy: 3x bytearray.count
            lines += found
            ends_with_newline = buffer[size - 1] == ord("\n")
            if buffer.find(b"\x00", 0, size) >= 0:
                raise Irregular("a NUL byte")
            # Lines inside one block are shorter than the block, itself below the limit (see limit_allowed).
            if found:
                first = buffer.find(b"\n", 0, size)
                if run + first > src.max_record_bytes:
                    raise Irregular("a line longer than the record size limit")
                run = size - buffer.rfind(b"\n", 0, size) - 1
            else:
                run += size
            if run > src.max_record_bytes:
                raise Irregular("a line longer than the record size limit")
    if len(src.damage) > damaged:
        raise Irregular("a damaged container")
    return lines + (0 if ends_with_newline else 1)
