"""AuditQuery validation and parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mia_bridge.collect import AuditQuery
from mia_bridge.errors import UsageError

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_parameters_are_typed_and_one_stream_per_record_type() -> None:
    q = AuditQuery("q", T, T + timedelta(days=1), operations=["MailItemsAccessed"], record_types=("A", "B"),
                   user_ids="a@b.c", ip_addresses=("1.2.3.4",), free_text="x")
    streams = q.streams()
    assert [s["RecordType"] for s in streams] == ["A", "B"]
    assert streams[0]["Operations"] == ["MailItemsAccessed"] and streams[0]["UserIds"] == ["a@b.c"]
    assert q.end_s - q.start_s == 86400


@pytest.mark.parametrize(
    ("name", "start", "end", "needle"),
    [
        ("../evil", T, T + timedelta(hours=1), "file name"),
        ("q", T, T, "not after"),
        ("q", datetime(2026, 1, 1), T, "time zone"),
    ],
)
def test_bad_queries_are_usage_errors(name: str, start: datetime, end: datetime, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        AuditQuery(name, start, end)


def test_fingerprint_changes_with_parameters() -> None:
    a = AuditQuery("q", T, T + timedelta(days=1))
    b = AuditQuery("q", T, T + timedelta(days=1), user_ids=("x",))
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == AuditQuery("q", T, T + timedelta(days=1)).fingerprint()
