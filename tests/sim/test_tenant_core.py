"""Core tenant model: sessions gate Exchange cmdlets, Connect-ExchangeOnline validates, searches filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mia_bridge.bridge import Secret
from mia_bridge.sim.registry import SimCmdletError, dispatch
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig, TenantSession

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)


def connected(tenant: Tenant) -> TenantSession:
    session = tenant.open_session()
    cfg = tenant.config
    dispatch(session, "Connect-ExchangeOnline", {"AppId": cfg.app_id, "Organization": cfg.organization,
                                                 "CertificateThumbprint": cfg.certificate_thumbprint,
                                                 "ShowBanner": False})
    return session


def test_exchange_cmdlets_need_connect_first() -> None:
    tenant = build_tenant(records=500)
    session = tenant.open_session()
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Search-UnifiedAuditLog", {"StartDate": START, "EndDate": END})
    assert info.value.exception_type.endswith("CommandNotFoundException")
    assert session.connected_exchange is False


def test_connect_rejects_wrong_app_id_like_msal() -> None:
    tenant = Tenant(TenantConfig())
    session = tenant.open_session()
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Connect-ExchangeOnline", {"AppId": "00000000-0000-0000-0000-000000000001",
                                                     "Organization": tenant.config.organization,
                                                     "CertificateThumbprint": tenant.config.certificate_thumbprint})
    assert "AADSTS700016" in info.value.message
    assert info.value.category == "AuthenticationError"
    assert not session.connected_exchange


def test_connect_with_certificate_file_and_securestring() -> None:
    tenant = Tenant(TenantConfig())
    cfg = tenant.config
    session = tenant.open_session()
    base = {"AppId": cfg.app_id, "Organization": cfg.organization, "CertificateFilePath": cfg.certificate_path}
    with pytest.raises(SimCmdletError) as info:
        dispatch(session, "Connect-ExchangeOnline", {**base, "CertificatePassword": Secret("wrong-password")})
    assert "wrong-password" not in info.value.message
    dispatch(session, "Connect-ExchangeOnline", {**base, "CertificatePassword": Secret(cfg.certificate_password)})
    assert session.connected_exchange


def test_search_filters_and_default_result_size() -> None:
    tenant = build_tenant(TenantConfig(quirks=frozenset()), records=3000)
    session = connected(tenant)
    out = dispatch(session, "search-unifiedauditlog", {"startdate": START, "enddate": END})
    assert len(out.objects) == 100  # the documented default ResultSize
    rows = dispatch(session, "Search-UnifiedAuditLog",
                    {"StartDate": START, "EndDate": END, "Operations": "MailboxLogin", "ResultSize": 5000}).objects
    truth = tenant.query_truth(start=START, end=END, operations=["MailboxLogin"])
    assert 0 < len(rows) == len(truth) < 3000
    assert {r.properties["Identity"] for r in rows} == {t["Id"] for t in truth}
    assert all(r.properties["Operations"] == "MailboxLogin" for r in rows)


def _record(i: int, when: str = "2026-10-05T10:00:00", op: str = "MailboxLogin") -> dict[str, object]:
    return {"Id": f"00000000-0000-4000-8000-{i:012d}", "CreationTime": when, "Operation": op, "RecordType": 2,
            "UserId": f"user{i % 3}@contoso.com", "ClientIPAddress": f"198.51.100.{i % 7}"}


def test_crafted_records_and_tie_order() -> None:
    tenant = Tenant(TenantConfig())
    tenant.add_audit_records(_record(i) for i in range(10))
    tenant.add_audit_records([_record(10, "2026-10-05T09:59:59")])
    assert len(tenant) == 11
    truth = tenant.query_truth(start=START, end=END, user_ids=["USER1@contoso.com"])
    assert [r["Id"][-2:] for r in truth] == ["10", "01", "04", "07"]  # oldest first, then ingestion order
    out = dispatch(connected(tenant), "Search-UnifiedAuditLog", {"StartDate": START, "EndDate": END, "ResultSize": 11})
    got = [o.properties["Identity"][-2:] for o in out.objects]
    assert got == ["09", "08", "07", "06", "05", "04", "03", "02", "01", "00", "10"]  # newest, then last ingested
    assert tenant.query_truth(start=START, end=END, ip_addresses=["198.51.100.3:443"])  # a port is ignored


def test_records_without_the_common_fields_are_refused() -> None:
    tenant = Tenant(TenantConfig())
    bad = _record(1)
    del bad["Id"]
    with pytest.raises(ValueError, match="lacks Id"):
        tenant.add_audit_records([bad])
    assert len(tenant) == 0


@pytest.mark.parametrize("bad", [{"duplicate_rate": 1.5}, {"transient_failure_rate": -0.1}, {"latency_s": -1.0}])
def test_config_rejects_impossible_knobs(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="TenantConfig"):
        TenantConfig(**bad)  # type: ignore[arg-type]


def test_config_repr_hides_the_certificate_password() -> None:
    text = repr(TenantConfig(certificate_password="hunter2-secret"))
    assert "hunter2-secret" not in text and "certificate_password='***'" in text
