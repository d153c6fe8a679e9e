"""The REST backend against the loopback HTTPS simulator: requests, paging, streams, faults, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pytest

from mia_bridge.bridge.backend import CmdletCall, Secret
from mia_bridge.bridge.clouds import get_cloud
from mia_bridge.bridge.rest import RestBackend, encode_parameters, parse_dotnet_datetime, powershell_line
from mia_bridge.bridge.rest_auth import AppCredential
from mia_bridge.bridge.rest_http import RetryPolicy
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeAuthError,
    BridgeTLSError,
    BridgeTransportError,
    CmdletError,
    CommandNotFoundError,
    ThrottledError,
    UsageError,
)
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, dispatch
from mia_bridge.sim.rest_faults import FaultKind, RestFault
from mia_bridge.sim.rest_server import RequestRecord, RestSimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig

BASE = datetime(2026, 3, 1, tzinfo=UTC)
PROBE = "Get-MiaRestProbe"


def _probe(session: Any, params: dict[str, Any]) -> SimOutput:
    """Test cmdlet: ``Count`` objects of every value type, one warning and one non-terminating error."""
    if params.get("Fail"):
        raise SimCmdletError("Access is denied.", category="PermissionDenied", error_id="AccessDenied")
    count = int(params.get("Count", 3))
    objects = [
        SimObject(
            ["Mia.Probe"],
            {
                "Index": i,
                "Name": f"item-{i}",
                "When": BASE + timedelta(seconds=i, microseconds=123456),
                "Tags": ["a", "b"],
                "Enabled": i % 2 == 0,
                "Nothing": None,
                "Ratio": 0.5,
                "Nested": SimObject(["Mia.Nested"], {"Inner": "x", "At": BASE}),
            },
        )
        for i in range(count)
    ]
    errors = [SimCmdletError("one item was skipped", category="ObjectNotFound")] if params.get("WithError") else []
    return SimOutput(objects=objects, warnings=["probe warning"], errors=errors)


def _dispatch_with_probe(session: Any, name: str, params: dict[str, Any]) -> SimOutput:
    """The tenant's cmdlets plus the probe (kept out of the global registry other tests inspect)."""
    if name.lower() == PROBE.lower():
        return _probe(session, params)
    return dispatch(session, name, params)


