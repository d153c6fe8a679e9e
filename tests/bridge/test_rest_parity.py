"""Both backends, same seeded tenant: identical records (names, types, values, order) and identical errors.

The PSRP side is the real pypsrp client against the WSMan simulator; the REST side is the real
httpx/MSAL client against the HTTPS simulator. Each gets its own copy of the same seeded tenant so
that server-side paging state (SessionId) does not leak between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.errors import CmdletError, CommandNotFoundError, MiaError
from mia_bridge.sim.backend import SimOptions, sim_session, tenant_for

CONN = ConnectionSettings()
SIM = SimOptions(records=1200, seed=7)


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, ExoBackend]]:
    tenants = {name: tenant_for(CONN, SIM) for name in ("psrp", "rest")}
    with (
        sim_session(replace(CONN, backend="psrp"), tenant=tenants["psrp"]) as psrp,
        sim_session(replace(CONN, backend="rest"), tenant=tenants["rest"]) as rest,
    ):
        assert rest.backend.name == "rest" and psrp.backend.name != "rest"
        yield {"psrp": psrp.backend, "rest": rest.backend}


def _window(backends: dict[str, ExoBackend]) -> tuple[datetime, datetime]:
    tenant = tenant_for(CONN, SIM)
    times = [datetime.fromisoformat(r["CreationTime"]).replace(tzinfo=UTC) for r in tenant.audit_records()]
    return min(times), max(times) + timedelta(seconds=1)


def _both(backends: dict[str, ExoBackend], call: CmdletCall) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return backends["psrp"].invoke(call).output, backends["rest"].invoke(call).output


def _assert_identical(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        assert left == right
        assert {k: type(v) for k, v in left.items()} == {k: type(v) for k, v in right.items()}


def test_search_unified_audit_log_large_set_is_identical(backends: dict[str, ExoBackend]) -> None:
    start, end = _window(backends)
    call = CmdletCall(
        "Search-UnifiedAuditLog",
        {
            "StartDate": start,
            "EndDate": end,
            "SessionId": "parity-1",
            "SessionCommand": "ReturnLargeSet",
            "ResultSize": 5000,
        },
    )
    psrp, rest = _both(backends, call)
    assert len(psrp) == 1200
    _assert_identical(psrp, rest)
    assert isinstance(rest[0]["CreationDate"], datetime)


def test_filtered_search_is_identical(backends: dict[str, ExoBackend]) -> None:
    start, end = _window(backends)
    call = CmdletCall(
        "Search-UnifiedAuditLog",
        {
            "StartDate": start,
            "EndDate": end,
            "Operations": ["MailItemsAccessed"],
            "RecordType": "ExchangeItemAggregated",
            "ResultSize": 100,
        },
    )
    psrp, rest = _both(backends, call)
    assert psrp
    _assert_identical(psrp, rest)


@pytest.mark.parametrize(
    "call",
    [
        CmdletCall("Get-MgSubscribedSku", {"All": True}),
        CmdletCall("Get-MgDomain", {"All": True}),
        CmdletCall("Get-MgServicePrincipal", {"All": True}),
        CmdletCall("Get-MgServicePrincipal", {"Filter": "displayName eq 'Microsoft Graph'"}),
        CmdletCall("Get-MgServicePrincipal", {"Top": 2}),
        CmdletCall("Get-AdminAuditLogConfig"),
        CmdletCall("Get-Mailbox", {"ResultSize": "Unlimited"}),
    ],
    ids=lambda c: f"{c.name}-{'-'.join(c.parameters)}",
)
def test_directory_and_licence_cmdlets_are_identical(backends: dict[str, ExoBackend], call: CmdletCall) -> None:
    psrp, rest = _both(backends, call)
    assert psrp
    _assert_identical(psrp, rest)


def test_app_role_assignments_of_every_service_principal_are_identical(backends: dict[str, ExoBackend]) -> None:
    principals = backends["rest"].invoke(CmdletCall("Get-MgServicePrincipal", {"All": True})).output
    total = 0
    for sp in principals:
        call = CmdletCall("Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": sp["Id"], "All": True})
        psrp, rest = _both(backends, call)
        _assert_identical(psrp, rest)
        total += len(rest)
    assert total >= 3


def test_licence_detection_sees_advanced_auditing_on_both(backends: dict[str, ExoBackend]) -> None:
    for backend in backends.values():
        skus = backend.invoke(CmdletCall("Get-MgSubscribedSku", {"All": True})).output
        plans = {p["ServicePlanName"] for s in skus for p in s["ServicePlans"]}
        assert "M365_ADVANCED_AUDITING" in plans


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (CmdletCall("Get-NoSuchCmdlet"), CommandNotFoundError),
        (CmdletCall("Get-MgDomain", {"DomainId": "nope.example"}), CmdletError),
        (CmdletCall("Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": "missing"}), CmdletError),
    ],
    ids=["unknown-cmdlet", "missing-domain", "missing-principal"],
)
def test_errors_map_to_the_same_class(backends: dict[str, ExoBackend], call: CmdletCall, error: type[MiaError]) -> None:
    raised: dict[str, type[BaseException]] = {}
    for name, backend in backends.items():
        with pytest.raises(error) as info:
            backend.invoke(call)
        raised[name] = type(info.value)
    assert raised["psrp"] is raised["rest"]
