"""The row loop shared by CSV readers whose columns are the record's own fields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Sniff
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.values import iter_csv_rows


def read_csv_records(
    src: DecodedInput, sniff: Sniff, fmt: str, to_record: Callable[[dict[str, str]], dict[str, Any] | str]
) -> Iterator[RawRecord | Quarantined]:
    """One RawRecord per readable row (``to_record`` maps the row), one Quarantined per unreadable one
    (``to_record`` returns a text instead of a record: why the row cannot be used)."""
    name = str(src.path)
    with src.open_text() as handle:
        for line, row, raw, error in iter_csv_rows(handle, sniff.delimiter or ","):
            if row is None:
                yield Quarantined(name, line, error or "unreadable row", raw)
                continue
            record = to_record(row)
            if isinstance(record, str):
                yield Quarantined(name, line, record, raw)
                continue
            yield RawRecord(data=record, source=name, line=line, fmt=fmt, raw=raw)
