"""The one parser of audit times: ISO 8601 (with or without zone, ``Z`` or fraction, 7-digit fractions
truncated to microseconds) and the portals' US-locale dates. Zone-less times are UTC: that is what the audit
log and the portals write.

Every package reads a record's time through it: the readers and the analysis (``parse_time``), the collector
and the evidence store (``epoch_seconds``), the findings, offline searches and the timeline
(``fields.record_time``). The vectorised JSON-lines path reads ISO 8601 with pandas and hands anything else
to the record-by-record path, which uses ``parse_time`` (tests/records pins the two to the same instants).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

# 9/20/2023 4:05:03 AM · 4/28/2021, 3:05:26.000 PM · 20/9/2023 16:05:03 (day first when month > 12)
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*([AaPp][Mm])?$"
)


def parse_time(value: object) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the value is missing or not a recognised time."""
    if isinstance(value, datetime):
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except (ValueError, OverflowError):  # an offset that moves it out of datetime's range
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text[:4].isdigit() and len(text) >= 10 and text[4] == "-":
        try:
            parsed = datetime.fromisoformat(text)
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            return None
    return _us_time(text)


def _us_time(text: str) -> datetime | None:
    match = _US.match(text)
    if match is None:
        return None
    month, day, year, hour, minute = (int(match.group(i)) for i in range(1, 6))
    second = int(match.group(6) or 0)
    fraction = match.group(7) or ""
    micro = int((fraction + "000000")[:6]) if fraction else 0
    ampm = (match.group(8) or "").upper()
    if month > 12 and day <= 12:
        month, day = day, month
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        return None


def epoch_seconds(value: object) -> int | None:
    """``parse_time`` as whole seconds since the epoch (the collector's and the evidence store's unit)."""
    if isinstance(value, str):
        return _epoch_of_text(value)
    when = parse_time(value)
    return None if when is None else int(when.timestamp())


@lru_cache(maxsize=65536)  # a collection sees the same second many times
def _epoch_of_text(text: str) -> int | None:
    when = parse_time(text)
    return None if when is None else int(when.timestamp())
