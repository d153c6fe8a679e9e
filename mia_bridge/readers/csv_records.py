"""The row loop shared by CSV readers whose columns are the record's own fields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mia_bridge.readers.base import Quarantined, RawRecord, Sniff, records_from
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.values import iter_csv_rows


def read_csv_records(
    src: DecodedInput, sniff: Sniff, fmt: str, to_record: Callable[[dict[str, str]], dict[str, Any] | str]
) -> Iterator[RawRecord | Quarantined]:
    """One RawRecord per readable row (``to_record`` maps the row), one Quarantined per unreadable one
    (``to_record`` returns a text instead of a record: why the row cannot be used)."""
    with src.open_text() as handle:
        rows = iter_csv_rows(handle, sniff.delimiter or ",", src.max_record_bytes)
        yield from records_from(rows, to_record, source=str(src.path), fmt=fmt, unreadable="unreadable row")