def _records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "Id": f"00000000-0000-0000-0000-{i:012d}",
            "CreationTime": (BASE + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S"),
            "Operation": "MailItemsAccessed",
            "RecordType": 50,
            "UserId": "adele@contoso.onmicrosoft.com",
            "ClientIPAddress": "203.0.113.7",
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[RestSimServer]:
    # Plain calls test the transport's paging: without the search quirks (plain-cap would cut them to 120).
    tenant = Tenant(TenantConfig(quirks=frozenset()))
    tenant.add_audit_records(_records(2500))
    with RestSimServer(tenant, dispatcher=_dispatch_with_probe) as srv:
        yield srv


def _backend(server: RestSimServer, sleeps: list[float] | None = None, **kw: Any) -> RestBackend:
    assert server.app_files is not None
    record = sleeps if sleeps is not None else []
    return RestBackend(
        cloud=kw.pop("cloud", get_cloud("worldwide").with_loopback(server.url)),
        organization=server.organization,
        credential=AppCredential(server.tenant.config.app_id, server.app_files.pem_path),
        ca_bundle=kw.pop("ca_bundle", str(server.ca_path)),
        retry=RetryPolicy(max_retries=kw.pop("max_retries", 3), backoff_s=0.01, sleep=record.append),
        **kw,
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def exo(server: RestSimServer, sleeps: list[float]) -> Iterator[RestBackend]:
    server.faults.clear()
    server.regional_redirect = False
    with _backend(server, sleeps) as backend:
        yield backend


def _invokes(server: RestSimServer, since: int) -> list[RequestRecord]:
    return [r for r in server.requests[since:] if "InvokeCommand" in r.path]


def _search(**extra: Any) -> CmdletCall:
    params: dict[str, Any] = {"StartDate": BASE, "EndDate": BASE + timedelta(days=3), "ResultSize": 5000}
    params.update(extra)
    return CmdletCall("Search-UnifiedAuditLog", params)


# --- requests --------------------------------------------------------------------------------------


class RecordType(Enum):
    ExchangeItemAggregated = 50


def test_parameters_are_encoded_as_the_module_sends_them() -> None:
    encoded = encode_parameters(
        {
            "StartDate": datetime(2026, 3, 1, 12, 30, 5, 999, tzinfo=UTC) + timedelta(hours=0),
            "EndDate": datetime.fromisoformat("2026-03-02T01:00:00+02:00"),
            "Formatted": True,
            "UserIds": ("a@x", "b@x"),
            "RecordType": RecordType.ExchangeItemAggregated,
            "ResultSize": 5000,
            "Filter": {"Name": "x"},
        }
    )
    assert encoded == {
        "StartDate": "2026-03-01T12:30:05.0009990",  # sub-second precision kept (issue 12)
        "EndDate": "2026-03-01T23:00:00",  # converted to UTC, sortable pattern, no offset
        "Formatted": True,
        "UserIds": ["a@x", "b@x"],
        "RecordType": "ExchangeItemAggregated",
        "ResultSize": 5000,
        "Filter": {"@odata.type": "#Exchange.GenericHashTable", "Name": "x"},
    }
    with pytest.raises(UsageError, match="time zone"):
        encode_parameters({"StartDate": datetime(2026, 1, 1)})
    with pytest.raises(UsageError, match="SecureString"):
        encode_parameters({"Password": Secret("pw")})


def test_request_headers_body_and_token(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    exo.invoke(_search(RecordType="ExchangeItemAggregated", UserIds=["adele@contoso.onmicrosoft.com"], Formatted=True))
    posts = _invokes(server, since)
    assert len(posts) == 3  # 2500 rows in pages of 1000
    first = posts[0]
    body = json.loads(first.body)
    assert body == {
        "CmdletInput": {
            "CmdletName": "Search-UnifiedAuditLog",
            "Parameters": {
                "StartDate": "2026-03-01T00:00:00",
                "EndDate": "2026-03-04T00:00:00",
                "ResultSize": 5000,
                "RecordType": "ExchangeItemAggregated",
                "UserIds": ["adele@contoso.onmicrosoft.com"],
                "Formatted": True,
            },
        }
    }
    headers = {k.lower(): v for k, v in first.headers.items()}
    assert headers["x-cmdletname"] == "Search-UnifiedAuditLog"
    assert headers["prefer"] == "odata.maxpagesize=1000"
    assert headers["x-responseformat"] == "json"
    assert headers["x-serializationlevel"] == "Partial"
    assert headers["x-clientapplication"] == "ExoManagementModule"
    assert headers["x-anchormailbox"] == f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{server.tenant_id}"
    assert headers["content-type"] == "application/json"
    assert headers["connection-id"] == exo.connection_id
    # One client-request-id per cmdlet, the same body on every page.
    assert {r.headers["client-request-id"] for r in posts} == {first.headers["client-request-id"]}
    assert {r.body for r in posts} == {first.body}
    assert "?$skiptoken=" in posts[1].path


def test_small_result_size_sets_the_page_size(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    result = exo.invoke(_search(ResultSize=10))
    assert len(result.output) == 10
    posts = _invokes(server, since)
    assert len(posts) == 1 and posts[0].headers["Prefer"] == "odata.maxpagesize=10"


# --- responses -------------------------------------------------------------------------------------


def test_paging_returns_every_record_once(exo: RestBackend) -> None:
    result = exo.invoke(_search(SessionId="paging-1", SessionCommand="ReturnLargeSet"))
    ids = [json.loads(r["AuditData"])["Id"] for r in result.output]
    assert len(ids) == 2500 and len(set(ids)) == 2500
    first = result.output[0]
    assert first["ResultCount"] == 2500
    assert isinstance(first["CreationDate"], datetime) and first["CreationDate"].tzinfo == UTC
    assert first["RecordType"] == "ExchangeItemAggregated"
    assert isinstance(first["AuditData"], str)  # AuditData stays the JSON text the service sends
    assert sorted(r["ResultIndex"] for r in result.output) == list(range(1, 2501))


def test_values_decode_to_plain_typed_python(exo: RestBackend) -> None:
    result = exo.invoke(CmdletCall(PROBE, {"Count": 2}))
    assert result.output[1] == {
        "Index": 1,
        "Name": "item-1",
        "When": BASE + timedelta(seconds=1, microseconds=123456),
        "Tags": ["a", "b"],
        "Enabled": False,
        "Nothing": None,
        "Ratio": 0.5,
        "Nested": {"Inner": "x", "At": BASE},
    }


def test_select_keeps_only_the_named_properties(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    result = exo.invoke(CmdletCall(PROBE, {"Count": 2}, select=("Name", "When")))
    assert result.output[0] == {"Name": "item-0", "When": BASE + timedelta(microseconds=123456)}
    assert _invokes(server, since)[0].path.endswith("InvokeCommand?$select=Name,When")


def test_warnings_arrive_once_however_many_pages(exo: RestBackend) -> None:
    result = exo.invoke(CmdletCall(PROBE, {"Count": 2100}))
    assert len(result.output) == 2100
    assert result.warnings == ["probe warning"]


def test_ingestion_off_error_is_surfaced(server: RestSimServer) -> None:
    """The tenant answers a non-terminating BadRequest; over REST it travels in @adminapi.errors (plain text)."""
    tenant = Tenant(TenantConfig(ingestion_enabled=False))
    with RestSimServer(tenant) as srv, _backend(srv) as exo:
        result = exo.invoke(_search())
    assert result.output == []
    assert len(result.errors) == 1 and "UnifiedAuditLogIngestionEnabled is False" in result.errors[0].message
    assert result.errors[0].error_id == "AdminApiError"  # what the module reports for these, too


def test_adminapi_errors_become_non_terminating_errors(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.ADMINAPI_ERRORS, match=PROBE))
    result = exo.invoke(CmdletCall(PROBE, {"Count": 1, "WithError": True}))
    assert len(result.output) == 1
    assert result.errors[0].message == "one item was skipped"
    assert len(result.errors) == 2 and all(e.error_id == "AdminApiError" for e in result.errors)


def test_session_cmdlets_are_no_ops(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    assert exo.invoke(CmdletCall("Connect-MgGraph", {"ClientId": "x"})).output == []
    assert exo.invoke(CmdletCall("Connect-ExchangeOnline", {"AppId": "x"})).output == []
    assert server.requests[since:] == []


def test_describe_names_endpoint_and_never_a_secret(server: RestSimServer, exo: RestBackend) -> None:
    info = exo.describe()
    assert info["backend"] == "rest"
    assert info["tenant_id"] == server.tenant_id
    assert info["endpoint"].endswith(f"/adminapi/beta/{server.tenant_id}/InvokeCommand")
    assert "PRIVATE" not in json.dumps(info)


# --- paging links ----------------------------------------------------------------------------------


def test_expired_next_link_reruns_a_stateless_query_and_says_so(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.EXPIRED_NEXT_LINK, endpoint="nextlink"))
    result = exo.invoke(_search())
    assert len(result.output) == 2500
    assert "paging link expired after 1 page(s)" in result.warnings[0]


def test_expired_next_link_in_a_session_is_an_error(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.EXPIRED_NEXT_LINK, endpoint="nextlink"))
    with pytest.raises(CmdletError) as info:
        exo.invoke(_search(SessionId="expire-1", SessionCommand="ReturnLargeSet"))
    assert info.value.error_id == "NextLinkExpired"
    assert "new SessionId" in (info.value.hint or "")


def test_next_link_ttl_is_enforced(server: RestSimServer) -> None:
    tenant = Tenant(TenantConfig(quirks=frozenset()))  # the transport's paging, not the search quirks
    tenant.add_audit_records(_records(1500))
    clock = [1_000_000.0]
    with RestSimServer(tenant, nextlink_ttl_s=60, clock=lambda: clock[0]) as srv, _backend(srv) as exo:
        srv.tokens_issued = 0
        original = srv.take_page

        def late(token: str) -> Any:
            clock[0] += 61  # the client came back after the link's lifetime
            return original(token)

        srv.take_page = late  # type: ignore[method-assign]
        with pytest.raises(CmdletError, match="paging link expired"):
            exo.invoke(_search(SessionId="ttl-1", SessionCommand="ReturnLargeSet"))


# --- redirects -------------------------------------------------------------------------------------


def test_regional_redirect_is_followed_and_sticks(server: RestSimServer, exo: RestBackend) -> None:
    server.regional_redirect = True
    since = len(server.requests)
    result = exo.invoke(_search(ResultSize=5))
    assert len(result.output) == 5
    statuses = [r.status for r in _invokes(server, since)]
    assert statuses == [302, 200]
    assert exo.admin_url == server.regional_url
    since = len(server.requests)
    exo.invoke(_search(ResultSize=5))
    assert [r.status for r in _invokes(server, since)] == [200]  # straight to the regional host


def test_redirect_to_a_foreign_host_is_refused(server: RestSimServer) -> None:
    """The bearer token is only sent to hosts of the cloud; here only 'localhost' is."""
    server.faults.clear()
    server.regional_redirect = True
    port = server.url.rsplit(":", 1)[1]
    cloud = replace(
        get_cloud("worldwide").with_loopback(server.url),
        admin_url=f"https://localhost:{port}",
        admin_redirect_suffixes=(),
    )
    try:
        with _backend(server, cloud=cloud) as exo, pytest.raises(BridgeTransportError, match="refusing to follow"):
            exo.invoke(_search(ResultSize=5))
    finally:
        server.regional_redirect = False


def test_redirect_downgraded_to_http_is_refused(server: RestSimServer) -> None:
    """Issue 12: a redirect to http is never followed with the bearer token, even to an allowed host."""
    server.faults.clear()
    server.regional_redirect = True
    server.downgrade_links = True
    try:
        since = len(server.requests)
        with _backend(server) as exo, pytest.raises(BridgeTransportError, match="only https is followed"):
            exo.invoke(_search(ResultSize=5))
        assert [r.status for r in _invokes(server, since)] == [302]  # nothing reached the http target
    finally:
        server.regional_redirect = False
        server.downgrade_links = False


# --- faults and errors -----------------------------------------------------------------------------


def test_429_waits_for_retry_after(server: RestSimServer, exo: RestBackend, sleeps: list[float]) -> None:
    server.faults.add(RestFault(FaultKind.THROTTLE, times=2, retry_after="1.5"))
    result = exo.invoke(_search(ResultSize=5))
    assert len(result.output) == 5
    assert sleeps == [1.5, 1.5]


def test_429_that_never_ends_is_a_throttled_error(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.THROTTLE, times=10, retry_after="2"))
    with pytest.raises(ThrottledError) as info:
        exo.invoke(_search(ResultSize=5))
    assert info.value.retry_after == 2.0
    assert info.value.retryable


def test_5xx_is_retried_with_backoff(server: RestSimServer, exo: RestBackend, sleeps: list[float]) -> None:
    server.faults.add(RestFault(FaultKind.UNAVAILABLE))
    server.faults.add(RestFault(FaultKind.GATEWAY_TIMEOUT))
    server.faults.add(RestFault(FaultKind.BAD_GATEWAY_HTML))
    result = exo.invoke(_search(ResultSize=5))
    assert len(result.output) == 5
    assert sleeps == [0.01, 0.02, 0.04]


def test_persistent_non_json_gateway_answer_is_reported_clearly(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.BAD_GATEWAY_HTML, times=10))
    with pytest.raises(BridgeTransportError) as info:
        exo.invoke(_search(ResultSize=5))
    text = info.value.render()
    assert "HTTP 502" in text and "non-JSON" in text and "Bad Gateway" in text
    assert "<html>" not in text


def test_non_json_200_is_not_taken_for_data(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.HTML_200))
    with pytest.raises(BridgeTransportError, match="not an admin-API JSON document"):
        exo.invoke(_search(ResultSize=5))


