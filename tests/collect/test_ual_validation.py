"""Session validation on crafted ResultIndex sequences (what a misbehaving service sends).

The service side is played by a function returning ``CmdletResult``s, because the real failure
modes (restart, skipped page, over-delivery) are about exact index sequences; the end-to-end tests
go through pypsrp and the PSRP server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mia_bridge.bridge.backend import CmdletCall, CmdletResult
from mia_bridge.collect.ual import EndDateRule, fetch_plain, fetch_session
from mia_bridge.collect.windows import Window
from mia_bridge.errors import BridgeTimeoutError, IngestionDisabledError


def _row(i: int, index: int, count: int) -> dict[str, object]:
    audit = {"Id": f"00000000-0000-0000-0000-{i:012d}", "CreationTime": "2026-01-01T00:00:10"}
    return {"AuditData": json.dumps(audit), "ResultIndex": index, "ResultCount": count}


def _pages(*pages: list[tuple[int, int]], count: int = 0) -> Callable[[CmdletCall], CmdletResult]:
    queue = list(pages)

    def invoke(call: CmdletCall) -> CmdletResult:
        assert call.parameters["SessionCommand"] == "ReturnLargeSet"
        page = queue.pop(0) if queue else []
        return CmdletResult(call, [_row(i, idx, count) for i, idx in page])

    return invoke


def _page(first_id: int, first_index: int, n: int) -> list[tuple[int, int]]:
    return [(first_id + k, first_index + k) for k in range(n)]


W = Window(1767225600, 1767229200)  # 2026-01-01 00:00 to 01:00 UTC, around the rows' CreationTime


def test_continuous_session_completes() -> None:
    fetch = fetch_session(_pages(_page(0, 1, 5000), _page(5000, 5001, 10), count=5010), {}, W)
    assert fetch.status == "complete" and len(fetch.rows) == 5010 and fetch.calls == 2


def test_restarted_session_is_a_failed_window() -> None:
    fetch = fetch_session(_pages(_page(0, 1, 5000), _page(0, 1, 5000)), {}, W)
    assert fetch.status == "session_failed" and "restarted" in fetch.detail


def test_skipped_rows_are_a_failed_window() -> None:
    fetch = fetch_session(_pages(_page(0, 1, 5000), _page(6000, 6001, 100)), {}, W)
    assert fetch.status == "session_failed" and "never served" in fetch.detail


def test_more_unique_rows_than_announced_is_a_failed_window() -> None:
    fetch = fetch_session(_pages(_page(0, 1, 5000), _page(5000, 5001, 200), count=5100), {}, W)
    assert fetch.status == "session_failed" and "announced" in fetch.detail


def test_result_count_echoing_result_size_is_ignored() -> None:
    fetch = fetch_session(_pages(_page(0, 1, 5000), _page(5000, 5001, 7), count=5000), {}, W)
    assert fetch.status == "complete" and len(fetch.rows) == 5007


def test_fifty_thousand_rows_is_a_capped_session() -> None:
    pages = [_page(k * 5000, k * 5000 + 1, 5000) for k in range(10)]
    fetch = fetch_session(_pages(*pages), {}, W)
    assert fetch.status == "capped" and fetch.cap == 50000 and fetch.calls == 10


def test_unsorted_rows_and_pages_complete_when_every_index_arrives() -> None:
    """Quirk unsorted: ResultIndex in no order within a page, and the short last block served first."""
    first = list(reversed(_page(10000, 10001, 7)))
    middle = _page(0, 1, 5000)[::-1]
    last = _page(5000, 5001, 5000)[2500:] + _page(5000, 5001, 5000)[:2500]
    fetch = fetch_session(_pages(first, middle, last), {}, W)
    assert fetch.status == "complete" and len(fetch.rows) == 10007 and fetch.calls == 3


def test_a_row_outside_the_window_fails_the_page_and_is_not_kept() -> None:
    """Quirk session-crosstalk: a row of another search (here: another window) fails its page."""
    foreign = {"Id": "ffffffff-0000-0000-0000-000000000000", "CreationTime": "2026-02-01T00:00:00"}

    def invoke(call: CmdletCall) -> CmdletResult:
        rows = [_row(i, i + 1, 0) for i in range(99)] + [{"AuditData": json.dumps(foreign), "ResultIndex": 100}]
        return CmdletResult(call, rows)

    fetch = fetch_session(invoke, {}, W)
    assert fetch.status == "session_failed" and "outside the window" in fetch.detail
    assert fetch.rows == [] and fetch.rejected == 100


def test_a_row_not_matching_the_filters_fails_the_page() -> None:
    def invoke(call: CmdletCall) -> CmdletResult:
        audit = {"Id": "1", "CreationTime": "2026-01-01T00:00:10", "Operation": "FileAccessed", "RecordType": 6,
                 "UserId": "eve@contoso.com"}
        return CmdletResult(call, [{"AuditData": json.dumps(audit), "ResultIndex": 1}])

    for params in ({"Operations": ["MailItemsAccessed"]}, {"RecordType": "ExchangeItemAggregated"},
                   {"UserIds": ["bob@contoso.com"]}, {"ObjectIds": ["some-object"]}):
        fetch = fetch_session(invoke, params, W)
        assert fetch.status == "session_failed" and "not matching the filters" in fetch.detail, params
    same = {"Operations": ["fileaccessed."], "UserIds": ["EVE@contoso.com"]}  # as the service compares them
    assert fetch_session(invoke, same, W).status == "complete"


def test_a_short_plain_page_proves_nothing() -> None:
    """Quirk plain-cap: 120 rows for -ResultSize 5000 look like a complete window and are not."""
    def invoke(call: CmdletCall) -> CmdletResult:
        return CmdletResult(call, [_row(i, i + 1, 5000) for i in range(120)])

    fetch = fetch_plain(invoke, {}, W)
    assert fetch.status == "unverified" and len(fetch.rows) == 120


def test_cancelled_task_warning_is_a_retryable_timeout() -> None:
    def invoke(call: CmdletCall) -> CmdletResult:
        return CmdletResult(call, [], warnings=["The task was canceled."])

    with pytest.raises(BridgeTimeoutError) as info:
        fetch_plain(invoke, {}, W)
    assert info.value.retryable


def test_ingestion_off_warning_fails_fast() -> None:
    def invoke(call: CmdletCall) -> CmdletResult:
        return CmdletResult(call, [], warnings=["UnifiedAuditLogIngestionEnabled is False"])

    with pytest.raises(IngestionDisabledError):
        fetch_plain(invoke, {}, W)


def _service(*, end_inclusive: bool) -> tuple[Callable[[CmdletCall], CmdletResult], list[CmdletCall]]:
    """Three records, at 00:00:10, the window's end 00:00:20 and 00:00:30. A session over [10, 20] serves
    the 00:00:20 record (what an inclusive service does, and what another search's row looks like); a
    plain call answers as the service's EndDate rule says."""
    times = {1: "2026-01-01T00:00:10", 2: "2026-01-01T00:00:20", 3: "2026-01-01T00:00:30"}
    calls: list[CmdletCall] = []

    def row(i: int, index: int) -> dict[str, object]:
        return {"AuditData": json.dumps({"Id": f"00000000-0000-0000-0000-{i:012d}", "CreationTime": times[i]}),
                "ResultIndex": index, "ResultCount": 2}

    def invoke(call: CmdletCall) -> CmdletResult:
        calls.append(call)
        if "SessionCommand" in call.parameters:
            return CmdletResult(call, [row(1, 1), row(2, 2)])
        start, end = call.parameters["StartDate"].timestamp(), call.parameters["EndDate"].timestamp()
        served = [i for i, t in times.items()
                  if start <= datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp() < end + end_inclusive]
        return CmdletResult(call, [row(i, n + 1) for n, i in enumerate(served)])

    return invoke, calls


END_W = Window(1767225610, 1767225620)


@pytest.mark.parametrize("inclusive", [True, False])
def test_a_row_at_the_end_second_is_judged_by_asking_the_service_once(inclusive: bool) -> None:
    invoke, calls = _service(end_inclusive=inclusive)
    rule = EndDateRule()
    fetch = fetch_session(invoke, {}, END_W, end_rule=rule)
    assert rule.inclusive is inclusive and rule.learned is not None
    plain = [c for c in calls if "SessionCommand" not in c.parameters]
    assert len(plain) == 1 and plain[0].parameters["EndDate"].timestamp() == END_W.end
    assert fetch.calls == 2  # the probe is counted with the session's calls
    if inclusive:
        assert fetch.status == "complete" and len(fetch.rows) == 2
    else:  # then the row can only be another search's: the session fails, the window is fetched again
        assert fetch.status == "session_failed" and "end" in fetch.detail and fetch.rejected == 2
    # learned once: a second window asks nothing more
    fetch_session(invoke, {}, END_W, end_rule=rule)
    assert len([c for c in calls if "SessionCommand" not in c.parameters]) == 1


def test_without_a_rule_a_row_at_the_end_second_passes() -> None:
    invoke, _ = _service(end_inclusive=False)
    assert fetch_session(invoke, {}, END_W).status == "complete"
