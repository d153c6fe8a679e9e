"""The analysis CSVs write UTC times as ISO 8601 text; an item's time is its event's."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from mia_builders import folder, mia

from mia_bridge.analysis.api import AnalysisOptions, analyze_records, write_outputs
from mia_bridge.analysis.outputs import _time_text


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


@settings(deadline=None, max_examples=60)
@given(seconds=st.lists(st.one_of(st.none(), st.integers(1_500_000_000, 1_500_000_020)), max_size=40),
       fraction=st.sampled_from([0, 250_000, 1]), split=st.integers(0, 40))
def test_times_formatted_once_per_distinct_value_read_as_each_value_alone(
        seconds: list[int | None], fraction: int, split: int) -> None:
    """``_time_text`` formats each distinct time once and takes the text for every row (a time repeats on each of
    its event's items): the text is the one each value would get alone, nulls stay null, chunks included."""
    micros = [None if s is None else s * 1_000_000 + (fraction if i % 3 == 0 else 0) for i, s in enumerate(seconds)]
    column = pa.chunked_array([micros[:split], micros[split:]], pa.timestamp("us", tz="UTC"))
    unit = "s" if fraction == 0 or not any(m is not None and m % 1_000_000 for m in micros) else \
        "ms" if fraction == 250_000 else "us"
    digits = {"s": 0, "ms": 3, "us": 6}[unit]

    def alone(value: int | None) -> str | None:
        if value is None:
            return None
        moment = datetime.fromtimestamp(value // 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return moment + (f".{value % 1_000_000:06d}"[:digits + 1] if digits else "") + "Z"

    assert _time_text(column).to_pylist() == [alone(m) for m in micros]
