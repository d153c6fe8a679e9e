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


def maybe_json(value: Any) -> Any:
    """Decode a JSON document stored in a string cell (double encoding); leave other values alone."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{") and stripped[-1:] in ("]", "}"):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
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


class RowError(ValueError):
    """A delimited row that cannot become a record (wrong field count)."""


def iter_csv_rows(
    handle: TextIO, delimiter: str
) -> Iterator[tuple[int, dict[str, str] | None, str, str | None]]:
    """Yield ``(line, row, raw, error)`` for each data row; ``line`` is the row's first physical line.

    Skips a leading ``#TYPE`` line (Export-Csv without -NoTypeInformation). ``row`` is None when the
    row is structurally broken, with ``error`` saying why.
    """
    lines = _LineTracker(handle)
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
        raw = lines.take_raw()
        if header is None:
            if fields and fields[0].startswith("#TYPE"):
                continue
            header = [name.strip().lstrip("\ufeff") for name in fields]
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if len(fields) != len(header):
            yield start, None, raw, f"row has {len(fields)} fields, the header has {len(header)}"
            continue
        yield start, dict(zip(header, fields, strict=True)), raw, None


class _LineTracker:
    """Feeds the csv module line by line while remembering the physical line number and raw text."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.line = 0
        self._buffer: list[str] = []
        self.last_raw = ""

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        text = self._handle.readline()
        if not text:
            raise StopIteration
        self.line += 1
        self._buffer.append(text)
        return text

    def take_raw(self) -> str:
        raw = "".join(self._buffer)
        self._buffer.clear()
        self.last_raw = raw
        return raw.rstrip("\r\n")
