"""CSV rows for the readers (the decoding of one cell is the record layer's: ``mia_bridge.records.cells``)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from mia_bridge.records.cells import NUL_IN_RECORD

# Huge cells are legitimate (a bind record with thousands of items); refuse only the absurd.
csv.field_size_limit(min(sys.maxsize, 512 * 1024 * 1024))


def scalar(value: Any) -> Any:
    """Empty strings become None (plaso's rule)."""
    if isinstance(value, str) and value == "":
        return None
    return value


DEFAULT_MAX_RECORD_BYTES = 64 << 20
EXCERPT = 4096  # characters of an oversized record kept in quarantine


def oversize_reason(limit: int) -> str:
    return f"record larger than the limit of {limit:,} bytes (--max-record-bytes); its start is kept"


class RecordTooLarge(Exception):
    """A physical line or a row grew past the record size limit (the rest of it was skipped)."""

    def __init__(self, excerpt: str, skipped: int) -> None:
        super().__init__(excerpt)
        self.excerpt = excerpt
        self.skipped = skipped


def iter_csv_rows(
    handle: TextIO, delimiter: str, max_record: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[tuple[int, dict[str, str] | None, str, str | None]]:
    """Yield ``(line, row, raw, error)`` for each data row; ``line`` is the row's first physical line.

    Skips a leading ``#TYPE`` line (Export-Csv without -NoTypeInformation). ``row`` is None when the
    row is structurally broken, holds a NUL byte or is larger than ``max_record``, with ``error`` saying why.
    """
    lines = _LineTracker(handle, max_record)
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    while True:
        start = lines.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, lines.take_raw(), f"broken CSV structure: {exc}"
            continue
        except RecordTooLarge as big:
            lines.take_raw()
            yield start, None, big.excerpt, oversize_reason(max_record)
            continue
        raw = lines.take_raw()
        if header is None:
            if fields and fields[0].startswith("#TYPE"):
                continue
            header = [name.strip().lstrip("\ufeff") for name in fields]
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if "\x00" in raw:
            yield start, None, raw, NUL_IN_RECORD
            continue
        if len(fields) != len(header):
            yield start, None, raw, f"row has {len(fields)} fields, the header has {len(header)}"
            continue
        yield start, dict(zip(header, fields, strict=True)), raw, None


class _LineTracker:
    """Feeds the csv module line by line while remembering the physical line number and raw text.

    Never holds more than ``max_record`` characters of one row: a longer line or row raises
    ``RecordTooLarge`` (after skipping the rest of the line), which ends that row only.
    """

    def __init__(self, handle: TextIO, max_record: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._handle = handle
        self._max = max_record
        self._held = 0
        self.line = 0
        self._buffer: list[str] = []
        self.last_raw = ""

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        text = self._handle.readline(self._max - self._held + 1)
        if not text:
            raise StopIteration
        self.line += 1
        if self._held + len(text) > self._max:
            excerpt = ("".join(self._buffer) + text)[:EXCERPT]
            skipped = self._held + len(text)
            while not text.endswith("\n"):  # the rest of this physical line, a chunk at a time
                text = self._handle.readline(1 << 20)
                if not text:
                    break
                skipped += len(text)
            self._buffer.clear()
            self._held = 0
            raise RecordTooLarge(excerpt, skipped)
        self._buffer.append(text)
        self._held += len(text)
        return text

    def take_raw(self) -> str:
        raw = "".join(self._buffer)
        self._buffer.clear()
        self._held = 0
        self.last_raw = raw
        return raw.rstrip("\r\n")
