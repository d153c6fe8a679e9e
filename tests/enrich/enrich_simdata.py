"""Helpers: small simulated compromised tenants, an offline case built from their records, a virtual clock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mia_bridge.analysis.api import AnalysisOptions, analyze_records, write_outputs
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.collect.retry import RetryPolicy
from mia_bridge.enrich.api import EnrichOptions, EnrichResult, enrich_case
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.mailflow import mailflow_of
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig

NOW = datetime.now(tz=UTC).replace(microsecond=0)
RECORDS = 1200


@dataclass
class VirtualClock:
    """Time that passes only when someone sleeps: rate limits are checked without waiting minutes."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def tenant_days_ago(days: int, seed: int = 7) -> Tenant:
    """A compromised tenant whose 30 days of records began ``days`` ago (the attack is at day 18)."""
    tenant = build_tenant(TenantConfig(seed=seed), records=RECORDS, start=NOW - timedelta(days=days))
    # The service's "now" for the 90-day reach is the tests' NOW (taken at import): otherwise it is the time
    # the mail flow is first built, minutes later in a long run, and a StartDate the client computed at NOW
    # + 5 min of margin would fall outside the reach.
    mailflow_of(tenant).now = NOW
    return tenant


def offline_case(tenant: Tenant, folder: Path) -> Path:
    """A case as mia analyze + findings leave it: analysis tables and the attacker context."""
    records = [r for r in tenant.audit_records() if r["Operation"] == "MailItemsAccessed"]
    write_outputs(analyze_records(records, AnalysisOptions(), source="sim"), folder / "analysis")
    truth = tenant.truth
    assert truth is not None
    context = {"ips": truth.attacker_ips, "apps": truth.attacker_app_ids, "users": [], "reasons": {}}
    (folder / "findings.json").write_text(json.dumps({"attacker_context": context}), encoding="utf-8")
    return folder


@dataclass
class Run:
    result: EnrichResult
    calls: list[tuple[str, dict[str, Any]]]


def run_enrich(tenant: Tenant, case: Path, clock: VirtualClock | None = None, **options: Any) -> Run:
    """``enrich_case`` through the real pypsrp client against the tenant's PSRP server on 127.0.0.1."""
    clock = clock or VirtualClock()

    mailflow_of(tenant).use_clock(clock)  # the service counts its rate on the same (virtual) time
    mailflow_of(tenant).now = NOW  # ... and its reach from the client's now (see tenant_days_ago)
    options.setdefault("retry", RetryPolicy(attempts=4, base_s=1.0, sleep=clock.sleep))
    opts = EnrichOptions(now=NOW, clock=clock, sleep=clock.sleep, **options)
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        result = enrich_case(session.backend, case, opts)
        calls = list(session.server.calls)
    return Run(result, calls)


__all__ = ["NOW", "Run", "VirtualClock", "offline_case", "run_enrich", "tenant_days_ago"]
