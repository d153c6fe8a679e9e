"""The PSRP server through pypsrp's real client over real HTTP on 127.0.0.1 (nothing mocked)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.serializer import TaggedValue
from pypsrp.wsman import WSMan

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.clixml import output_to_record
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, cmdlet
from mia_bridge.sim.server import SimServer

PASSWORD = "psrp-test-pw"


class TinyTenant:
    """The least a tenant must be for the registry (the real model is tested elsewhere)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def before_call(self, cmdlet: str, params: Mapping[str, Any]) -> None:
        pass


@cmdlet("Get-PsrpTestThing")
def _things(tenant: TinyTenant, params: dict[str, Any]) -> SimOutput:
    count = int(params.get("Count", 2))
    objects = [
        SimObject(
            ["Microsoft.Exchange.Test.Thing"],
            {
                "Name": f"thing{i}",
                "When": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
                "Tags": ["a", "b", f"c{i}"],
                "Index": i,
                "Big": 2**40 + i,
                "Ratio": 0.1 + i,
                "Enabled": True,
                "Missing": None,
                "Padding": "x" * int(params.get("Pad", 0)),
            },
        )
        for i in range(count)
    ]
    return SimOutput(
        objects=objects,
        warnings=["this is a warning"],
        errors=[SimCmdletError("one item failed", category="ObjectNotFound", error_id="ItemNotFound", target="it")],
    )


@cmdlet("Invoke-PsrpTestFailure")
def _fail(tenant: TinyTenant, params: dict[str, Any]) -> SimOutput:
    raise SimCmdletError(
        "The user isn't assigned to any management roles.",
        category="PermissionDenied",
        error_id="AccessDenied,Invoke-PsrpTestFailure",
    )


@cmdlet("Get-PsrpTestEcho")
def _echo(tenant: TinyTenant, params: dict[str, Any]) -> list[SimObject]:
    out = {}
    for key, value in params.items():
        out[key] = value.reveal() if isinstance(value, Secret) else value
    out["_types"] = {k: type(v).__name__ for k, v in params.items()}
    return [SimObject(["Test.Echo"], {"Echo": repr(out)})]


@cmdlet("Wait-PsrpTest")
def _wait(tenant: TinyTenant, params: dict[str, Any]) -> list[SimObject]:
    # Returns only after the test releases it, so the client must long-poll several Receives.
    tenant.release.wait(10)
    return [SimObject(["Test.Done"], {"Done": True})]


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD) as server:
        yield server


def _wsman(sim: SimServer, **kw: Any) -> WSMan:
    return WSMan(
        "127.0.0.1", port=sim.port, ssl=False, auth="basic", username="mia", password=PASSWORD, encryption="never", **kw
    )


def _run(pool: RunspacePool, name: str, **params: Any) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet(name)
    for key, value in params.items():
        ps.add_parameter(key, value)
    ps.invoke()
    return ps


