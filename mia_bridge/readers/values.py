"""Cell-level decoding shared by readers: JSON-in-a-string, PowerShell-stringified objects, CSV rows."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# Huge cells are legitimate (a bind record with thousands of items); refuse only the absurd.
csv.field_size_limit(min(sys.maxsize, 512 * 1024 * 1024))

PS_OBJECT_ARRAY = "System.Object[]"
_PS_HASHTABLE = re.compile(r"^@\{(.*)\}$", re.DOTALL)


def parse_ps_hashtable(text: str) -> dict[str, Any] | None:
    """Parse PowerShell's ``@{Name=Value; Other=Value}`` object string (shallow ConvertTo-Json output).

    Values are kept as strings; ``System.Object[]`` marks a nested list PowerShell did not serialise.
    """
    match = _PS_HASHTABLE.match(text.strip())
    if match is None:
        return None
    body = match.group(1)
    result: dict[str, Any] = {}
    # Keys are identifiers; split on "; Key=" so values may themselves contain ";" or "=".
    parts = re.split(r";\s*(?=[A-Za-z_][A-Za-z0-9_]*=)", body)
    for part in parts:
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            return None
        result[key.strip()] = value
    return result


# Records nested deeper than this are quarantined: no audit record comes near it (Folders/FolderItems is 4
# levels), and Python's own parser fails at about a thousand levels.
MAX_DEPTH = 100
NUL_IN_RECORD = "NUL byte in the record"


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` for JSON text within the limits, else ``(None, why not)``: never raises."""
    if "\x00" in text:
        return None, NUL_IN_RECORD
    try:
        value = json.loads(text)
    except RecursionError:
        return None, f"nested deeper than {MAX_DEPTH} levels"
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    if text.count("[") + text.count("{") > MAX_DEPTH and too_deep(value):
        return None, f"nested deeper than {MAX_DEPTH} levels"
    return value, None


def maybe_json(value: Any) -> Any:
    """Decode a JSON document stored in a string cell (double encoding); leave other values alone."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{") and stripped[-1:] in ("]", "}"):
            decoded, error = parse_json(stripped)
            return value if error is not None else decoded
    return value


def as_list(value: Any) -> list[Any]:
    """A one-element array may arrive as a bare object (ConvertTo-Json); None is empty."""
    value = maybe_json(value)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


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
