"""The reader registry: sniff an input, pick the reader by header/structure (never by file name), read it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from mia_bridge.errors import UnreadableInput, UsageError
from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.decoding import DecodedInput, DecompressionLimit, decode_input
from mia_bridge.readers.json_records import first_object
from mia_bridge.readers.values import DEFAULT_MAX_RECORD_BYTES

_READERS: dict[str, Reader] = {}

# Formats we recognise but do not read, with the reason given to the responder.
_UNSUPPORTED_JSON_KEYS = {
    "OperationName": "Entra ID AuditLogs (Sentinel AuditLogs table): directory audit, not a unified audit log export",
}
_UNSUPPORTED_COLUMNS = {
    "OperationName": (
        "Entra ID AuditLogs CSV (Sentinel AuditLogs table): directory audit, not a unified audit log export"
    ),
}


def register(reader: Reader) -> Reader:
    if reader.NAME in _READERS:
        raise KeyError(f"duplicate reader name {reader.NAME}")
    _READERS[reader.NAME] = reader
    return reader


def readers() -> list[Reader]:
    """Registered readers, most specific first."""
    return sorted(_READERS.values(), key=lambda r: (r.PRIORITY, r.NAME))


def format_names() -> list[str]:
    return sorted(_READERS)


def sniff(src: DecodedInput) -> Sniff:
    head = src.head()
    name = str(src.path)
    kind, obj = first_object(head)
    if kind is not None:
        return Sniff(path=name, head=head, first_json=obj, json_kind=kind)
    lines = head.splitlines()
    header_line = next((ln for ln in lines if ln.strip() and not ln.startswith("#TYPE")), "")
    best: tuple[int, str, list[str]] = (0, ",", [])
    for delimiter in (",", ";", "\t"):
        try:
            fields = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        if len(fields) > best[0]:
            best = (len(fields), delimiter, fields)
    header = tuple(field.strip().lstrip("\ufeff") for field in best[2])
    return Sniff(path=name, head=head, delimiter=best[1], columns=frozenset(header), header=header)


def detect(sniffed: Sniff) -> Reader:
    """The reader for a sniffed input, or ``UnreadableInput`` naming what the input looks like."""
    for reader in readers():
        if reader.matches(sniffed):
            return reader
    if sniffed.first_json is not None:
        for key, reason in _UNSUPPORTED_JSON_KEYS.items():
            if key in sniffed.first_json:
                raise UnreadableInput(sniffed.path, f"unsupported format: {reason}")
        keys = ", ".join(sorted(sniffed.first_json)[:8])
        raise UnreadableInput(sniffed.path, f"unsupported format: JSON records with keys {keys} ...", line=1)
    for key, reason in _UNSUPPORTED_COLUMNS.items():
        if key in sniffed.columns:
            raise UnreadableInput(sniffed.path, f"unsupported format: {reason}")
    shown = ", ".join(sniffed.header[:8]) or "(none)"
    raise UnreadableInput(
        sniffed.path,
        f"unsupported format: no reader recognises the columns {shown}",
        line=1,
        hint=f"force one with --format ({', '.join(format_names())})",
    )


def prepare(path: Path, fmt: str | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
            ) -> tuple[Reader, DecodedInput, Sniff]:
    """Decode and sniff ``path`` and pick its reader (or the forced ``fmt``).

    Raises ``UnreadableInput`` when the file cannot be read at all, ``UsageError`` for an unknown ``fmt``.
    """
    src = decode_input(path, max_record_bytes)
    try:
        sniffed = sniff(src)
    except (OSError, EOFError, UnicodeError, ValueError) as exc:
        raise UnreadableInput(str(path), f"cannot read its start: {exc}") from None
    if fmt is not None:
        if fmt not in _READERS:
            raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(format_names())}")
        return _READERS[fmt], src, sniffed
    return detect(sniffed), src, sniffed


def read_prepared(reader: Reader, src: DecodedInput, sniffed: Sniff) -> Iterator[RawRecord | Quarantined]:
    """Every record of a prepared input; a broken container (truncated gzip, I/O error) is quarantined."""
    return _guarded(reader, src, sniffed)


def open_input(path: Path, fmt: str | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
               ) -> tuple[Reader, Iterator[RawRecord | Quarantined]]:
    """Pick the reader for ``path`` (or the forced ``fmt``) and return it with its record iterator."""
    reader, src, sniffed = prepare(path, fmt, max_record_bytes)
    return reader, _guarded(reader, src, sniffed)


def _guarded(reader: Reader, src: DecodedInput, sniffed: Sniff) -> Iterator[RawRecord | Quarantined]:
    """A reader's records; a failure of the container itself (truncated gzip, decompression bomb, I/O
    error) ends this input with a quarantined entry naming where; the records before it are kept."""
    last = 0
    damaged = len(src.damage)
    try:
        for item in reader.read(src, sniffed):
            if item.line is not None:
                last = item.line
            yield item
        if len(src.damage) > damaged:
            yield Quarantined(str(src.path), last + 1, f"input ends after record {last}: {src.damage[-1]}", "")
    except DecompressionLimit as exc:
        yield Quarantined(str(src.path), last + 1, f"reading stopped after record {last}: {exc}", "")
    except (OSError, EOFError, UnicodeError, ValueError, RecursionError) as exc:
        yield Quarantined(str(src.path), last + 1,
                          f"input ends abruptly or is corrupt after record {last} (line/record {last}): {exc}", "")
