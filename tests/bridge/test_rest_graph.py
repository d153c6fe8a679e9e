"""Graph over the REST backend: paging, -All/-Top semantics, throttling, permissions, SDK-shaped records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.clouds import get_cloud
from mia_bridge.bridge.graph import to_powershell
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.bridge.rest_auth import AppCredential
from mia_bridge.bridge.rest_http import RetryPolicy
from mia_bridge.errors import AccessDeniedError, BridgeTransportError, CmdletError, ThrottledError
from mia_bridge.sim.rest_faults import FaultKind, RestFault
from mia_bridge.sim.rest_server import RestSimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig

SP_COUNT = 7


def _tenant() -> Tenant:
    tenant = Tenant(TenantConfig())
    tenant.directory.service_principals = [
        {"Id": f"sp-{i}", "AppId": f"app-{i}", "DisplayName": f"App {i}", "KeyCredentials": [], "Tags": []}
        for i in range(SP_COUNT)
    ]
    tenant.directory.app_role_assignments = [
        {"Id": f"a-{i}", "AppRoleId": "r", "PrincipalId": "sp-1", "ServicePrincipalId": "sp-1"} for i in range(5)
    ]
    tenant.directory.domains = [{"Id": "contoso.onmicrosoft.com", "AuthenticationType": "Managed"}]
    return tenant


@pytest.fixture(scope="module")
def server() -> Iterator[RestSimServer]:
    with RestSimServer(_tenant(), graph_page_size=3) as srv:
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def exo(server: RestSimServer, sleeps: list[float]) -> Iterator[RestBackend]:
    server.faults.clear()
    assert server.app_files is not None
    backend = RestBackend(
        cloud=get_cloud("worldwide").with_loopback(server.url),
        organization=server.organization,
        credential=AppCredential(server.tenant.config.app_id, server.app_files.pem_path),
        ca_bundle=str(server.ca_path),
        retry=RetryPolicy(max_retries=2, backoff_s=0.01, sleep=sleeps.append),
    )
    with backend:
        yield backend


def _graph_gets(server: RestSimServer, since: int) -> list[str]:
    return [r.path for r in server.requests[since:] if r.path.startswith("/v1.0/")]


def test_all_follows_every_page(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    rows = exo.invoke(CmdletCall("Get-MgServicePrincipal", {"All": True})).output
    assert [r["Id"] for r in rows] == [f"sp-{i}" for i in range(SP_COUNT)]
    paths = _graph_gets(server, since)
    assert len(paths) == 3 and "$skiptoken=" in paths[1]


def test_without_all_only_the_first_page_comes_back(exo: RestBackend) -> None:
    """The Graph SDK's behaviour: no -All, one page."""
    assert len(exo.invoke(CmdletCall("Get-MgServicePrincipal")).output) == 3


def test_top_stops_after_n_items_across_pages(server: RestSimServer, exo: RestBackend) -> None:
    rows = exo.invoke(CmdletCall("Get-MgServicePrincipal", {"Top": 5})).output
    assert [r["Id"] for r in rows] == ["sp-0", "sp-1", "sp-2", "sp-3", "sp-4"]


def test_filter_and_item_id_reach_graph(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    rows = exo.invoke(CmdletCall("Get-MgServicePrincipal", {"Filter": "displayName eq 'App 4'", "All": True})).output
    assert [r["AppId"] for r in rows] == ["app-4"]
    one = exo.invoke(CmdletCall("Get-MgServicePrincipal", {"ServicePrincipalId": "sp-2"})).output
    assert one == [{"Id": "sp-2", "AppId": "app-2", "DisplayName": "App 2", "KeyCredentials": [], "Tags": []}]
    paths = _graph_gets(server, since)
    assert "$filter=displayName%20eq%20%27App%204%27" in paths[0]
    assert paths[-1] == "/v1.0/servicePrincipals/sp-2"


def test_app_role_assignments_page_under_their_principal(exo: RestBackend) -> None:
    rows = exo.invoke(
        CmdletCall("Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": "sp-1", "All": True})
    )
    assert [r["Id"] for r in rows.output] == [f"a-{i}" for i in range(5)]
    assert "ServicePrincipalId" not in rows.output[0]