def test_pool_opens_runs_and_closes(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = _run(pool, "Get-PsrpTestThing", Count=3)
        assert ps.state == PSInvocationState.COMPLETED
        assert len(ps.output) == 3
    assert sim.service.action_counts["Create"] == 1
    assert sim.service.action_counts["Delete"] == 1


def test_output_is_typed_after_psrpcore_reread(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = _run(pool, "Get-PsrpTestThing", Count=1)
    raw = ps.output[0]
    # pypsrp alone: dates are strings and the Exchange multi-valued property is not a list.
    assert isinstance(raw.adapted_properties["When"], str)
    assert not isinstance(raw.adapted_properties["Tags"], list)
    record = output_to_record(raw)
    assert record["When"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    assert record["Tags"] == ["a", "b", "c0"]
    assert record["Index"] == 0 and record["Big"] == 2**40
    assert record["Ratio"] == pytest.approx(0.1)
    assert record["Enabled"] is True and record["Missing"] is None


def test_warning_and_non_terminating_error(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = _run(pool, "Get-PsrpTestThing", Count=2)
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    assert len(ps.output) == 2
    assert [w.message for w in ps.streams.warning] == ["this is a warning"]
    [error] = ps.streams.error
    assert str(error) == "one item failed"
    assert error.fq_error == "ItemNotFound"


def test_terminating_error_fails_the_pipeline(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = _run(pool, "Invoke-PsrpTestFailure")
        assert ps.state == PSInvocationState.FAILED and ps.had_errors
        [error] = ps.streams.error
        assert "management roles" in str(error)
        assert error.fq_error == "AccessDenied,Invoke-PsrpTestFailure"
        # the pool survives a failed pipeline
        assert _run(pool, "Get-PsrpTestThing", Count=1).state == PSInvocationState.COMPLETED


def test_unknown_cmdlet_is_command_not_found(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = _run(pool, "Get-NoSuchCmdletAnywhere")
    assert ps.state == PSInvocationState.FAILED
    assert ps.streams.error[0].reason == "CommandNotFoundException"
    assert "is not recognized" in str(ps.streams.error[0])


def test_script_text_is_refused_like_no_language_jea(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_script("Get-Process")
        ps.invoke()
    assert ps.state == PSInvocationState.FAILED
    assert "no-language mode" in str(ps.streams.error[0])


def test_parameters_arrive_typed(sim: SimServer) -> None:
    import xml.etree.ElementTree as ET

    start = ET.Element("DT")
    start.text = "2024-05-06T07:08:09.5Z"
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-PsrpTestEcho")
        ps.add_parameter("StartDate", start)
        ps.add_parameter("Operations", ["MailItemsAccessed", "Send"])
        ps.add_parameter("ResultSize", 5000)
        ps.add_parameter("Formatted", True)
        ps.add_parameter("Confirm", False)
        ps.add_parameter("Present")  # a switch without a value
        ps.invoke()
    assert ps.state == PSInvocationState.COMPLETED
    _, params = sim.calls[-1]
    assert params["StartDate"] == dt.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=dt.UTC)
    assert params["Operations"] == ["MailItemsAccessed", "Send"]
    assert params["ResultSize"] == 5000 and type(params["ResultSize"]) is int
    assert params["Formatted"] is True and params["Confirm"] is False and params["Present"] is True


def test_secure_string_parameter_is_decrypted_on_the_server(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        pool.exchange_keys()
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-PsrpTestEcho").add_parameter("CertificatePassword", TaggedValue("SS", "s3cr3t p@ss"))
        ps.invoke()
    assert ps.state == PSInvocationState.COMPLETED
    _, params = sim.calls[-1]
    assert isinstance(params["CertificatePassword"], Secret)
    assert params["CertificatePassword"].reveal() == "s3cr3t p@ss"


def test_duplicate_parameter_is_a_binding_error(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-PsrpTestEcho").add_parameter("UserIds", "a").add_parameter("userids", "b")
        ps.invoke()
    assert ps.state == PSInvocationState.FAILED
    assert ps.streams.error[0].fq_error.startswith("ParameterAlreadyBound")


def test_select_object_after_the_cmdlet(sim: SimServer) -> None:
    with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-PsrpTestThing").add_parameter("Count", 2)
        ps.add_cmdlet("Select-Object").add_parameter("Property", ["Name", "Index"])
        ps.invoke()
    assert [output_to_record(o) for o in ps.output] == [{"Name": "thing0", "Index": 0}, {"Name": "thing1", "Index": 1}]


def test_large_output_spans_several_receives() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD, max_envelope_kb=64) as sim:
        with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
            receives_before = sim.service.action_counts["Receive"]
            # ~600 objects of ~1.3 kB each: far more than one 64 kB envelope.
            ps = _run(pool, "Get-PsrpTestThing", Count=600, Pad=1000)
            receives = sim.service.action_counts["Receive"] - receives_before
        assert ps.state == PSInvocationState.COMPLETED
        records = [output_to_record(o) for o in ps.output]
        assert [r["Index"] for r in records] == list(range(600))
        assert all(len(r["Padding"]) == 1000 for r in records)
        assert receives >= 10


def test_one_object_larger_than_an_envelope_is_reassembled() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD, max_envelope_kb=16) as sim:
        with _wsman(sim) as wsman, RunspacePool(wsman) as pool:
            ps = _run(pool, "Get-PsrpTestThing", Count=1, Pad=200_000)
        assert output_to_record(ps.output[0])["Padding"] == "x" * 200_000
        assert sim.service.action_counts["Receive"] > 10


def test_slow_cmdlet_makes_the_client_long_poll() -> None:
    tenant = TinyTenant()
    with SimServer(tenant, auth="basic", password=PASSWORD) as sim:
        with _wsman(sim, operation_timeout=1) as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_cmdlet("Wait-PsrpTest")
            ps.begin_invoke()
            ps.poll_invoke()  # nothing yet: OperationTimeout fault, swallowed by pypsrp
            assert ps.state == PSInvocationState.RUNNING
            tenant.release.set()
            ps.end_invoke()
        assert ps.state == PSInvocationState.COMPLETED
        assert output_to_record(ps.output[0]) == {"Done": True}


def test_unknown_session_configuration_is_a_wsman_fault(sim: SimServer) -> None:
    from pypsrp.exceptions import WSManFaultError

    with _wsman(sim) as wsman, pytest.raises(WSManFaultError) as info:
        RunspacePool(wsman, configuration_name="NoSuchEndpoint").open()
    assert info.value.code == 0x8033803B
    assert "NoSuchEndpoint" in str(info.value.reason)


def test_server_config_and_shell_state(sim: SimServer) -> None:
    with _wsman(sim) as wsman:
        wsman.update_max_payload_size()  # WSMan Get of winrm/config
        assert wsman.max_envelope_size == 500 * 1024
        with RunspacePool(wsman) as pool:
            assert pool.is_alive(timeout=5)


def test_stopping_a_running_pipeline() -> None:
    tenant = TinyTenant()
    with SimServer(tenant, auth="basic", password=PASSWORD) as sim:
        with _wsman(sim, operation_timeout=1) as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_cmdlet("Wait-PsrpTest")
            ps.begin_invoke()
            ps.stop()  # Signal powershell/signal/ctrl_c
            assert ps.state == PSInvocationState.STOPPED
            tenant.release.set()
            assert _run(pool, "Get-PsrpTestThing", Count=1).state == PSInvocationState.COMPLETED
        assert sim.service.action_counts["Signal"] >= 1