def test_bodyless_403_reports_x_ms_diagnostics(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.FORBIDDEN_BODYLESS))
    with pytest.raises(AccessDeniedError) as info:
        exo.invoke(_search(ResultSize=5))
    assert "does not have the role needed" in info.value.message
    assert info.value.category == "PermissionDenied"


def test_403_with_a_body_reports_the_cmdlet_error(exo: RestBackend) -> None:
    with pytest.raises(AccessDeniedError, match="Access is denied"):
        exo.invoke(CmdletCall(PROBE, {"Fail": True}))


def test_400_cmdlet_error_carries_its_details(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.CMDLET_ERROR, match="Get-Mailbox"))
    with pytest.raises(CmdletError) as info:
        exo.invoke(CmdletCall("Get-Mailbox", {"Identity": "nobody"}))
    err = info.value
    assert err.cmdlet == "Get-Mailbox"
    assert err.category == "ObjectNotFound"
    assert err.error_id == "ManagementObjectNotFound"
    assert "couldn't be found" in err.message


def test_parameter_binding_error_from_the_service(exo: RestBackend) -> None:
    with pytest.raises(CmdletError) as info:
        exo.invoke(_search(ResultSize=6000))
    assert info.value.category == "InvalidData"
    assert "ResultSize" in info.value.message


