"""The tenant model served over real PSRP: pypsrp's unmodified client on 127.0.0.1, a compromised
scenario, and a whole responder session (connect, page every record, Graph licence check)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.serializer import TaggedValue
from pypsrp.wsman import WSMan

from mia_bridge.bridge.clixml import output_to_record
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import Tenant

PASSWORD = "tenant-psrp-test-pw"
START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(days=30)


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=3000)


@pytest.fixture(scope="module")
def sim(tenant: Tenant) -> Iterator[SimServer]:
    with SimServer(tenant, auth="basic", password=PASSWORD) as server:
        yield server


def _pool(sim: SimServer) -> tuple[WSMan, RunspacePool]:
    wsman = WSMan("127.0.0.1", port=sim.port, ssl=False, auth="basic", username="mia", password=PASSWORD,
                  encryption="never")
    return wsman, RunspacePool(wsman)


def _open(pool: RunspacePool) -> RunspacePool:
    pool.exchange_keys()  # SecureString parameters need the session key
    return pool


def _dt(moment: datetime) -> ET.Element:
    """A typed UTC DateTime (pypsrp sends an ``ET.Element`` as is)."""
    element = ET.Element("DT")
    element.text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    return element


def _run(pool: RunspacePool, name: str, **params: Any) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet(name)
    for key, value in params.items():
        ps.add_parameter(key, _dt(value) if isinstance(value, datetime) else value)
    ps.invoke()
    return ps


def _errors(ps: PowerShell) -> str:
    return " ".join(str(e) for e in ps.streams.error)


def _connect(pool: RunspacePool, tenant: Tenant) -> PowerShell:
    cfg = tenant.config
    return _run(pool, "Connect-ExchangeOnline", AppId=cfg.app_id, Organization=cfg.organization,
                CertificateFilePath=cfg.certificate_path,
                CertificatePassword=TaggedValue("SS", cfg.certificate_password), ShowBanner=False)


def test_a_responder_session_over_psrp(sim: SimServer, tenant: Tenant) -> None:
    wsman, pool = _pool(sim)
    with wsman, pool:
        _open(pool)
        connected = _connect(pool, tenant)
        assert connected.state == PSInvocationState.COMPLETED, _errors(connected)
        info = output_to_record(_run(pool, "Get-ConnectionInformation").output[0])
        assert info["State"] == "Connected" and info["Organization"] == tenant.config.organization
        config = output_to_record(_run(pool, "Get-AdminAuditLogConfig").output[0])
        assert config["UnifiedAuditLogIngestionEnabled"] is True
        # Page the whole month with one ReturnLargeSet session: every record once, typed.
        got: list[dict[str, Any]] = []
        while True:
            ps = _run(pool, "Search-UnifiedAuditLog", StartDate=START, EndDate=END, SessionId="resp-1",
                      SessionCommand="ReturnLargeSet", ResultSize=1000)
            assert ps.state == PSInvocationState.COMPLETED, _errors(ps)
            if not ps.output:
                break
            got.extend(output_to_record(o) for o in ps.output)
        assert sorted(r["ResultIndex"] for r in got) == list(range(1, 3001))  # in no particular order (unsorted)
        assert {r["Identity"] for r in got} == {r["Id"] for r in tenant.audit_records()}
        first = got[0]
        assert isinstance(first["CreationDate"], datetime) and first["CreationDate"].tzinfo is not None
        assert json.loads(first["AuditData"])["Id"] == first["Identity"]
        # The attacker's Graph reads, found by app id as Sparrow searches them.
        truth = tenant.truth
        assert truth is not None
        reads = _run(pool, "Search-UnifiedAuditLog", StartDate=START, EndDate=END, Operations=["MailItemsAccessed"],
                     FreeText=truth.attacker_app_ids[0], ResultSize=5000)
        read_ids = {
            item["InternetMessageId"]
            for o in reads.output
            for folder in json.loads(output_to_record(o)["AuditData"])["Folders"]
            for item in folder["FolderItems"]
        }
        assert read_ids == truth.read_message_ids
        # Graph: the licence check.
        mg = _run(pool, "Connect-MgGraph", ClientId=tenant.config.app_id, TenantId=tenant.config.organization,
                  CertificateThumbprint=tenant.config.certificate_thumbprint, NoWelcome=True)
        assert mg.state == PSInvocationState.COMPLETED, _errors(mg)
        # Remoting serializes at depth 1: the service plans inside a SKU arrive as their ToString() text.
        skus = [output_to_record(o) for o in _run(pool, "Get-MgSubscribedSku").output]
        assert skus and all(
            plan == "Microsoft.Graph.PowerShell.Models.MicrosoftGraphServicePlanInfo"
            for s in skus for plan in s["ServicePlans"]
        )
        assert "M365_ADVANCED_AUDITING" not in json.dumps(skus, default=str)
        # ConvertTo-Json as a second pipeline command (typed parameters, no script) brings them back flat.
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-MgSubscribedSku").add_cmdlet("ConvertTo-Json").add_parameter("Depth", 10)
        ps.add_parameter("Compress", True)
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED, _errors(ps)
        assert len(ps.output) == 1  # one string for the whole input, as ConvertTo-Json writes it
        plans = [p["ServicePlanName"] for s in json.loads(ps.output[0]) for p in s["ServicePlans"]]
        assert "M365_ADVANCED_AUDITING" in plans
    assert tenant.call_counts["Connect-ExchangeOnline"] >= 1 and tenant.call_counts["Search-UnifiedAuditLog"] >= 4


def test_wrong_app_and_missing_connection_fail_like_powershell(sim: SimServer, tenant: Tenant) -> None:
    wsman, pool = _pool(sim)
    with wsman, pool:
        _open(pool)
        early = _run(pool, "Search-UnifiedAuditLog", StartDate=START, EndDate=END)
        assert early.had_errors and "is not recognized as the name of a cmdlet" in _errors(early)
        bad = _run(pool, "Connect-ExchangeOnline", AppId="11111111-2222-3333-4444-555555555555",
                   Organization=tenant.config.organization,
                   CertificateThumbprint=tenant.config.certificate_thumbprint)
        assert bad.had_errors and "AADSTS700016" in _errors(bad)
        wrong_password = _run(pool, "Connect-ExchangeOnline", AppId=tenant.config.app_id,
                              Organization=tenant.config.organization,
                              CertificateFilePath=tenant.config.certificate_path,
                              CertificatePassword=TaggedValue("SS", "not-the-password"))
        assert wrong_password.had_errors and "not-the-password" not in _errors(wrong_password)
