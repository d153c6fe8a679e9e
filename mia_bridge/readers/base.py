"""What every reader shares: the input sniff, the record and quarantine values, the Reader interface.

A reader turns one input file into ``RawRecord`` values (an AuditData-shaped dict using the Management
Activity API field names) or ``Quarantined`` values (one unreadable record, never an exception). The bulk
formats also read column-wise (``raw_auditdata_json``, ``auditdata_csv``): there ``Irregular`` says "not
this way", and the caller reads the file record by record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO, TypeVar

from mia_bridge.readers.decoding import DecodedInput

# Flags a reader may attach to a record; analysis reports them per record.
FLAG_MESSAGE_IDS_LOST = "message_ids_lost"  # the export stringified FolderItems (System.Object[])
FLAG_NO_RAW_EVENT = "no_raw_event_data"  # Defender row without RawEventData: built from table columns


class Irregular(Exception):
    """The input is not regular enough for a columnar read: read it record by record (which quarantines
    precisely) instead."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read: ``data`` uses API AuditData field names (``Id``, ``CreationTime`` ...)."""

    data: dict[str, Any]
    source: str
    line: int  # 1-based line (text formats) or record number (JSON array)
    fmt: str
    raw: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record that could not be read; counted and written to quarantine.jsonl, never dropped."""

    source: str
    line: int | None
    reason: str
    raw: str

    def message(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.reason}"


Item = TypeVar("Item")


def records_from(
    items: Iterable[tuple[int, Item | None, str, str | None]],
    to_record: Callable[[Item], dict[str, Any] | str],
    *,
    source: str,
    fmt: str,
    unreadable: str = "unreadable record",
) -> Iterator[RawRecord | Quarantined]:
    """The loop every reader shares: ``(line, item, raw, error)`` → RawRecord, or Quarantined when the
    item could not be parsed (``error``) or ``to_record`` returns a text (why it cannot be used)."""
    for line, item, raw, error in items:
        if item is None:
            yield Quarantined(source, line, error or unreadable, raw)
            continue
        record = to_record(item)
        if isinstance(record, str):
            yield Quarantined(source, line, record, raw)
            continue
        yield RawRecord(data=record, source=source, line=line, fmt=fmt, raw=raw)


@dataclass(frozen=True)
class Sniff:
    """The start of an input, decoded, for format detection."""

    path: str
    head: str  # first few KB of decoded text
    delimiter: str | None = None  # for delimited text
    columns: frozenset[str] = field(default_factory=frozenset)  # header of delimited text
    header: tuple[str, ...] = ()
    first_json: dict[str, Any] | None = None  # first JSON object (JSON lines or array)
    json_kind: str | None = None  # "lines" | "array" | None


class Reader(ABC):
    """One input format. ``NAME`` is stable: it lands in the ``source_format`` column."""

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    PRIORITY: ClassVar[int] = 50  # lower is tried first (more specific formats first)

    @abstractmethod
    def matches(self, sniff: Sniff) -> bool:
        """True when the sniffed input is in this reader's format."""

    @abstractmethod
    def read(self, src: DecodedInput, sniff: Sniff) -> Iterator[RawRecord | Quarantined]:
        """Yield every record of the input, quarantining what cannot be read."""

    @staticmethod
    def _text(src: DecodedInput) -> TextIO:
        return src.open_text()
