"""Every reader module is imported and registered; timestamps of every export parse to UTC."""

from __future__ import annotations

import pkgutil
from datetime import UTC, datetime

import pytest

import mia_bridge.readers as readers_pkg
from mia_bridge.analysis.normalise import norm_ip, norm_message_id
from mia_bridge.readers import format_names
from mia_bridge.records.timestamps import parse_time

_HELPERS = {"base", "registry", "decoding", "values", "json_records", "auditdata_csv", "csv_records"}


def test_every_reader_module_is_registered() -> None:
    modules = {m.name for m in pkgutil.iter_modules(readers_pkg.__path__)} - _HELPERS
    registered = set(format_names())
    for module in modules:
        assert any(name.startswith(module) or module.startswith(name) for name in registered), module
    assert len(registered) == 9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-09-20T04:05:03", datetime(2023, 9, 20, 4, 5, 3, tzinfo=UTC)),
        ("2021-08-02T13:32:07.0000000Z", datetime(2021, 8, 2, 13, 32, 7, tzinfo=UTC)),
        ("2026-01-24T06:54:24.0000000Z ", datetime(2026, 1, 24, 6, 54, 24, tzinfo=UTC)),
        ("2024-05-01T10:00:00+02:00", datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)),
        ("9/20/2023 4:05:03 AM", datetime(2023, 9, 20, 4, 5, 3, tzinfo=UTC)),
        ("9/20/2023 12:05:03 AM", datetime(2023, 9, 20, 0, 5, 3, tzinfo=UTC)),
        ("4/28/2021, 3:05:26.000 PM", datetime(2021, 4, 28, 15, 5, 26, tzinfo=UTC)),
        ("20/9/2023 16:05:03", datetime(2023, 9, 20, 16, 5, 3, tzinfo=UTC)),
        ("", None),
        ("yesterday", None),
        ("13/13/2023 1:00:00 PM", None),
        (None, None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("[2A01:110:8068::5F1F]:36185", "2a01:110:8068::5f1f"), ("185.73.124.135:19823", "185.73.124.135"),
     ("2603:10b6:5:345::11", "2603:10b6:5:345::11"), ("::1", "::1"), (" 1.2.3.4 ", "1.2.3.4"), ("", None)],
)
def test_norm_ip(raw: str, expected: str | None) -> None:
    assert norm_ip(raw) == expected


def test_norm_message_id() -> None:
    assert norm_message_id(" <ABC@Example.COM> ") == "abc@example.com"
    assert norm_message_id("abc@example.com") == "abc@example.com"
    assert norm_message_id("<>") is None
