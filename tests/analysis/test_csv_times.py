"""The analysis CSVs write UTC times as ISO 8601 text; an item's time is its event's."""

from __future__ import annotations

import csv
from pathlib import Path

from mia_builders import folder, mia

from mia_bridge.analysis.api import AnalysisOptions, analyze_records, write_outputs


def _column(path: Path, name: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row[name] for row in csv.DictReader(handle)]


def test_whole_seconds_print_without_a_fraction_and_items_carry_their_events_time(tmp_path: Path) -> None:
    records = [mia("2024-05-01T10:00:00", folders=[folder("\\Inbox", "<a@x>", "<b@x>")]),
               mia("2024-05-01T09:59:59", folders=[folder("\\Inbox", "<c@x>")])]
    write_outputs(analyze_records(records, AnalysisOptions(), source="t"), tmp_path)
    assert _column(tmp_path / "events.csv", "creation_time") == ["2024-05-01T09:59:59Z", "2024-05-01T10:00:00Z"]
    assert _column(tmp_path / "items.csv", "creation_time") == [
        "2024-05-01T09:59:59Z", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"]


def test_a_fraction_of_a_second_shows_in_every_value_of_the_column(tmp_path: Path) -> None:
    records = [mia("2024-05-01T10:00:00.25", folders=[folder("\\Inbox", "<a@x>")]),
               mia("2024-05-01T10:00:01", folders=[folder("\\Inbox", "<b@x>")])]
    write_outputs(analyze_records(records, AnalysisOptions(), source="t"), tmp_path)
    expected = ["2024-05-01T10:00:00.250Z", "2024-05-01T10:00:01.000Z"]
    assert _column(tmp_path / "events.csv", "creation_time") == expected
    assert _column(tmp_path / "items.csv", "creation_time") == expected