def test_server_busy_400_is_retried(server: RestSimServer, exo: RestBackend, sleeps: list[float]) -> None:
    server.faults.add(RestFault(FaultKind.SERVER_BUSY, times=2))
    assert len(exo.invoke(_search(ResultSize=3)).output) == 3
    assert len(sleeps) == 2


def test_unknown_cmdlet_is_command_not_found(exo: RestBackend) -> None:
    with pytest.raises(CommandNotFoundError):
        exo.invoke(CmdletCall("Get-NoSuchThing"))


def test_rejected_token_is_replaced_once(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.TOKEN_REJECTED))
    before = exo.describe()["tokens_acquired"]
    assert len(exo.invoke(_search(ResultSize=3)).output) == 3
    assert exo.describe()["tokens_acquired"] == before + 1


def test_token_rejected_twice_is_an_auth_error(server: RestSimServer, exo: RestBackend) -> None:
    server.faults.add(RestFault(FaultKind.TOKEN_REJECTED, times=2))
    with pytest.raises(BridgeAuthError, match="access token has expired"):
        exo.invoke(_search(ResultSize=3))


def test_enabling_ingestion_names_the_alternative(exo: RestBackend) -> None:
    """'Cmdlet needs proxy' (reported for the real endpoint): say so and give the exact alternative."""
    with pytest.raises(CmdletError) as info:
        exo.invoke(CmdletCall("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}))
    text = info.value.render()
    assert "Cmdlet needs proxy" in text
    assert "--backend psrp" in text
    assert "Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled:$true" in text


def test_app_without_exchange_role_gets_403(server: RestSimServer) -> None:
    app = next(iter(server.apps.values()))
    saved = dict(app.roles)
    app.roles = {k: () for k in saved}
    try:
        with _backend(server) as exo, pytest.raises(AccessDeniedError, match=r"Exchange\.ManageAsApp"):
            exo.invoke(_search(ResultSize=1))
    finally:
        app.roles = saved


def test_server_certificate_must_verify(server: RestSimServer) -> None:
    with pytest.raises(BridgeTLSError):
        _backend(server, ca_bundle=None).open()


# --- helpers ---------------------------------------------------------------------------------------


def test_dotnet_datetimes_parse_to_utc() -> None:
    assert parse_dotnet_datetime("2022-09-21T08:07:47.1234567+00:00") == datetime(
        2022, 9, 21, 8, 7, 47, 123456, tzinfo=UTC
    )
    assert parse_dotnet_datetime("2022-09-21T10:07:47+02:00") == datetime(2022, 9, 21, 8, 7, 47, tzinfo=UTC)
    assert parse_dotnet_datetime("2022-09-21T08:07:47.5Z") == datetime(2022, 9, 21, 8, 7, 47, 500000, tzinfo=UTC)


def test_powershell_line_quotes_values() -> None:
    line = powershell_line(
        CmdletCall("Search-UnifiedAuditLog", {"UserIds": ["o'brien@x"], "ResultSize": 10, "Formatted": True})
    )
    assert line == "Search-UnifiedAuditLog -UserIds 'o''brien@x' -ResultSize 10 -Formatted"


def test_connection_information_is_answered_locally(server: RestSimServer, exo: RestBackend) -> None:
    since = len(server.requests)
    info = exo.invoke(CmdletCall("Get-ConnectionInformation")).output
    assert server.requests[since:] == []
    assert info[0]["State"] == "Connected" and info[0]["TokenStatus"] == "Active"
    assert info[0]["TenantID"] == server.tenant_id
    assert isinstance(info[0]["TokenExpiryTimeUTC"], datetime)


def test_module_only_cmdlets_are_not_applicable(exo: RestBackend) -> None:
    with pytest.raises(CommandNotFoundError, match="not applicable with the rest backend"):
        exo.invoke(CmdletCall("Get-Module", {"Name": "ExchangeOnlineManagement"}))


def test_sovereign_cloud_scopes_work_against_the_simulator(server: RestSimServer) -> None:
    """GCC High asks for https://outlook.office365.us/.default; the token is checked for that audience."""
    cloud = get_cloud("O365USGovGCCHigh").with_loopback(server.url)
    with _backend(server, cloud=cloud) as exo:
        assert len(exo.invoke(_search(ResultSize=2)).output) == 2
        assert exo.describe()["cloud"].startswith("gcchigh@")


def test_tokens_never_reach_the_logs(exo: RestBackend, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    exo.invoke(_search(ResultSize=2))
    exo.invoke(CmdletCall("Get-MgDomain", {"All": True}))
    for scope in (exo.cloud.exo_scope, exo.cloud.graph_scope):
        token = exo._tokens.token(scope).reveal()  # type: ignore[union-attr]
        assert token and token not in caplog.text
        assert token[-40:] not in caplog.text  # not even the signature part


def test_clones_serve_concurrent_workers(server: RestSimServer, exo: RestBackend) -> None:
    """The collector opens one clone per worker thread; each holds its own HTTP client and token cache."""
    from concurrent.futures import ThreadPoolExecutor

    clones = [exo.clone() for _ in range(3)]
    for clone in clones:
        clone.open()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            sizes = list(pool.map(lambda b: len(b.invoke(_search(ResultSize=1500)).output), clones))
        assert sizes == [1500, 1500, 1500]
        assert all(c.describe()["tokens_acquired"] == 1 for c in clones)
    finally:
        for clone in clones:
            clone.close()


def test_long_collection_never_sends_an_aging_token() -> None:
    """Tokens that would expire within the refresh margin are replaced before each request (pages too)."""
    tenant = Tenant(TenantConfig(quirks=frozenset()))  # the transport's paging, not the search quirks
    tenant.add_audit_records(_records(2500))
    with RestSimServer(tenant, token_lifetime_s=200) as srv, _backend(srv) as exo:
        issued = srv.tokens_issued
        result = exo.invoke(_search())
        assert len(result.output) == 2500
        assert srv.tokens_issued - issued == 3  # one fresh token for each of the three page requests
        assert all(r.status == 200 for r in srv.requests if "InvokeCommand" in r.path)
