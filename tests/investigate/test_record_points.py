"""The report chart's bars (``report_model.record_points``) are counted in one pass over the records, from their
times kept as microseconds; each record falls in the bar the plain two-pass arithmetic puts it in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.investigate.report_model import record_points
from mia_bridge.records import fields as af
from mia_bridge.report.html import TIMELINE_BUCKETS, TimelinePoint


def _two_passes(records: Sequence[dict[str, Any]], markers: Sequence[datetime]) -> list[TimelinePoint]:
    """The plain version (the code before the one-pass change): the span first, then each record's bar."""
    times = [t for t in map(af.record_time, records) if t is not None]
    if not times:
        return []
    first, last = min(times), max(times)
    start, end = min([first, *markers]), max([last, *markers])
    span = max((end - start).total_seconds(), 60.0)
    counts = [0] * TIMELINE_BUCKETS
    for when in times:
        counts[min(int((when - start).total_seconds() / span * TIMELINE_BUCKETS), TIMELINE_BUCKETS - 1)] += 1
    points = [TimelinePoint(first, "", count=0), TimelinePoint(last, "", count=0)]
    points += [TimelinePoint(start + timedelta(seconds=span * (i + 0.5) / TIMELINE_BUCKETS), "", count=c)
               for i, c in enumerate(counts) if c]
    return points


BASE = datetime(2026, 10, 1, tzinfo=UTC)
offsets = st.integers(min_value=0, max_value=90 * 86400 * 10**6)  # microseconds over 90 days


def _record(micro: int) -> dict[str, Any]:
    return {"Id": str(micro), "CreationTime": (BASE + timedelta(microseconds=micro)).isoformat()}


@settings(max_examples=300, deadline=None)
@given(times=st.lists(offsets, max_size=80), marks=st.lists(offsets, max_size=3), junk=st.booleans())
def test_one_pass_gives_the_two_pass_bars(times: list[int], marks: list[int], junk: bool) -> None:
    records = [_record(t) for t in times] + ([{"Id": "x", "CreationTime": "not a time"}] if junk else [])
    markers = [BASE + timedelta(microseconds=m) for m in marks]
    assert record_points(records, markers) == _two_passes(records, markers)


def test_records_on_every_bar_boundary() -> None:
    """Exactly on the boundaries (where float rounding decides the bar) over spans of odd lengths."""
    for span_s in (60, 61, 3599, 86400 * 7 + 13, 86400 * 90 - 1):
        edges = [round(span_s * 10**6 * i / TIMELINE_BUCKETS) + d
                 for i in range(TIMELINE_BUCKETS + 1) for d in (-1, 0, 1)]
        records = [_record(max(0, min(e, span_s * 10**6))) for e in edges]
        assert record_points(records, []) == _two_passes(records, [])
        assert sum(p.count for p in record_points(records, [])) == len(records)


def test_records_without_any_finding_time_still_give_their_bars() -> None:
    """No finding with a time (a clean tenant): the chart scales to the records alone. ``min(first, *[])``
    raised TypeError here before."""
    points = record_points([_record(0), _record(3_600 * 10**6)], [])
    assert [p.count for p in points] == [0, 0, 1, 1]
