"""Seeded audit records with chosen densities, and a pypsrp connection to a simulated tenant."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.sim.backend import SimSession, sim_session
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig

T0 = datetime(2026, 3, 1, tzinfo=UTC)
OPS = ("MailItemsAccessed", "MailboxLogin", "FileAccessed", "New-InboxRule")


def records(n: int, start: datetime, seconds: int, rng: random.Random, **fixed: Any) -> list[dict[str, Any]]:
    """``n`` AuditData dicts spread uniformly over ``[start, start + seconds)``."""
    out = []
    for _ in range(n):
        when = start + timedelta(seconds=rng.randrange(max(seconds, 1)))
        op = fixed.get("Operation") or rng.choice(OPS)
        out.append({
            "Id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"),
            "Operation": op,
            "RecordType": 50 if op == "MailItemsAccessed" else 2,
            "UserId": fixed.get("UserId") or f"user{rng.randrange(20)}@contoso.com",
            "ClientIPAddress": fixed.get("ClientIPAddress") or f"203.0.113.{rng.randrange(1, 250)}",
            "Workload": "Exchange",
        })
    return out


def tenant_with(distribution: str, n: int, *, seed: int = 7, days: int = 30, **config: Any) -> Tenant:
    """A tenant whose records follow ``uniform``, ``bursty`` (quiet + a dense minute) or ``pathological``
    (one second holding more than 5,000 records)."""
    rng = random.Random(seed)
    tenant = Tenant(TenantConfig(seed=seed, **config))
    span = days * 86400
    if distribution == "uniform":
        tenant.add_audit_records(records(n, T0, span, rng))
    elif distribution == "bursty":
        burst = n // 2
        tenant.add_audit_records(records(n - burst, T0, span, rng))
        tenant.add_audit_records(records(burst, T0 + timedelta(days=days // 3, hours=5), 60, rng))
    elif distribution == "pathological":
        tenant.add_audit_records(records(n, T0, span, rng))
        tenant.add_audit_records(records(5600, T0 + timedelta(days=days // 2), 1, rng))
    else:
        raise ValueError(distribution)
    return tenant


def ids(items: Any) -> set[str]:
    return {str(r["Id"]).lower() for r in items}


BACKENDS = ("psrp", "rest")


@contextmanager
def psrp(tenant: Tenant) -> Iterator[ExoBackend]:
    """A real pypsrp backend connected over HTTP on 127.0.0.1 to a PSRP server serving ``tenant``."""
    with psrp_session(tenant) as session:
        yield session.backend


@contextmanager
def sim_backend(tenant: Tenant, backend: str) -> Iterator[ExoBackend]:
    """``psrp`` (pypsrp over WSMan) or ``rest`` (httpx + MSAL over HTTPS) to a simulator serving ``tenant``."""
    if backend == "psrp":
        with psrp(tenant) as exo:
            yield exo
        return
    with sim_session(ConnectionSettings(backend=backend), tenant=tenant) as session:
        yield session.backend


@contextmanager
def psrp_session(tenant: Tenant) -> Iterator[SimSession]:
    """Like ``psrp`` but also yields the server (for fault injection: ``session.server.faults``)."""
    conn = ConnectionSettings(transport="http", auth="basic")
    with sim_session(conn, tenant=tenant) as session:
        yield session


def scenario_tenant(distribution: str, records: int, *, days: int = 10, seed: int = 3, **config: Any) -> Tenant:
    """The simulated tenant's own seeded scenario (benign) with the given density."""
    return build_tenant(TenantConfig(seed=seed, **config), scenario="benign", records=records,
                        distribution=distribution, start=T0, days=days)


def truth_ids(tenant: Tenant, start: datetime, end: datetime, **filters: Any) -> set[str]:
    return ids(tenant.query_truth(start=start, end=end, **filters))


def crosstalk_refetch_calls(windows: list[dict[str, Any]]) -> int:
    """The calls spent on windows that session-crosstalk failed (each fetched again): a default quirk whose draws
    depend on thread timing, so a calls bound counts them apart. Each such window must name its foreign row."""
    failed = [w for w in windows if w["status"] == "session_failed"]
    assert all("outside the window" in w["detail"] or "not matching" in w["detail"] for w in failed)
    return sum(int(w["calls"]) for w in failed)
