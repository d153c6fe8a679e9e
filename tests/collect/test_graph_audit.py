"""PROOF: ``--source graph-audit`` collects exactly what ``--source ual`` collects, over real HTTPS to the simulator.

Every test runs the real REST backend (httpx + MSAL) against the loopback Graph audit log query
routes; faults (failed/cancelled queries, throttling, expiring links, record-count limits) are
injected on the server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from collect_simdata import T0, ids, tenant_with, truth_ids

from mia_bridge.bridge.clouds import get_cloud
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.graph_audit import check_cloud
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.collect import AuditQuery, CollectOptions, collect
from mia_bridge.collect.graph_audit import QueryIds, collect_graph_query
from mia_bridge.collect.graph_options import GraphAuditOptions
from mia_bridge.errors import AccessDeniedError, BridgeTransportError, CollectError, ThrottledError, UsageError
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.rest_apps import GRAPH_ROLES, SimApp
from mia_bridge.sim.rest_faults import FaultKind, RestFault
from mia_bridge.sim.rest_server import RestSimServer
from mia_bridge.sim.rest_session import sim_backend
from mia_bridge.sim.tenant import Tenant

FAST = GraphAuditOptions(poll_initial_s=0.02, poll_max_s=0.2)
CONN = ConnectionSettings(backend="rest")


@contextmanager
def rest(tenant: Tenant, **server_args: Any) -> Iterator[tuple[RestBackend, RestSimServer]]:
    with RestSimServer(tenant, **server_args) as server, sim_backend(CONN, server) as backend:
        backend.retry.backoff_s = 0.01
        yield backend, server


def _query(days: int = 30, **filters: Any) -> AuditQuery:
    return AuditQuery("ual", T0, T0 + timedelta(days=days), **filters)


def _graph(**kwargs: Any) -> CollectOptions:
    return CollectOptions(source="graph-audit", graph=replace(FAST, **kwargs), check_ingestion=False)


def _without_annotation(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "@odata.type"}


@pytest.mark.parametrize(("distribution", "n"), [("uniform", 12_000), ("bursty", 12_000), ("uniform", 100_000)])
def test_graph_audit_collects_exactly_the_ual_record_set(tmp_path: Path, distribution: str, n: int) -> None:
    tenant = tenant_with(distribution, n)
    with rest(tenant) as (backend, server):
        server.audit.record_count_limit = 40_000  # below the documented 1,000,000: the 100k tenant must split
        graph = collect(backend, [_query()], tmp_path / "graph", _graph())
        ual = collect(backend, [_query()], tmp_path / "ual", CollectOptions(check_ingestion=False))
    got = read_records(tmp_path / "graph" / "evidence" / "ual.jsonl")
    want = read_records(tmp_path / "ual" / "evidence" / "ual.jsonl")
    assert graph.complete and ual.complete
    assert len(got) == len(want) == n
    assert ids(got) == ids(want) == truth_ids(tenant, T0, T0 + timedelta(days=30))
    # auditData as received: the UAL record plus the annotation Graph puts on it, nothing lost or changed
    by_id = {r["Id"]: r for r in want}
    assert all(_without_annotation(r) == by_id[r["Id"]] for r in got)
    assert verify_case(tmp_path / "graph").ok
    manifest = json.loads((tmp_path / "graph" / "manifest.json").read_text())
    assert manifest["collection"]["runs"][-1]["options"]["source"] == "graph-audit"
    if n > server.audit.record_count_limit:  # the limit was split around, never truncated
        assert any(w["status"] == "split" for w in graph.queries[0].windows)


def test_filters_map_to_the_query_and_match_the_ual_filters(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 6000)
    filters = {"operations": ("MailItemsAccessed", "MailboxLogin"), "user_ids": ("user3@contoso.com",
               "user4@contoso.com"), "record_types": ("ExchangeItemAggregated", "ExchangeItem")}
    with rest(tenant) as (backend, server):
        collect(backend, [_query(**filters)], tmp_path / "graph", _graph())
        collect(backend, [_query(**filters)], tmp_path / "ual", CollectOptions(check_ingestion=False))
        body = json.loads(next(r.body for r in server.requests if r.method == "POST" and "auditLog" in r.path))
    assert body["operationFilters"] == ["MailItemsAccessed", "MailboxLogin"]
    assert body["recordTypeFilters"] == ["exchangeItemAggregated", "exchangeItem"]
    assert body["userPrincipalNameFilters"] == ["user3@contoso.com", "user4@contoso.com"]
    assert body["filterStartDateTime"] == "2026-03-01T00:00:00Z"
    got = ids(read_records(tmp_path / "graph" / "evidence" / "ual.jsonl"))
    assert got and got == ids(read_records(tmp_path / "ual" / "evidence" / "ual.jsonl"))


def test_failed_and_cancelled_queries_are_searched_again(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 3000)
    with rest(tenant) as (backend, server):
        server.faults.add(RestFault(FaultKind.QUERY_FAILED, endpoint="audit-create"))
        server.faults.add(RestFault(FaultKind.QUERY_CANCELLED, endpoint="audit-create"))
        result = collect(backend, [_query()], tmp_path, _graph())
        assert server.audit.created == 3
    assert result.complete
    assert ids(read_records(tmp_path / "evidence" / "ual.jsonl")) == truth_ids(tenant, T0, T0 + timedelta(days=30))
    events = [json.loads(line) for line in (tmp_path / "state" / "ual.graph-queries.jsonl").read_text().splitlines()]
    assert [e.get("reason") for e in events if e["event"] == "dropped"] == ["failed", "cancelled"]


def test_a_tenant_serving_the_api_on_beta_only_is_asked_there(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 700)
    with rest(tenant) as (backend, server):
        server.audit.versions = ("beta",)
        result = collect(backend, [_query()], tmp_path, _graph())
        paths = [r.path for r in server.requests if "auditLog" in r.path]
    assert result.complete and len(read_records(tmp_path / "evidence" / "ual.jsonl")) == 700
    assert paths[0].startswith("/v1.0/") and all(p.startswith("/beta/") for p in paths[1:])


def test_the_daily_submission_quota_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    tenant = tenant_with("bursty", 3000)
    with rest(tenant) as (backend, server):
        server.audit.daily_submissions, server.audit.record_count_limit = 3, 1000
        began = time.monotonic()
        with pytest.raises(ThrottledError, match="asks to wait") as caught:
            collect(backend, [_query()], tmp_path, _graph())
        assert "rerun the same command later" in str(caught.value.hint)
        assert time.monotonic() - began < 60  # the hours-long Retry-After was not slept through
        assert server.audit.created == 3
    # what the three queries brought is committed: the rerun tomorrow resumes from there
    assert (tmp_path / "state" / "ual.journal.jsonl").read_text().count('"status"') >= 1


def test_records_repeated_across_pages_are_counted_not_kept_twice(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 5000, duplicate_rate=0.05)
    with rest(tenant) as (backend, _):
        result = collect(backend, [_query()], tmp_path, _graph(page_size=500))
    counts = result.queries[0].counts
    assert counts.unique == 5000 and counts.service_duplicates == 9 * 25
    assert ids(read_records(tmp_path / "evidence" / "ual.jsonl")) == truth_ids(tenant, T0, T0 + timedelta(days=30))


def test_a_window_that_keeps_failing_stops_with_a_clear_error(tmp_path: Path) -> None:
    with rest(tenant_with("uniform", 500)) as (backend, server):
        server.faults.add(RestFault(FaultKind.QUERY_FAILED, endpoint="audit-create", times=3))
        with pytest.raises(CollectError, match="did not succeed 3 times"):
            collect(backend, [_query()], tmp_path, _graph())


def test_throttling_concurrency_limit_and_expired_links_lose_nothing(tmp_path: Path) -> None:
    tenant = tenant_with("bursty", 9000)
    with rest(tenant) as (backend, server):
        server.audit.record_count_limit = 3000  # several windows, queried four at a time …
        server.audit.max_concurrent = 1  # … by a service that runs one query at a time
        server.audit.running_s = 0.6
        server.audit.daily_submissions = 1000
        # 7 refusals in a row: more than the client's 5 retries, so the collector itself waits and creates again
        server.faults.add(RestFault(FaultKind.THROTTLE, endpoint="audit-create", times=7, retry_after="0.05"))
        server.faults.add(RestFault(FaultKind.THROTTLE, endpoint="audit-status", times=2, retry_after="0.05"))
        server.faults.add(RestFault(FaultKind.EXPIRED_NEXT_LINK, endpoint="audit-records", match="skiptoken"))
        options = _graph(page_size=300)
        options.concurrency = 4
        result = collect(backend, [_query()], tmp_path, options)
        statuses = [r.status for r in server.requests if "auditLog" in r.path]
        assert server.faults.fired.count(FaultKind.THROTTLE) == 9
    assert result.complete
    assert statuses.count(429) >= 9  # the faults, plus any refusals of the one-at-a-time queue
    assert 400 in statuses  # the expired link, paged again
    got = read_records(tmp_path / "evidence" / "ual.jsonl")
    assert len(got) == len(ids(got)) == 9000
    assert ids(got) == truth_ids(tenant, T0, T0 + timedelta(days=30))


def test_one_second_over_the_record_limit_is_a_gap_not_a_silent_truncation(tmp_path: Path) -> None:
    tenant = tenant_with("pathological", 1000)  # 5,600 records in one second
    with rest(tenant) as (backend, server):
        server.audit.record_count_limit = 4000
        result = collect(backend, [_query()], tmp_path, _graph())
    assert not result.complete
    [gap] = result.queries[0].gaps
    assert gap.end - gap.start == timedelta(seconds=1)
    assert gap.received == 4000 and gap.cap == 4000
    assert len(read_records(tmp_path / "evidence" / "ual.jsonl")) == 1000 + 4000


def test_a_rerun_keeps_polling_the_same_query(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 4000)
    with rest(tenant) as (backend, server):
        server.audit.running_s = 1.0

        def interrupted(_seconds: float) -> None:
            raise KeyboardInterrupt

        options = _graph()
        with pytest.raises(KeyboardInterrupt):
            collect_graph_query(backend, _query(), tmp_path, options, None, sleep=interrupted)
        assert server.audit.created == 1
        [query_id] = QueryIds(tmp_path, "ual").current.values()
        result = collect(backend, [_query()], tmp_path, options)
        assert server.audit.created == 1  # no second search: the journalled query was polled to the end
    assert result.complete and result.queries[0].resumed
    assert query_id in result.queries[0].windows[0]["detail"]
    assert ids(read_records(tmp_path / "evidence" / "ual.jsonl")) == truth_ids(tenant, T0, T0 + timedelta(days=30))


def test_a_query_the_service_forgot_is_created_again(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 800)
    with rest(tenant) as (backend, server):
        (tmp_path / "state").mkdir()
        start, end = _query().start_s, _query().end_s
        (tmp_path / "state" / "ual.graph-queries.jsonl").write_text(
            json.dumps({"event": "created", "start": start, "end": end, "query_id": "gone"}) + "\n"
        )
        result = collect(backend, [_query()], tmp_path, _graph())
        assert server.audit.created == 1
    assert result.complete
    assert len(read_records(tmp_path / "evidence" / "ual.jsonl")) == 800


def test_without_the_audit_permission_the_service_refuses(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 100)
    app = SimApp(tenant.config.app_id, [], roles={"exo": ("Exchange.ManageAsApp",), "graph": GRAPH_ROLES})
    with RestSimServer(tenant) as server:
        assert server.app_files is not None
        server.apps[app.client_id.lower()] = replace(app, certificates=[server.app_files.certificate])
        with sim_backend(CONN, server) as backend, pytest.raises(AccessDeniedError, match=r"AuditLogsQuery\.Read\.All"):
            collect(backend, [_query()], tmp_path, _graph())


def test_a_per_service_permission_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tenant = tenant_with("uniform", 300)
    tenant.add_audit_records([{"Id": "sp-1", "CreationTime": "2026-03-02T00:00:00", "Operation": "FileAccessed",
                               "RecordType": 6, "UserId": "a@contoso.com", "Workload": "SharePoint"}])
    with RestSimServer(tenant) as server:
        assert server.app_files is not None
        server.apps[tenant.config.app_id.lower()] = SimApp(
            tenant.config.app_id, [server.app_files.certificate],
            roles={"exo": ("Exchange.ManageAsApp",), "graph": ("AuditLogsQuery-Exchange.Read.All",)},
        )
        with sim_backend(CONN, server) as backend, caplog.at_level(logging.WARNING):
            collect(backend, [_query()], tmp_path, _graph())
    assert "only per-service audit permissions (Exchange)" in caplog.text
    assert "sp-1" not in ids(read_records(tmp_path / "evidence" / "ual.jsonl"))


def test_refusals_are_clear() -> None:
    for name in ("gcchigh", "dod", "china"):
        with pytest.raises(UsageError, match="global service only"):
            check_cloud(get_cloud(name))
    check_cloud(get_cloud("gcc"))
    with rest(tenant_with("uniform", 10)) as (backend, _), pytest.raises(UsageError, match="names, not numbers"):
        collect(backend, [_query(record_types=("50",))], Path("/nonexistent-never-written"), _graph())


def test_the_psrp_backend_cannot_use_graph_audit(tmp_path: Path) -> None:
    from collect_simdata import psrp

    with psrp(tenant_with("uniform", 10)) as backend, pytest.raises(UsageError, match="needs --backend rest"):
        collect(backend, [_query()], tmp_path, _graph())


def test_records_links_must_stay_https_on_the_graph_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from mia_bridge.sim import rest_audit_routes

    with rest(tenant_with("uniform", 400)) as (backend, server):
        server.audit.not_started_s = server.audit.running_s = 0
        client = backend.audit_log_queries()
        created = client.create({"filterStartDateTime": "2026-03-01T00:00:00Z",
                                 "filterEndDateTime": "2026-04-01T00:00:00Z"})
        # the server hands out next-page links on the same host but over http: the token must not follow
        monkeypatch.setattr(rest_audit_routes.AuditRoutes, "_origin",
                            lambda self: server.url.replace("https://", "http://"))
        with pytest.raises(BridgeTransportError, match="not https"):
            list(client.record_pages(created.query_id, 100))
        assert not any(r.path.startswith("http:") for r in server.requests)
