"""Remoting serializes output at depth 1 (serialization.cs), and ConvertTo-Json as Windows PowerShell 5.1
writes it: the unit rules, then the real thing over pypsrp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan

from mia_bridge.bridge.clixml import output_to_record
from mia_bridge.sim.convert_json import convert_to_json
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, is_string
from mia_bridge.sim.serialization_depth import at_depth, to_string
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig

PLAN = "Microsoft.Graph.PowerShell.Models.MicrosoftGraphServicePlanInfo"


def _sku() -> SimObject:
    plan = SimObject([PLAN, "System.Object"], {"ServicePlanName": "M365_ADVANCED_AUDITING", "ServicePlanId": "2f44"})
    return SimObject(
        ["Microsoft.Graph.PowerShell.Models.MicrosoftGraphSubscribedSku", "System.Object"],
        {
            "SkuPartNumber": "SPE_E5",
            "ConsumedUnits": 47,
            "Created": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "ServicePlans": [plan, plan],
            "Tags": ["a", "b"],
            "Unit": plan,
            "Plain": {"Enabled": 50, "Nested": {"x": 1}},
        },
    )


def test_depth_one_turns_nested_objects_into_their_tostring() -> None:
    got = at_depth(_sku()).properties
    # primitives of the top-level object are kept
    assert got["SkuPartNumber"] == "SPE_E5" and got["ConsumedUnits"] == 47
    assert got["Created"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # a container is kept, its complex items are written at depth 0: as their ToString(), the type name
    assert got["ServicePlans"] == [PLAN, PLAN]
    assert got["Tags"] == ["a", "b"]
    assert got["Unit"] == PLAN
    # a PSCustomObject-like value: PSObject.ToString() form
    assert got["Plain"] == "@{Enabled=50; Nested=System.Management.Automation.PSCustomObject}"


def test_depth_two_and_unlimited_keep_more() -> None:
    two = at_depth(_sku(), 2).properties
    assert [p.properties["ServicePlanName"] for p in two["ServicePlans"]] == ["M365_ADVANCED_AUDITING"] * 2
    assert at_depth(_sku(), None).properties["ServicePlans"][0].properties["ServicePlanId"] == "2f44"


def test_a_types_ps1xml_serialization_depth_overrides_the_default() -> None:
    inner = SimObject(["Inner", "System.Object"], {"Leaf": SimObject(["Leaf"], {"Value": 1})})
    outer = SimObject(["Outer", "System.Object"], {"Inner": inner})
    assert at_depth(outer).properties["Inner"] == "Inner"
    # SerializationDepth 2 on the top-level type: its properties get depth 1, their objects depth 0
    deeper = at_depth(outer, type_depths={"Outer": 2}).properties["Inner"]
    assert isinstance(deeper, SimObject) and deeper.properties["Leaf"] == "Leaf"
    # a type's own depth also applies where it is nested
    nested = at_depth(outer, type_depths={"Inner": 1}).properties["Inner"]
    assert isinstance(nested, SimObject) and nested.properties["Leaf"] == "Leaf"


def test_tostring_forms() -> None:
    assert to_string(SimObject(["T"], {}, "custom")) == "custom"
    assert to_string(datetime(2026, 3, 4, 17, 5, 6, tzinfo=UTC)) == "3/4/2026 5:05:06 PM"
    assert to_string([1, 2]) == "System.Object[]" and to_string(True) == "True"


def test_convert_to_json_as_windows_powershell_writes_it() -> None:
    one = convert_to_json(SimOutput(objects=[_sku()]), {"Depth": 10, "Compress": True})
    assert len(one.objects) == 1 and is_string(one.objects[0])
    text = one.objects[0].text or ""
    doc = json.loads(text)
    assert isinstance(doc, dict)  # one input object is not wrapped in an array (5.1 has no -AsArray)
    assert doc["ServicePlans"][0]["ServicePlanName"] == "M365_ADVANCED_AUDITING"
    assert '"Created":"\\/Date(1767323045000)\\/"' in text  # JavaScriptSerializer's DateTime
    two = convert_to_json(SimOutput(objects=[_sku(), _sku()]), {"Compress": True, "Depth": 10})
    assert len(json.loads(two.objects[0].text or "")) == 2
    assert convert_to_json(SimOutput(), {"Compress": True}).objects == []


def test_convert_to_json_truncates_beyond_depth_with_a_warning() -> None:
    out = convert_to_json(SimOutput(objects=[_sku()]), {"Compress": True})  # default -Depth 2
    doc = json.loads(out.objects[0].text or "")
    assert doc["Plain"]["Nested"] == {"x": 1}
    shallow = convert_to_json(SimOutput(objects=[_sku()]), {"Compress": True, "Depth": 1})
    doc = json.loads(shallow.objects[0].text or "")
    assert doc["ServicePlans"] == [PLAN, PLAN] and doc["Plain"]["Nested"] == "@{x=1}"
    assert shallow.warnings == ["Resulting JSON is truncated as serialization has exceeded the set depth of 1."]


def test_convert_to_json_escapes_like_javascriptserializer_and_rejects_unknown_parameters() -> None:
    hostile = SimObject(["T"], {"Subject": "<script>'&\"\n"})
    text = convert_to_json(SimOutput(objects=[hostile]), {"Compress": True}).objects[0].text or ""
    assert "<" not in text and "\\u003cscript\\u003e\\u0027\\u0026" in text
    assert json.loads(text)["Subject"] == "<script>'&\"\n"
    with pytest.raises(SimCmdletError) as err:
        convert_to_json(SimOutput(objects=[hostile]), {"AsArray": True})
    assert err.value.exception_type.endswith("ParameterBindingException")
    with pytest.raises(SimCmdletError):
        convert_to_json(SimOutput(objects=[hostile]), {"Depth": 101})


PASSWORD = "depth-test-pw"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(Tenant(TenantConfig(premium=True)), auth="basic", password=PASSWORD) as server:
        yield server


def _graph_pool(sim: SimServer) -> tuple[WSMan, RunspacePool]:
    wsman = WSMan("127.0.0.1", port=sim.port, ssl=False, auth="basic", username="mia", password=PASSWORD,
                  encryption="never")
    return wsman, RunspacePool(wsman)


def test_over_pypsrp_service_plans_arrive_as_type_names_unless_converted_to_json(sim: SimServer) -> None:
    config = sim.tenant.config
    wsman, pool = _graph_pool(sim)
    with wsman, pool:
        connect = PowerShell(pool)
        connect.add_cmdlet("Connect-MgGraph").add_parameters({
            "ClientId": config.app_id, "TenantId": config.organization,
            "CertificateThumbprint": config.certificate_thumbprint, "NoWelcome": True})
        connect.invoke()
        assert connect.state == PSInvocationState.COMPLETED
        plain = PowerShell(pool)
        plain.add_cmdlet("Get-MgSubscribedSku")
        plain.invoke()
        skus = [output_to_record(o) for o in plain.output]
        assert {p for s in skus for p in s["ServicePlans"]} == {PLAN}
        assert all(isinstance(s["PrepaidUnits"], str) for s in skus)
        converted = PowerShell(pool)
        converted.add_cmdlet("Get-MgSubscribedSku").add_cmdlet("ConvertTo-Json")
        converted.add_parameter("Depth", 10).add_parameter("Compress", True)
        converted.invoke()
        names = {p["ServicePlanName"] for s in json.loads(converted.output[0]) for p in s["ServicePlans"]}
        assert "M365_ADVANCED_AUDITING" in names
