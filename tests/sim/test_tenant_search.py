"""Search-UnifiedAuditLog: limits, ordering, session paging, caps and the realism knobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mia_bridge.sim.registry import SimCmdletError, SimOutput, dispatch
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig, TenantSession

START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(days=30)
NAME = "Search-UnifiedAuditLog"
# The documented behaviour without the reported misbehaviour (sim/quirks.py; tests/sim/test_quirks.py has those).
KIND = TenantConfig(quirks=frozenset())


def connect(tenant: Tenant) -> TenantSession:
    session = tenant.open_session()
    cfg = tenant.config
    dispatch(session, "Connect-ExchangeOnline", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                                 "CertificateThumbprint": cfg.certificate_thumbprint})
    return session


def search(session: TenantSession, **params: Any) -> SimOutput:
    return dispatch(session, NAME, {"StartDate": START, "EndDate": END, **params})


def ids(out: SimOutput) -> list[str]:
    return [o.properties["Identity"] for o in out.objects]


def drain(session: TenantSession, session_id: str, command: str = "ReturnLargeSet", size: int = 5000,
          **params: Any) -> list[SimOutput]:
    pages = []
    while True:
        page = search(session, SessionId=session_id, SessionCommand=command, ResultSize=size, **params)
        if not page.objects:
            return pages
        pages.append(page)


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(KIND, records=12_000)


@pytest.fixture
def session(tenant: Tenant) -> TenantSession:
    return connect(tenant)


def test_output_object_shape(session: TenantSession) -> None:
    obj = search(session, ResultSize=1).objects[0]
    assert obj.type_names[0] == "Microsoft.Exchange.Management.SystemConfigurationTasks.UnifiedAuditLogEvent"
    p = obj.properties
    assert set(p) == {"RecordType", "CreationDate", "UserIds", "Operations", "AuditData", "ResultIndex",
                      "ResultCount", "Identity", "IsValid", "ObjectState"}
    data = json.loads(p["AuditData"])
    assert p["Identity"] == data["Id"] and p["Operations"] == data["Operation"] and p["UserIds"] == data["UserId"]
    assert p["CreationDate"] == datetime.fromisoformat(data["CreationTime"]).replace(tzinfo=UTC)
    assert p["ResultIndex"] == 1 and p["ResultCount"] == 12_000
    formatted = search(session, ResultSize=1, Formatted=True).objects[0].properties["AuditData"]
    assert "\n" in formatted and json.loads(formatted) == data


@pytest.mark.parametrize(("params", "fragment"), [
    ({"ResultSize": 5001}, "greater than the maximum allowed range of 5000"),
    ({"ResultSize": 0}, "less than the minimum"),
    ({"EndDate": START - timedelta(days=1)}, "end date must be later"),
    ({"RecordType": "NoSuchType"}, "AuditRecordType"),
    ({"SessionCommand": "ReturnEverything", "SessionId": "x"}, "UnifiedAuditSessionCommand"),
    ({"NoSuchParameter": 1}, "A parameter cannot be found that matches parameter name 'NoSuchParameter'"),
])
def test_invalid_parameters_fail_like_powershell(session: TenantSession, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SimCmdletError) as info:
        search(session, **params)
    assert fragment in info.value.message


def test_missing_dates(session: TenantSession) -> None:
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, NAME, {"StartDate": START})
    assert "missing mandatory parameters: EndDate" in info.value.message


def test_sessionless_is_newest_first_and_capped(tenant: Tenant, session: TenantSession) -> None:
    out = search(session, ResultSize=5000)
    dates = [o.properties["CreationDate"] for o in out.objects]
    assert len(dates) == 5000 and dates == sorted(dates, reverse=True)
    assert [o.properties["ResultIndex"] for o in out.objects] == list(range(1, 5001))
    newest = tenant.query_truth(start=START, end=END)[-5000:]
    assert set(ids(out)) == {r["Id"] for r in newest}
    assert len(search(session).objects) == 100  # default ResultSize


def test_filters_match_query_truth(tenant: Tenant, session: TenantSession) -> None:
    truth = tenant.truth
    assert truth is not None
    victim = truth.victims[0]
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"UserIds": victim.upper(), "Operations": ["MailItemsAccessed"]},
         {"user_ids": [victim], "operations": ["MailItemsAccessed"]}),
        ({"RecordType": "ExchangeItemAggregated"}, {"record_types": [50]}),
        ({"RecordType": 15}, {"record_types": ["AzureActiveDirectoryStsLogon"]}),
        ({"IPAddresses": truth.attacker_ips}, {"ip_addresses": truth.attacker_ips}),
        ({"FreeText": truth.attacker_app_ids[0].upper()}, {"free_text": truth.attacker_app_ids[0]}),
        ({"Operations": "consent to application"}, {"operations": ["Consent to application."]}),
        ({"ObjectIds": truth.federated_domains}, {"object_ids": truth.federated_domains}),
    ]
    for params, filters in cases:
        got = set(ids(search(session, ResultSize=5000, **params)))
        expected = {r["Id"] for r in tenant.query_truth(start=START, end=END, **filters)}
        assert got == expected and 0 < len(got) < 5000, params
    ip_hits = tenant.query_truth(start=START, end=END, ip_addresses=truth.attacker_ips)
    assert {a.record_id for a in truth.actions} == {r["Id"] for r in ip_hits}


def test_large_set_pages_every_record_once_unsorted(tenant: Tenant, session: TenantSession) -> None:
    pages = drain(session, "large-1", size=1000, Operations="MailItemsAccessed")
    got = [i for p in pages for i in ids(p)]
    truth = {r["Id"] for r in tenant.query_truth(start=START, end=END, operations=["MailItemsAccessed"])}
    assert len(got) == len(set(got)) == len(truth) and set(got) == truth
    indexes = [o.properties["ResultIndex"] for p in pages for o in p.objects]
    assert indexes == list(range(1, len(got) + 1))
    assert {o.properties["ResultCount"] for p in pages for o in p.objects} == {len(truth)}
    dates = [o.properties["CreationDate"] for p in pages for o in p.objects]
    assert dates != sorted(dates) and dates != sorted(dates, reverse=True)


def test_large_set_is_capped_at_50000_per_session() -> None:
    tenant = build_tenant(KIND, records=60_000, distribution="uniform")
    session = connect(tenant)
    got = [i for p in drain(session, "big") for i in ids(p)]
    assert len(got) == len(set(got)) == 50_000  # the rest is silently out of reach, as documented
    first = search(session, SessionId="big2", SessionCommand="ReturnLargeSet", ResultSize=10).objects[0]
    assert first.properties["ResultCount"] == 60_000


def test_preview_pages_are_sorted_and_capped_at_5000(session: TenantSession) -> None:
    pages = drain(session, "preview", command="ReturnNextPreviewPage", size=2000)
    dates = [o.properties["CreationDate"] for p in pages for o in p.objects]
    assert len(dates) == 5000 and dates == sorted(dates, reverse=True)


def test_switching_commands_limits_a_session_to_10000(session: TenantSession) -> None:
    total = 0
    for command in ["ReturnLargeSet"] * 2 + ["ReturnNextPreviewPage"] * 3:
        total += len(search(session, SessionId="switch", SessionCommand=command, ResultSize=5000).objects)
    assert total == 10_000


def test_old_paging_sessions_are_forgotten(tenant: Tenant, session: TenantSession) -> None:
    from mia_bridge.sim.handlers.unified_audit_log import MAX_PAGING_SESSIONS

    for i in range(MAX_PAGING_SESSIONS + 5):
        search(session, SessionId=f"many-{i}", SessionCommand="ReturnLargeSet", ResultSize=1)
    assert len(tenant.paging) == MAX_PAGING_SESSIONS and "many-0" not in tenant.paging
    assert f"many-{MAX_PAGING_SESSIONS + 4}" in tenant.paging


def test_duplicates_across_pages_lose_nothing() -> None:
    tenant = build_tenant(TenantConfig(duplicate_rate=0.05, quirks=frozenset()), records=8000)
    session = connect(tenant)
    got = [i for p in drain(session, "dups", size=1000) for i in ids(p)]
    assert len(got) > len(set(got))  # duplicates were served...
    assert set(got) == {r["Id"] for r in tenant.query_truth(start=START, end=END)}  # ...and nothing lost
    small = search(session, ResultSize=5000, Operations="MailboxLogin")
    unique = {r["Id"] for r in tenant.query_truth(start=START, end=END, operations=["MailboxLogin"])}
    assert len(unique) < 5000 and set(ids(small)) == unique


def test_transient_failures_do_not_advance_a_session() -> None:
    tenant = build_tenant(TenantConfig(transient_failure_rate=0.4, seed=5), records=6000)
    session = connect(tenant)
    got: list[str] = []
    failures = 0
    while True:
        try:
            page = search(session, SessionId="flaky", SessionCommand="ReturnLargeSet", ResultSize=500)
        except SimCmdletError as exc:
            failures += 1
            assert exc.category in ("ResourceBusy", "ResourceUnavailable", "LimitsExceeded")
            assert "retry" in exc.message.lower() or "try again" in exc.message.lower()
            continue
        if not page.objects:
            break
        got.extend(ids(page))
    assert failures > 0 and sorted(got) == sorted(r["Id"] for r in tenant.query_truth(start=START, end=END))


def test_result_count_quirk_of_2026() -> None:
    tenant = build_tenant(TenantConfig(result_count_equals_result_size=True), records=3000)
    out = search(connect(tenant), ResultSize=7)
    assert {o.properties["ResultCount"] for o in out.objects} == {7}


def test_ingestion_off_returns_nothing_but_a_bad_request_until_enabled() -> None:
    tenant = build_tenant(TenantConfig(ingestion_enabled=False), records=2000)
    session = connect(tenant)
    config = dispatch(session, "Get-AdminAuditLogConfig", {}).objects[0].properties
    assert config["UnifiedAuditLogIngestionEnabled"] is False
    off = search(session)
    assert off.objects == [] and len(off.errors) == 1  # non-terminating: "silently" empty
    error = off.errors[0]
    assert error.error_id.startswith("BadRequest") and "UnifiedAuditLogIngestionEnabled" in error.message
    # Where ingestion is off the tenant is dehydrated (sim/quirks.py): the change needs customization first.
    with pytest.raises(SimCmdletError, match="Enable-OrganizationCustomization"):
        dispatch(session, "Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True})
    assert dispatch(session, "Get-OrganizationConfig", {}).objects[0].properties["IsDehydrated"] is True
    dispatch(session, "Enable-OrganizationCustomization", {})
    assert dispatch(session, "Get-OrganizationConfig", {}).objects[0].properties["IsDehydrated"] is False
    changed = dispatch(session, "Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True})
    assert "60 minutes" in changed.warnings[0]
    # Read back late: the old value until the change has propagated (settings_delay_s).
    assert dispatch(session, "Get-AdminAuditLogConfig", {}).objects[0].properties[
        "UnifiedAuditLogIngestionEnabled"] is False
    assert len(search(session).objects) == 100
    again = dispatch(session, "Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True})
    assert "no settings" in again.warnings[0]


def test_call_counts_and_latency_knob() -> None:
    tenant = build_tenant(TenantConfig(latency_s=0.001), records=1000)
    session = connect(tenant)
    search(session)
    search(session)
    with pytest.raises(SimCmdletError):
        dispatch(session, "Get-NoSuchThing", {})
    assert tenant.call_counts["Search-UnifiedAuditLog"] == 2 and tenant.call_counts["Connect-ExchangeOnline"] == 1


def test_a_million_records_model_stays_compact_per_record() -> None:
    """Scale guard without timing: the store keeps numeric columns, not parsed dicts."""
    tenant = build_tenant(records=20_000)
    store = tenant.store
    assert store.times.dtype.kind == "i" and len(store.json) == 20_000
    assert all(isinstance(t, str) for t in store.json[:10])


def test_dates_as_text_like_the_docs_examples(tenant: Tenant, session: TenantSession) -> None:
    as_text = dispatch(session, NAME, {"StartDate": "10/01/2026", "EndDate": "2026-10-31 00:00:00z",
                                       "ResultSize": 5000, "Operations": "MailboxLogin"})
    typed = search(session, EndDate=datetime(2026, 10, 31, tzinfo=UTC), ResultSize=5000, Operations="MailboxLogin")
    assert ids(as_text) == ids(typed) and as_text.objects
    with pytest.raises(SimCmdletError, match=r"System\.DateTime"):
        dispatch(session, NAME, {"StartDate": "last tuesday", "EndDate": END})
