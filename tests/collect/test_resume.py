"""Resume: Ctrl-C, a torn journal and evidence tail, and a dropped connection (through pypsrp) all
end in the same record set as an uninterrupted run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from collect_simdata import T0, ids, psrp_session, scenario_tenant, tenant_with, truth_ids

from mia_bridge.collect import AuditQuery, CollectOptions, QueryResult, RetryPolicy, SessionPolicy, collect
from mia_bridge.errors import BridgeError, UsageError
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.direct import DirectSimBackend

FAST = RetryPolicy(base_s=0.01, cap_s=0.05)
QUERY = AuditQuery("all", T0, T0 + timedelta(days=30))


class StopAfter:
    """Progress that presses Ctrl-C after ``n`` windows."""

    def __init__(self, n: int) -> None:
        self.n = n

    def query_started(self, name: str, total_seconds: int, done_seconds: int) -> None:
        pass

    def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt

    def query_finished(self, name: str, result: QueryResult) -> None:
        pass


def _options(**kw: object) -> CollectOptions:
    settings: dict[str, object] = {"retry": FAST, "concurrency": 2, **kw}
    return CollectOptions(**settings)  # type: ignore[arg-type]


def _run(tenant: object, out: Path, progress: object = None, **kw: object) -> set[str]:
    backend = DirectSimBackend(tenant)  # type: ignore[arg-type]
    with backend:
        result = collect(backend, [QUERY], out, _options(**kw), progress)  # type: ignore[arg-type]
    return ids(read_records(result.by_name("all").path))


@pytest.mark.parametrize("compress", [False, True])
def test_ctrl_c_then_rerun_gives_the_uninterrupted_set(tmp_path: Path, compress: bool) -> None:
    tenant = tenant_with("bursty", 60_000)  # more than one session returns: several windows
    truth = truth_ids(tenant, QUERY.start, QUERY.end)
    with pytest.raises(KeyboardInterrupt):
        _run(tenant, tmp_path / "case", StopAfter(3), compress=compress)
    journal = (tmp_path / "case" / "state" / "all.journal.jsonl").read_text().splitlines()
    assert 3 <= len(journal) < 20
    resumed = _run(tenant, tmp_path / "case", compress=compress)
    assert resumed == truth == _run(tenant, tmp_path / "straight", compress=compress)
    assert verify_case(tmp_path / "case").ok


def test_torn_tail_from_a_crash_is_cut_and_refetched(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 60_000)
    case = tmp_path / "case"
    with pytest.raises(KeyboardInterrupt):
        _run(tenant, case, StopAfter(2))
    evidence = case / "evidence" / "all.jsonl"
    with evidence.open("a") as fh:  # a fetch that was being written when the process died
        fh.write('{"Id":"half-written-record", "Creation')
    with (case / "state" / "all.journal.jsonl").open("a") as fh:
        fh.write('{"stream": 0, "start"')
    assert _run(tenant, case) == truth_ids(tenant, QUERY.start, QUERY.end)
    assert "half-written" not in evidence.read_text()
    assert verify_case(case).ok


def test_rerun_with_different_parameters_is_refused(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 100)
    _run(tenant, tmp_path)
    other = AuditQuery("all", T0, T0 + timedelta(days=29))
    with DirectSimBackend(tenant) as backend, pytest.raises(UsageError, match="different parameters"):
        collect(backend, [other], tmp_path, _options())


def test_dropped_connection_through_pypsrp_is_reconnected(tmp_path: Path) -> None:
    tenant = scenario_tenant("bursty", 5600)

    class DropOnce(StopAfter):
        def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None:
            server.faults.drop = 1

    # Two record types: two streams, so a window is still to come after the first one is done.
    query = AuditQuery("all", QUERY.start, QUERY.end, record_types=("ExchangeItem", "ExchangeItemAggregated"))
    with psrp_session(tenant) as session:
        server = session.server
        result = collect(session.backend, [query], tmp_path, _options(concurrency=1, sessions=SessionPolicy.AUTO),
                         DropOnce(0))
    assert ids(read_records(result.by_name("all").path)) == truth_ids(tenant, QUERY.start, QUERY.end,
                                                                       record_types=[2, 50])
    assert result.by_name("all").retries >= 1


def test_connection_lost_for_good_then_rerun_resumes_to_the_same_set(tmp_path: Path) -> None:
    tenant = scenario_tenant("bursty", 5600)

    class DropForever(StopAfter):
        def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None:
            server.faults.drop = 10_000

    opts = CollectOptions(sessions=SessionPolicy.AUTO, concurrency=1,
                          retry=RetryPolicy(attempts=2, base_s=0.01, cap_s=0.02))
    query = AuditQuery("all", QUERY.start, QUERY.end, record_types=("ExchangeItem", "ExchangeItemAggregated"))
    with psrp_session(tenant) as session:
        server = session.server
        with pytest.raises(BridgeError):
            collect(session.backend, [query], tmp_path, opts, DropForever(0))
        server.faults.drop = 0
    assert (tmp_path / "state" / "all.journal.jsonl").read_text().strip()
    with psrp_session(tenant) as session:
        result = collect(session.backend, [query], tmp_path, opts)
    assert result.by_name("all").resumed
    assert ids(read_records(result.by_name("all").path)) == truth_ids(tenant, QUERY.start, QUERY.end,
                                                                       record_types=[2, 50])
    assert verify_case(tmp_path).ok
