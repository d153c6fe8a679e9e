"""Timestamps from every export: ISO 8601 (with or without zone/fraction), US-locale portal dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# 9/20/2023 4:05:03 AM · 4/28/2021, 3:05:26.000 PM · 20/9/2023 16:05:03 (day first when month > 12)
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*([AaPp][Mm])?$"
)


def parse_time(value: object) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the value is missing or not a recognised time.

    Zone-less times are UTC: that is what the audit log and the portals write.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text[:4].isdigit() and len(text) >= 10 and text[4] == "-":
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
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