def test_missing_mandatory_and_unknown_parameters(exo: RestBackend) -> None:
    with pytest.raises(CmdletError, match="ServicePrincipalId"):
        exo.invoke(CmdletCall("Get-MgServicePrincipalAppRoleAssignment", {"All": True}))
    with pytest.raises(CmdletError, match="Bogus"):
        exo.invoke(CmdletCall("Get-MgDomain", {"Bogus": 1}))


def test_not_found_reads_like_the_sdk(exo: RestBackend) -> None:
    with pytest.raises(CmdletError) as info:
        exo.invoke(CmdletCall("Get-MgDomain", {"DomainId": "nope.example"}))
    assert info.value.message.startswith("[Request_ResourceNotFound] : Resource 'nope.example'")
    assert info.value.error_id.startswith("Request_ResourceNotFound,Microsoft.Graph.PowerShell.Cmdlets.GetMgDomain")


def test_throttling_honours_retry_after(server: RestSimServer, exo: RestBackend, sleeps: list[float]) -> None:
    server.faults.add(RestFault(FaultKind.THROTTLE, endpoint="graph", retry_after="3"))
    assert exo.invoke(CmdletCall("Get-MgDomain", {"All": True})).output
    assert sleeps == [3.0]
    assert exo.describe()["graph_retries"] == 1


def test_throttling_mid_paging_resumes_at_the_same_page(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.THROTTLE, endpoint="graph", match="skiptoken", retry_after="0"))
    since = len(server.requests)
    rows = exo.invoke(CmdletCall("Get-MgServicePrincipal", {"All": True})).output
    assert [r["Id"] for r in rows] == [f"sp-{i}" for i in range(SP_COUNT)]  # nothing lost, nothing twice
    paths = _graph_gets(server, since)
    assert len(paths) == 4 and paths[1] == paths[2]  # the throttled page link was asked again


def test_persistent_throttling_is_a_throttled_error(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.THROTTLE, endpoint="graph", times=5))
    with pytest.raises(ThrottledError):
        exo.invoke(CmdletCall("Get-MgSubscribedSku", {"All": True}))


def test_graph_5xx_with_html_is_reported(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.BAD_GATEWAY_HTML, endpoint="graph", times=5))
    with pytest.raises(BridgeTransportError, match="non-JSON"):
        exo.invoke(CmdletCall("Get-MgDomain", {"All": True}))


def test_missing_graph_permission_is_access_denied(server: RestSimServer, exo: RestBackend) -> None:
    app = next(iter(server.apps.values()))
    saved = dict(app.roles)
    app.roles = {**saved, "graph": ()}
    try:
        exo._tokens.invalidate()  # type: ignore[union-attr]  # pick up the reduced grant
        with pytest.raises(AccessDeniedError, match="Insufficient privileges"):
            exo.invoke(CmdletCall("Get-MgDomain", {"All": True}))
    finally:
        app.roles = saved


def test_graph_json_becomes_sdk_objects() -> None:
    doc: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": "x",
        "createdDateTime": "2026-01-02T03:04:05.1234567Z",
        "keyCredentials": [{"keyId": "k", "endDateTime": "2027-01-01T00:00:00Z"}],
        "displayName": "2026-01-02T03:04:05Z",  # not a *DateTime property: stays text
    }
    assert to_powershell(doc) == {
        "Id": "x",
        "CreatedDateTime": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "KeyCredentials": [{"KeyId": "k", "EndDateTime": datetime(2027, 1, 1, tzinfo=UTC)}],
        "DisplayName": "2026-01-02T03:04:05Z",
    }


def test_next_link_downgraded_to_http_is_refused_and_the_token_never_sent(server: RestSimServer,
                                                                          exo: RestBackend) -> None:
    """Issue 12: every Graph hop is https only; an http @odata.nextLink is an error, not a request."""
    server.downgrade_links = True
    try:
        since = len(server.requests)
        with pytest.raises(BridgeTransportError, match="only https is followed"):
            exo.invoke(CmdletCall("Get-MgServicePrincipal", {"All": True}))
        followed = [r for r in server.requests[since:] if "skiptoken" in r.path]
        assert not followed  # the second page was never asked for, so no token went out with it
    finally:
        server.downgrade_links = False
    assert len(exo.invoke(CmdletCall("Get-MgServicePrincipal", {"All": True})).output) == SP_COUNT
