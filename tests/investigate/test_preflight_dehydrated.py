"""Issue 12 point 6: a dehydrated tenant needs Enable-OrganizationCustomization before
Set-AdminAuditLogConfig, and the new setting is read back only later; said as seen, over pypsrp."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.errors import CmdletError
from mia_bridge.investigate.preflight import ensure_ingestion
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.tenant import Tenant, TenantConfig


def _ensure(tenant: Tenant, delays: tuple[float, ...]) -> object:
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        return ensure_ingestion(session.backend, enable=True, confirm=lambda q: True, now=lambda: datetime.now(UTC),
                                readback_delays=delays, sleep=time.sleep)


def test_dehydrated_tenant_is_customized_first_then_enabled_and_read_back() -> None:
    tenant = Tenant(TenantConfig(ingestion_enabled=False, settings_delay_s=0.2))
    assert tenant.dehydrated
    with sim_session(ConnectionSettings(), tenant=tenant) as session, pytest.raises(CmdletError,
                                                                                            match="Enable-Organ"):
        session.backend.invoke(CmdletCall("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}))
    state = _ensure(tenant, (0.3,))
    assert state.dehydrated and state.customization_enabled_by_us  # type: ignore[attr-defined]
    assert state.enabled_now and "read back as True" in state.readback  # type: ignore[attr-defined]
    assert tenant.ingestion_enabled and not tenant.dehydrated


def test_a_change_not_yet_visible_is_reported_as_such() -> None:
    tenant = Tenant(TenantConfig(ingestion_enabled=False, quirks=frozenset(), settings_delay_s=60))
    state = _ensure(tenant, (0.01, 0.01))
    assert not state.customization_enabled_by_us  # type: ignore[attr-defined]  # not dehydrated: not needed
    assert state.enabled_now is False and "lag by minutes" in state.readback  # type: ignore[attr-defined]
    assert tenant.ingestion_enabled  # the change itself was made
