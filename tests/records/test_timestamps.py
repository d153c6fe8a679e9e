"""One time parser for every package: the spellings real exports use, one instant, never an exception; the
vectorised JSON-lines path reads the same instants, and the collector's epoch is the same parse."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from conftest import realdata_path
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.analysis.api import AnalysisOptions, analyze_files, analyze_records
from mia_bridge.evidence.store import parse_row
from mia_bridge.readers.base import RawRecord
from mia_bridge.readers.registry import open_input
from mia_bridge.records import fields
from mia_bridge.records.timestamps import epoch_seconds, parse_time

MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31),
                       timezones=st.just(UTC))  # fmt: skip
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _spellings(moment: datetime, offset: timezone) -> list[str]:
    """The ways exports write one instant: AuditData (no zone), Z, 7-digit fractions (Defender, Sentinel),
    an explicit offset, the portals' US dates (12- and 24-hour, with a comma and milliseconds)."""
    naive = moment.replace(tzinfo=None)
    seven = naive.strftime("%Y-%m-%dT%H:%M:%S.") + f"{naive.microsecond:06d}0"
    hour12 = naive.hour % 12 or 12
    ampm = "AM" if naive.hour < 12 else "PM"
    return [
        naive.isoformat(), naive.isoformat() + "Z", seven + "Z", seven, moment.astimezone(offset).isoformat(),
        f" {naive.isoformat()} ",
        f"{naive.month}/{naive.day}/{naive.year} {hour12}:{naive.minute:02d}:{naive.second:02d} {ampm}",
        f"{naive.month}/{naive.day}/{naive.year}, {hour12}:{naive.minute:02d}:{naive.second:02d}."
        f"{naive.microsecond // 1000:03d} {ampm}",
    ]


@given(MOMENTS, OFFSETS)
def test_every_spelling_is_the_same_instant_in_utc(moment: datetime, offset: timezone) -> None:
    for text in _spellings(moment, offset):
        parsed = parse_time(text)
        assert parsed is not None and parsed.tzinfo is UTC, text
        # US dates carry milliseconds at most (or none)
        whole = "/" in text and "." not in text
        expected = moment.replace(microsecond=0) if whole else moment
        if "/" in text and not whole:
            expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        assert parsed == expected, text
        assert epoch_seconds(text) == int(expected.timestamp()), text


@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A\d{4}-\d{2}-\d{2}[T ][0-9:.+\-Z]{0,25}\Z"),
                 st.from_regex(r"\A\d{1,2}/\d{1,2}/\d{4},? \d{1,2}:\d{2}(:\d{2})?( [AP]M)?\Z")))
def test_never_raises_and_is_utc_or_none(text: str) -> None:
    parsed = parse_time(text)
    assert parsed is None or parsed.tzinfo is UTC
    assert (epoch_seconds(text) is None) == (parsed is None)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                   datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))])
def test_an_offset_out_of_range_is_unreadable_not_an_error(value: object) -> None:
    assert parse_time(value) is None and epoch_seconds(value) is None


def test_datetimes_and_non_times() -> None:
    assert parse_time(datetime(2024, 5, 1, 9)) == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert parse_time(datetime(2024, 5, 1, 11, tzinfo=timezone(timedelta(hours=2)))) == datetime(2024, 5, 1, 9,
                                                                                                 tzinfo=UTC)
    for value in (None, 1714554000, 17.5, b"2024-05-01T09:00:00", [], {}):
        assert parse_time(value) is None and epoch_seconds(value) is None


@settings(max_examples=200)
@given(MOMENTS, OFFSETS)
def test_the_vectorised_parse_reads_the_same_instants(moment: datetime, offset: timezone) -> None:
    """analysis/columnar.py reads ISO 8601 with pandas (format ISO8601); the record-by-record path with
    parse_time: the same instant, to the microsecond."""
    for text in _spellings(moment, offset):
        if "/" in text:
            continue  # not ISO: the vectorised path hands such a file to the record-by-record path
        vectorised = pd.to_datetime(pd.Series([text.strip()]), utc=True, format="ISO8601")[0]
        assert vectorised.to_pydatetime() == parse_time(text), text


def _mia(rid: str, when: str) -> dict[str, object]:
    return {"Id": rid, "CreationTime": when, "Operation": "MailItemsAccessed", "RecordType": 50,
            "UserId": "a@contoso.com", "MailboxOwnerUPN": "a@contoso.com", "ClientIPAddress": "192.0.2.1",
            "OperationProperties": [{"Name": "MailAccessType", "Value": "Bind"}],
            "Folders": [{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": f"<{rid}@x>"}]}]}  # fmt: skip


def test_fast_and_record_paths_give_the_same_creation_times(tmp_path: Path) -> None:
    """A JSON-lines file in the vectorised path and the same records as dicts (parse_time): equal times.

    Whole seconds, with or without Z or an offset: the vectorised path holds seconds (a file with fractions
    is read record by record, with parse_time)."""
    rng = random.Random(11)
    records = []
    for number in range(300):
        moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 300 * 86400))
        spellings = _spellings(moment, timezone(timedelta(minutes=rng.randrange(-12 * 60, 13 * 60, 15))))
        records.append(_mia(f"r{number:03d}", spellings[rng.choice([0, 1, 4])]))
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    fast = analyze_files([path], AnalysisOptions()).records
    assert fast["raw_json"].isna().all(), "the file should have taken the vectorised path"
    slow = analyze_records(records, AnalysisOptions(), source="t").records
    times = dict(zip(slow["record_id"], slow["creation_time"], strict=True))
    assert len(times) == len(fast) == 300
    for rid, when in zip(fast["record_id"], fast["creation_time"], strict=True):
        assert when == times[rid], rid
        assert when.to_pydatetime() == parse_time(records[int(rid[1:])]["CreationTime"]), rid


def test_the_collector_stores_the_same_epoch() -> None:
    for text in ("2024-05-01T09:00:00", "2024-05-01T09:00:00.1234567Z", "2024-05-01T11:00:00+02:00"):
        row = parse_row(json.dumps({"Id": "a", "CreationTime": text}))
        assert row.time == epoch_seconds(text) == 1714554000
    assert parse_row(json.dumps({"Id": "a", "CreationTime": "soon"}), fallback_time="2024-05-01T09:00:00").time \
        == 1714554000


@pytest.mark.parametrize("parts", [
    ("sentinel-training-lab", "office_activity.csv"), ("sentinel-training-lab", "office_activity_inbox_rule.csv"),
    ("otrf-goldensaml", "OfficeActivityEvents.json"), ("otrf-goldensaml", "Microsoft365DefenderEvents.json"),
    ("msticpy", "demo_exchange_data.csv"),
])  # fmt: skip
def test_every_time_of_the_real_samples_parses(parts: tuple[str, str]) -> None:
    """Each reader's records from real exports: every CreationTime parses, as the vectorised parse does."""
    _, records = open_input(realdata_path(*parts))
    seen = 0
    for record in records:
        if not isinstance(record, RawRecord):
            continue
        value = record.data.get("CreationTime")
        parsed = fields.record_time(record.data)
        assert parsed is not None, f"{parts[-1]} line {record.line}: {value!r}"
        if isinstance(value, str) and value[:4].isdigit():
            assert pd.to_datetime(value.strip(), utc=True, format="ISO8601").floor("us").to_pydatetime() == parsed
        seen += 1
    assert seen > 0
