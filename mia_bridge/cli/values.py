"""Parsing of option values shared by several commands."""

from __future__ import annotations

from datetime import UTC, datetime

from mia_bridge.errors import UsageError


def parse_when(value: str, option: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC (as the audit log reads it)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option}: {value!r} is not a date or date-time", hint="use e.g. 2026-01-31 or 2026-01-31T13:00:00Z"
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def split_values(values: list[str] | None) -> tuple[str, ...]:
    """Repeatable options that also accept comma-separated lists."""
    found: list[str] = []
    for value in values or []:
        found.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(found)
