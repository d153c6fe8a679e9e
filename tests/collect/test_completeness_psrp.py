"""PROOF: through the real pypsrp client and the PSRP server on 127.0.0.1 (and, for the proofs marked
with ``backend``, also through the REST backend and its HTTPS simulator), the collected unique set
equals the simulated tenant's ground truth for uniform, bursty and pathological densities; service
duplicates are removed and counted; transient failures are retried."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest
from collect_simdata import (
    BACKENDS,
    T0,
    crosstalk_refetch_calls,
    ids,
    psrp_session,
    scenario_tenant,
    sim_backend,
    tenant_with,
    truth_ids,
)

from mia_bridge.collect import AuditQuery, CollectOptions, RetryPolicy, SessionPolicy, collect
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.store import read_records

FAST_RETRY = RetryPolicy(base_s=0.01, cap_s=0.05)


def _collect_all(
    tenant: object, out: Path, days: int, backend_name: str = "psrp", **opts: object
) -> tuple[object, set[str]]:
    query = AuditQuery("all", T0, T0 + timedelta(days=days))
    with sim_backend(tenant, backend_name) as backend:  # type: ignore[arg-type]
        result = collect(backend, [query], out, CollectOptions(retry=FAST_RETRY, **opts))  # type: ignore[arg-type]
    return result.by_name("all"), ids(read_records(result.by_name("all").path))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distribution", ["uniform", "bursty"])
def test_collected_set_equals_ground_truth(distribution: str, backend: str, tmp_path: Path) -> None:
    tenant = scenario_tenant(distribution, 5600)
    result, got = _collect_all(tenant, tmp_path, 10, backend)
    truth = truth_ids(tenant, T0, T0 + timedelta(days=10))
    assert len(truth) > 5000  # more than one call can return: windowing was needed
    assert got == truth
    assert result.counts.unique == len(truth) and not result.gaps  # type: ignore[attr-defined]
    refetch_calls = crosstalk_refetch_calls(result.windows)  # type: ignore[attr-defined]
    assert result.calls - refetch_calls <= math.ceil(1.2 * math.ceil(len(truth) / 5000)) + 2  # type: ignore[attr-defined]
    assert verify_case(tmp_path).ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_pathological_second_is_paged_by_a_session_when_allowed(backend: str, tmp_path: Path) -> None:
    tenant = scenario_tenant("pathological", 5700)
    result, got = _collect_all(tenant, tmp_path, 10, backend)
    assert got == truth_ids(tenant, T0, T0 + timedelta(days=10))
    assert not result.gaps  # type: ignore[attr-defined]
    assert any(w["mode"] == "session" and w["status"] == "complete" for w in result.windows)  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_calls_alone_never_claim_completeness(backend: str, tmp_path: Path) -> None:
    """With plain calls silently capped (the simulator's default), a short plain page proves nothing: the
    run without sessions reports its windows as unverified gaps instead of calling them complete."""
    tenant = scenario_tenant("pathological", 5700)
    result, got = _collect_all(tenant, tmp_path, 10, backend, sessions=SessionPolicy.NEVER)
    truth = ids(tenant.query_truth(start=T0, end=T0 + timedelta(days=10)))
    assert got < truth  # records were missed ...
    assert not result.complete and result.gaps  # type: ignore[attr-defined]  # ... and it says so
    assert any("silently capped" in gap.reason for gap in result.gaps)  # type: ignore[attr-defined]
    assert verify_case(tmp_path).ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_removed_and_counted_and_transient_failures_retried(backend: str, tmp_path: Path) -> None:
    tenant = scenario_tenant("bursty", 5600, duplicate_rate=0.03, transient_failure_rate=0.3)
    result, got = _collect_all(tenant, tmp_path, 10, backend)
    assert got == truth_ids(tenant, T0, T0 + timedelta(days=10))
    counts = result.counts  # type: ignore[attr-defined]
    assert counts.service_duplicates > 0
    assert counts.retrieved == counts.unique + counts.duplicates_removed
    if backend == "psrp":
        assert result.retries > 0  # type: ignore[attr-defined]
    else:  # the REST backend retries "server busy" itself, below the collector
        assert tenant.call_counts["Search-UnifiedAuditLog"] > result.calls  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
def test_filters_reach_the_service_and_match_its_semantics(backend: str, tmp_path: Path) -> None:
    tenant = scenario_tenant("uniform", 3000)
    user = next(iter(tenant.audit_records()))["UserId"]
    query = AuditQuery("mine", T0, T0 + timedelta(days=10), operations=("MailItemsAccessed", "MailboxLogin"),
                       user_ids=(user,))
    with sim_backend(tenant, backend) as exo:
        result = collect(exo, [query], tmp_path, CollectOptions(retry=FAST_RETRY))
    expected = truth_ids(tenant, query.start, query.end, operations=list(query.operations), user_ids=[user])
    assert ids(read_records(result.by_name("mine").path)) == expected


def test_concurrent_windows_use_their_own_connections(tmp_path: Path) -> None:
    tenant = tenant_with("uniform", 9000, days=10)
    # Two record types are two streams searched at once (one window of 9,000 is a single session).
    query = AuditQuery("all", T0, T0 + timedelta(days=10), record_types=("ExchangeItem", "ExchangeItemAggregated"))
    with psrp_session(tenant) as session:
        options = CollectOptions(retry=FAST_RETRY, concurrency=3)
        result = collect(session.backend, [query], tmp_path, options)
        connects = [name for name, _ in session.server.calls if name == "Connect-ExchangeOnline"]
    assert ids(read_records(result.by_name("all").path)) == truth_ids(tenant, query.start, query.end,
                                                                       record_types=[2, 50])
    assert len(connects) >= 2  # more than the caller's own connection served windows
