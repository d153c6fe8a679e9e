"""The collection quirks of sim/quirks.py: each one observable on its own, and the defaults."""

from __future__ import annotations

import json

import pytest
from test_tenant_search import connect, drain, ids, search

from mia_bridge.sim import quirks
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig


def only(*names: str, **config: object) -> Tenant:
    return build_tenant(TenantConfig(quirks=frozenset(names), **config), records=3000)  # type: ignore[arg-type]


def test_defaults_are_every_reported_misbehaviour_and_dehydration_follows_ingestion() -> None:
    assert TenantConfig().quirks == quirks.DEFAULT
    assert {quirks.PLAIN_CAP, quirks.RESULT_COUNT_ECHO, quirks.UNSORTED, quirks.SESSION_CROSSTALK,
            quirks.SESSION_EXPIRY} <= quirks.DEFAULT
    assert quirks.DEHYDRATED in TenantConfig(ingestion_enabled=False).quirks  # type: ignore[operator]
    assert TenantConfig(quirks=frozenset()).quirks == frozenset()


@pytest.mark.parametrize(("values", "expected"), [
    ([], quirks.DEFAULT),
    (["plain-cap"], {quirks.PLAIN_CAP}),
    (["plain-cap,unsorted"], {quirks.PLAIN_CAP, quirks.UNSORTED}),
    (["no-session-crosstalk"], quirks.DEFAULT - {quirks.SESSION_CROSSTALK}),
    (["default", "dehydrated"], quirks.DEFAULT | {quirks.DEHYDRATED}),
    (["none"], set()),
])
def test_command_line_values(values: list[str], expected: set[str]) -> None:
    assert quirks.parse(values) == expected


def test_unknown_quirk_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="plain-kap"):
        quirks.parse(["plain-kap"])
    with pytest.raises(ValueError, match="unknown"):
        TenantConfig(quirks=frozenset({"nope"}))


def test_plain_cap_returns_at_most_120_rows_whatever_result_size() -> None:
    tenant = only(quirks.PLAIN_CAP)
    out = search(connect(tenant), ResultSize=5000)
    assert len(out.objects) == quirks.PLAIN_CAP_ROWS < len(tenant)
    assert out.objects[0].properties["ResultCount"] == len(tenant)  # nothing says rows are missing
    assert len(search(connect(only()), ResultSize=5000).objects) == 3000


def test_result_count_echoes_result_size() -> None:
    out = search(connect(only(quirks.RESULT_COUNT_ECHO)), SessionId="s", SessionCommand="ReturnLargeSet",
                 ResultSize=777)
    assert {o.properties["ResultCount"] for o in out.objects} == {777}


def test_unsorted_rows_of_a_page_come_with_result_index_in_no_order() -> None:
    pages = drain(connect(only(quirks.UNSORTED)), "u", size=1000)
    indexes = [o.properties["ResultIndex"] for p in pages for o in p.objects]
    assert sorted(indexes) == list(range(1, 3001)) and indexes != sorted(indexes)


def test_session_crosstalk_mixes_rows_of_a_concurrent_search() -> None:
    tenant = only(quirks.SESSION_CROSSTALK, crosstalk_rate=1.0)
    a, b = connect(tenant), connect(tenant)
    search(b, SessionId="other", SessionCommand="ReturnLargeSet", ResultSize=10, Operations=["MailboxLogin"])
    page = search(a, SessionId="mine", SessionCommand="ReturnLargeSet", ResultSize=1000,
                  Operations=["MailItemsAccessed"])
    operations = {json.loads(o.properties["AuditData"])["Operation"] for o in page.objects}
    assert "MailboxLogin" in operations  # a row of the other search, under this session's ResultIndex
    assert sorted(o.properties["ResultIndex"] for o in page.objects) == list(range(1, 1001))
    alone = only(quirks.SESSION_CROSSTALK, crosstalk_rate=1.0)  # no concurrent search: nothing to mix in
    page = search(connect(alone), SessionId="x", SessionCommand="ReturnLargeSet", ResultSize=1000,
                  Operations=["MailItemsAccessed"])
    assert {json.loads(o.properties["AuditData"])["Operation"] for o in page.objects} == {"MailItemsAccessed"}


def test_session_expiry_silently_starts_the_search_again() -> None:
    tenant = only(quirks.SESSION_EXPIRY, session_expiry_rate=1.0)
    session = connect(tenant)
    first = search(session, SessionId="e", SessionCommand="ReturnLargeSet", ResultSize=1000)
    second = search(session, SessionId="e", SessionCommand="ReturnLargeSet", ResultSize=1000)
    assert ids(second) == ids(first)  # the same first page again, ResultIndex from 1
    assert min(o.properties["ResultIndex"] for o in second.objects) == 1


def test_session_expiry_after_idle_time() -> None:
    tenant = only(quirks.SESSION_EXPIRY, session_idle_s=0.0)
    session = connect(tenant)
    first = search(session, SessionId="i", SessionCommand="ReturnLargeSet", ResultSize=1000)
    assert ids(search(session, SessionId="i", SessionCommand="ReturnLargeSet", ResultSize=1000)) == ids(first)
    kind = connect(only())
    one = search(kind, SessionId="k", SessionCommand="ReturnLargeSet", ResultSize=1000)
    assert not set(ids(one)) & set(ids(search(kind, SessionId="k", SessionCommand="ReturnLargeSet",
                                                  ResultSize=1000)))

