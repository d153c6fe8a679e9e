"""Timesketch timeline CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from mia_bridge.exports.timeline import TIMELINE_COLUMNS, parse_creation_time, write_timeline


def test_timeline_sorted_labelled_and_keeps_undated(tmp_path: Path) -> None:
    records = [
        {"Id": "b", "CreationTime": "2024-05-02T10:00:00", "Operation": "New-InboxRule", "UserId": "eve@x",
         "ClientIP": "198.51.100.7:5000"},
        {"Id": "a", "CreationTime": "2024-05-01T09:00:00", "Operation": "MailItemsAccessed", "UserId": "bob@x",
         "ClientIPAddress": "203.0.113.5", "OperationProperties": [{"Name": "MailAccessType", "Value": "Sync"}]},
        {"Id": "a", "CreationTime": "2024-05-01T09:00:00", "Operation": "MailItemsAccessed"},
        {"Id": "c", "CreationTime": "not a date", "Operation": "Odd"},
    ]  # fmt: skip
    path = tmp_path / "timeline.csv"
    stats = write_timeline(path, records, searches_by_id={"a": ["mia", "mia"]}, findings_by_id={"b": ["Inbox rule"]})
    assert stats.rows == 3 and stats.undated == 1
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    assert TIMELINE_COLUMNS[:3] == ("message", "datetime", "timestamp_desc")
    assert [r["record_id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["datetime"] == "2024-05-01T09:00:00+00:00"
    assert rows[0]["message"] == "bob@x: MailItemsAccessed [Sync] from 203.0.113.5"
    assert rows[0]["searches"] == "mia" and rows[1]["findings"] == "Inbox rule"
    assert rows[2]["datetime"] == ""


def test_parse_creation_time() -> None:
    assert parse_creation_time("2024-05-01T09:00:00Z") == parse_creation_time("2024-05-01T09:00:00")
    assert parse_creation_time(None) is None
