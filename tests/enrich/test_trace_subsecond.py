"""Message trace at sub-second precision (issue 12, point 7): the simulator's Received carries fractions of
a second on both endpoints, REST sends dates with them, and paging at a page boundary inside one second
loses no recipient on either backend (rows deduplicated on MessageTraceId + RecipientAddress)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from enrich_simdata import NOW, VirtualClock, offline_case, tenant_days_ago

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.rest import encode_parameter
from mia_bridge.enrich.api import EnrichOptions, enrich_case
from mia_bridge.enrich.message_trace import TraceSettings
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.mailflow import mailflow_of
from mia_bridge.sim.tenant import Tenant


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return tenant_days_ago(40)


def test_rest_sends_sub_second_dates() -> None:
    moment = datetime(2026, 11, 30, 12, 0, 7, 250_001, tzinfo=UTC)
    assert encode_parameter("EndDate", moment) == "2026-11-30T12:00:07.2500010"
    assert encode_parameter("EndDate", moment.replace(microsecond=0)) == "2026-11-30T12:00:07"


@pytest.mark.parametrize("backend", ["psrp", "rest"])
def test_received_has_sub_second_precision_on_both_endpoints(tenant: Tenant, backend: str) -> None:
    flow = mailflow_of(tenant)
    flow.use_clock(VirtualClock())
    newest = max(m.received for m in flow.messages.values() if m.transported)
    with sim_session(ConnectionSettings(backend=backend), tenant=tenant) as session:
        rows = session.backend.invoke(CmdletCall("Get-MessageTraceV2", {
            "StartDate": newest - timedelta(days=9), "EndDate": newest + timedelta(seconds=1),
            "ResultSize": 200})).output
    received = [r["Received"] for r in rows]
    assert received and all(isinstance(r, datetime) for r in received)
    assert any(r.microsecond for r in received)  # not cut to the second on the way


@pytest.mark.parametrize("backend", ["psrp", "rest"])
def test_paging_inside_one_second_loses_no_recipient(tenant: Tenant, backend: str, tmp_path: Path) -> None:
    clock = VirtualClock()
    flow = mailflow_of(tenant)
    flow.use_clock(clock)
    flow.now = NOW  # the service's reach counted from the client's now
    options = EnrichOptions(now=NOW, clock=clock, sleep=clock.sleep, trace=TraceSettings(result_size=2))
    with sim_session(ConnectionSettings(backend=backend), tenant=tenant) as session:
        result = enrich_case(session.backend, offline_case(tenant, tmp_path), options)
    checked = 0
    for message in result.accessed:
        truth = flow.get(message.key)
        if truth is None or not truth.transported or message.meta is None:
            continue
        assert set(message.meta.recipients) == set(truth.recipients), message.key
        checked += 1
    assert checked and any(len(t.recipients) > 2 for m in result.accessed if (t := flow.get(m.key)))
