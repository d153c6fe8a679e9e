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


def test_spilled_runs_merge_to_the_same_file_as_one_sort(tmp_path: Path) -> None:
    """Past ``spill_rows`` the rows go to sorted temporary runs, merged stably: byte for byte the file of one
    in-memory sort (ties in time keep the order read, undated rows stay last in their order, duplicates once)."""
    import random

    rng = random.Random(7)
    records = []
    for n in range(400):
        when = f"2024-05-{rng.randint(1, 3):02d}T{rng.randint(9, 10):02d}:00:00" if n % 17 else "never"
        records.append({"Id": f"r{n}", "CreationTime": when, "Operation": "MailItemsAccessed", "UserId": f"u{n}@x"})
        if n % 50 == 0:
            records.append(dict(records[-1]))  # a second copy of a record: written once
    whole, spilled = tmp_path / "whole.csv", tmp_path / "spilled.csv"
    a = write_timeline(whole, records, searches_by_id={"r3": ["mia"]})
    b = write_timeline(spilled, iter(records), searches_by_id={"r3": ["mia"]}, spill_rows=7)
    assert a == b and a.rows == 400 and a.undated == 24
    assert spilled.read_bytes() == whole.read_bytes()
    times = [r["datetime"] for r in csv.DictReader(whole.open(encoding="utf-8"))]
    assert times[:a.rows - a.undated] == sorted(times[:a.rows - a.undated]) and not any(times[a.rows - a.undated:])
