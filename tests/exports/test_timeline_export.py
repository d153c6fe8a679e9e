"""Timesketch timeline CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from mia_bridge.exports.timeline import TIMELINE_COLUMNS, write_timeline


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


def test_times_are_read_by_the_record_layer(tmp_path: Path) -> None:
    """The timeline dates a record as the analysis does: Z, offsets (as UTC) and the portals' US dates."""
    records = [
        {"Id": "z", "CreationTime": "2024-05-01T09:00:00Z"},
        {"Id": "offset", "CreationTime": "2024-05-01T11:00:01+02:00"},
        {"Id": "us", "CreationTime": "5/1/2024, 9:00:02.000 AM"},
        {"Id": "none"},
    ]
    path = tmp_path / "timeline.csv"
    assert write_timeline(path, records).undated == 1
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [(r["record_id"], r["datetime"]) for r in rows] == [
        ("z", "2024-05-01T09:00:00+00:00"), ("offset", "2024-05-01T09:00:01+00:00"),
        ("us", "2024-05-01T09:00:02+00:00"), ("none", ""),
    ]  # fmt: skip
