"""Unknown parameters are refused as the real cmdlets refuse them (ParameterBindingException,
NamedParameterNotFound), by every simulated cmdlet and by the pipeline stages, also over PSRP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan

from mia_bridge.sim.registry import SimCmdletError, dispatch, registered_handlers
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import Tenant, TenantSession

MODEL = sorted(n for n, h in registered_handlers().items() if h.__module__.startswith("mia_bridge.sim.handlers"))
PASSWORD = "unknown-param-pw"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=100)


@pytest.fixture(scope="module")
def session(tenant: Tenant) -> TenantSession:
    c = tenant.config
    opened = tenant.open_session()
    dispatch(opened, "Connect-ExchangeOnline", {"AppId": c.app_id, "Organization": c.organization,
                                                "CertificateThumbprint": c.certificate_thumbprint})
    dispatch(opened, "Connect-MgGraph", {"ClientId": c.app_id, "TenantId": c.organization,
                                         "CertificateThumbprint": c.certificate_thumbprint})
    return opened


@pytest.mark.parametrize("cmdlet", MODEL)
def test_every_simulated_cmdlet_refuses_an_unknown_parameter(cmdlet: str, session: TenantSession) -> None:
    with pytest.raises(SimCmdletError) as err:
        dispatch(session, cmdlet, {"ResultSizeX": 5})
    assert err.value.error_id == f"NamedParameterNotFound,{cmdlet}"
    assert err.value.category == "InvalidArgument"
    assert err.value.exception_type == "System.Management.Automation.ParameterBindingException"
    assert err.value.message == "A parameter cannot be found that matches parameter name 'ResultSizeX'."


@pytest.fixture(scope="module")
def sim(tenant: Tenant) -> Iterator[SimServer]:
    with SimServer(tenant, auth="basic", password=PASSWORD) as server:
        yield server


def _pipeline(sim: SimServer, *stages: tuple[str, dict[str, object]]) -> PowerShell:
    c = sim.tenant.config
    wsman = WSMan("127.0.0.1", port=sim.port, ssl=False, auth="basic", username="mia", password=PASSWORD,
                  encryption="never")
    with wsman, RunspacePool(wsman) as pool:
        connect = PowerShell(pool)
        connect.add_cmdlet("Connect-ExchangeOnline").add_parameters(
            {"AppId": c.app_id, "Organization": c.organization, "CertificateThumbprint": c.certificate_thumbprint})
        connect.invoke()
        ps = PowerShell(pool)
        for name, params in stages:
            ps.add_cmdlet(name).add_parameters(params)
        ps.invoke()
        return ps


@pytest.mark.parametrize(("stage", "params", "error_id"), [
    ("Select-Object", {"Propertyy": ["Name"]}, "NamedParameterNotFound,Select-Object"),
    ("Select-Object", {"First": 1}, "SimulatorUnsupportedParameter,Select-Object"),
    ("ConvertTo-Json", {"AsArray": True}, "NamedParameterNotFound,ConvertTo-Json"),
])
def test_pipeline_stages_refuse_parameters_they_do_not_have(
    sim: SimServer, stage: str, params: dict[str, object], error_id: str
) -> None:
    ps = _pipeline(sim, ("Get-Mailbox", {}), (stage, params))
    assert ps.state == PSInvocationState.FAILED
    assert [e.fq_error for e in ps.streams.error] == [error_id]


def test_over_psrp_the_binding_error_has_the_powershell_shape(sim: SimServer) -> None:
    ps = _pipeline(sim, ("Search-UnifiedAuditLog", {"StartDate": "10/1/2026", "EndDate": "10/2/2026",
                                                    "Bogus": 1}))
    assert ps.state == PSInvocationState.FAILED
    [error] = ps.streams.error
    assert error.fq_error == "NamedParameterNotFound,Search-UnifiedAuditLog"
    assert error.reason == "ParameterBindingException" and error.category == 5  # ErrorCategory.InvalidArgument
