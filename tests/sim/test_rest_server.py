"""The REST simulator's protocol surface, spoken to with plain httpx (no mia-bridge client code)."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mia_bridge.sim import rest_jwt
from mia_bridge.sim.rest_apps import EXO_RESOURCE
from mia_bridge.sim.rest_codec import JSON_CONTENT_TYPE, decode_rest_parameters, dotnet_utc, exo_object
from mia_bridge.sim.rest_faults import FaultKind, RestFault
from mia_bridge.sim.rest_server import RestSimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig


@pytest.fixture(scope="module")
def server() -> Iterator[RestSimServer]:
    tenant = Tenant(TenantConfig())
    tenant.add_audit_records(
        {
            "Id": f"r{i}",
            "CreationTime": f"2026-04-01T00:{i // 60:02d}:{i % 60:02d}",
            "Operation": "Send",
            "RecordType": 2,
            "UserId": "u@contoso.onmicrosoft.com",
        }
        for i in range(30)
    )
    with RestSimServer(tenant) as srv:
        yield srv


@pytest.fixture
def http(server: RestSimServer) -> Iterator[httpx.Client]:
    server.faults.clear()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_path)), base_url=server.url) as client:
        yield client


def _token(server: RestSimServer, resource: str = EXO_RESOURCE) -> str:
    token, _ = server.issue_token(next(iter(server.apps.values())), resource)
    return token


def _invoke(
    http: httpx.Client,
    server: RestSimServer,
    body: dict[str, Any],
    *,
    url: str | None = None,
    page: int = 1000,
    token: str | None = None,
) -> httpx.Response:
    return http.post(
        url or f"/adminapi/beta/{server.tenant_id}/InvokeCommand",
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {token or _token(server)}",
            "Content-Type": "application/json",
            "Prefer": f"odata.maxpagesize={page}",
        },
    )


SEARCH = {
    "CmdletInput": {
        "CmdletName": "search-unifiedauditlog",
        "Parameters": {"StartDate": "2026-04-01T00:00:00", "EndDate": "2026-04-02T00:00:00", "ResultSize": "100"},
    }
}


def test_openid_configuration_for_organization_and_tenant_id(server: RestSimServer, http: httpx.Client) -> None:
    for name in (server.organization, server.tenant_id):
        doc = http.get(f"/{name}/v2.0/.well-known/openid-configuration").json()
        assert doc["token_endpoint"] == f"{server.url}/{server.tenant_id}/oauth2/v2.0/token"
        assert doc["authorization_endpoint"]
    bad = http.get("/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert bad.status_code == 400 and "AADSTS90002" in bad.json()["error_description"]


def test_token_endpoint_demands_a_client_assertion(server: RestSimServer, http: httpx.Client) -> None:
    response = http.post(
        f"/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": server.tenant.config.app_id,
            "scope": f"{EXO_RESOURCE}/.default",
            "client_secret": "guess",
        },
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_forged_assertion_is_refused(server: RestSimServer, http: httpx.Client) -> None:
    """A well-formed assertion naming the registered thumbprint but signed by another key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    assert server.app_files is not None
    app_id = server.tenant.config.app_id
    header = {
        "alg": "RS256",
        "typ": "JWT",
        "x5t": rest_jwt.b64url(server.app_files.certificate.fingerprint(hashes.SHA1())),
    }
    claims = {
        "aud": f"{server.url}/{server.tenant_id}/oauth2/v2.0/token",
        "iss": app_id,
        "sub": app_id,
        "exp": int(time.time()) + 600,
        "jti": "x",
    }
    signing_input = f"{rest_jwt.b64url(json.dumps(header).encode())}.{rest_jwt.b64url(json.dumps(claims).encode())}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    response = http.post(
        f"/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app_id,
            "scope": f"{EXO_RESOURCE}/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": f"{signing_input}.{rest_jwt.b64url(signature)}",
        },
    )
    assert response.status_code == 401
    assert "AADSTS700027" in response.json()["error_description"]


def test_invoke_without_token_is_401_with_diagnostics(server: RestSimServer, http: httpx.Client) -> None:
    response = http.post(f"/adminapi/beta/{server.tenant_id}/InvokeCommand", content=json.dumps(SEARCH))
    assert response.status_code == 401
    assert response.content == b""
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "2000000" in response.headers["x-ms-diagnostics"]


def test_token_for_another_audience_is_refused(server: RestSimServer, http: httpx.Client) -> None:
    response = _invoke(http, server, SEARCH, token=_token(server, "https://graph.microsoft.com"))
    assert response.status_code == 401 and "audience" in response.headers["x-ms-diagnostics"]


def test_expired_token_is_refused(server: RestSimServer, http: httpx.Client) -> None:
    real_clock = server.clock
    server.clock = lambda: real_clock() - 7200  # issued two hours ago
    try:
        old = _token(server)
    finally:
        server.clock = real_clock
    response = _invoke(http, server, SEARCH, token=old)
    assert response.status_code == 401 and "expired" in response.headers["x-ms-diagnostics"]


def test_envelope_annotations_and_case_insensitive_cmdlet(server: RestSimServer, http: httpx.Client) -> None:
    response = _invoke(http, server, SEARCH, page=1000)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_CONTENT_TYPE
    assert response.headers["OData-Version"] == "4.0"
    doc = response.json()
    assert doc["@adminapi.warnings"] == []
    assert "@odata.nextLink" not in doc
    row = doc["value"][0]
    assert row["CreationDate@data.type"] == "System.DateTime"
    assert row["CreationDate"].endswith(".0000000+00:00")
    assert isinstance(row["AuditData"], str) and json.loads(row["AuditData"])["Operation"] == "Send"
    assert len(doc["value"]) == 30


def test_next_link_needs_the_same_body(server: RestSimServer, http: httpx.Client) -> None:
    first = _invoke(http, server, SEARCH, page=10).json()
    link = first["@odata.nextLink"]
    assert link.startswith(f"{server.url}/adminapi/beta/{server.tenant_id}/InvokeCommand?$skiptoken=")
    other = json.loads(json.dumps(SEARCH))
    other["CmdletInput"]["Parameters"]["ResultSize"] = "99"
    mismatch = _invoke(http, server, other, url=link)
    assert mismatch.status_code == 400 and "does not match" in mismatch.json()["error"]["message"]
    again = _invoke(http, server, SEARCH, page=10).json()
    second = _invoke(http, server, SEARCH, url=again["@odata.nextLink"]).json()
    assert len(second["value"]) == 10 and "@odata.nextLink" in second


def test_every_fault_kind_answers_as_documented(server: RestSimServer, http: httpx.Client) -> None:
    expected = {
        FaultKind.THROTTLE: 429,
        FaultKind.FORBIDDEN_BODYLESS: 403,
        FaultKind.CMDLET_ERROR: 400,
        FaultKind.SERVER_BUSY: 400,
        FaultKind.UNAVAILABLE: 503,
        FaultKind.GATEWAY_TIMEOUT: 504,
        FaultKind.BAD_GATEWAY_HTML: 502,
        FaultKind.HTML_200: 200,
        FaultKind.TOKEN_REJECTED: 401,
    }
    for kind, status in expected.items():
        server.faults.add(RestFault(kind, retry_after="1.5"))
        response = _invoke(http, server, SEARCH)
        assert response.status_code == status, kind
        if kind is FaultKind.THROTTLE:
            assert response.headers["Retry-After"] == "1.5"
        if kind is FaultKind.FORBIDDEN_BODYLESS:
            assert response.content == b"" and "x-ms-diagnostics" in response.headers
        if kind is FaultKind.CMDLET_ERROR:
            detail = json.loads(response.json()["error"]["details"][0]["message"])
            assert detail["ClassName"].endswith("ManagementObjectNotFoundException")
            assert response.json()["error"]["details"][0]["code"] == 13  # ErrorCategory.ObjectNotFound
        if kind in (FaultKind.BAD_GATEWAY_HTML, FaultKind.HTML_200):
            assert response.headers["Content-Type"] == "text/html"
    assert _invoke(http, server, SEARCH).status_code == 200  # one-shot faults are consumed


def test_regional_redirect_points_at_the_second_listener(server: RestSimServer, http: httpx.Client) -> None:
    server.regional_redirect = True
    try:
        response = _invoke(http, server, SEARCH)
    finally:
        server.regional_redirect = False
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{server.regional_url}/adminapi/beta/")
    assert server.regional_url != server.url


def test_graph_collection_paging_and_auth(server: RestSimServer, http: httpx.Client) -> None:
    assert http.get("/v1.0/domains").status_code == 401
    exo_token = http.get("/v1.0/domains", headers={"Authorization": f"Bearer {_token(server)}"})
    assert exo_token.status_code == 401  # an Exchange token is not a Graph token
    server.faults.add(RestFault(FaultKind.THROTTLE, endpoint="graph", retry_after="3"))
    throttled = http.get(
        "/v1.0/domains", headers={"Authorization": f"Bearer {_token(server, 'https://graph.microsoft.com')}"}
    )
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"


def test_parameter_and_value_codecs() -> None:
    params = decode_rest_parameters(
        {
            "StartDate": "2026-01-02T03:04:05",
            "Formatted": True,
            "Ids": ["a"],
            "Table": {"@odata.type": "#Exchange.GenericHashTable", "k": 1},
        }
    )
    assert params["StartDate"].isoformat() == "2026-01-02T03:04:05+00:00"
    assert params["Table"] == {"k": 1}
    assert dotnet_utc(params["StartDate"]) == "2026-01-02T03:04:05.0000000+00:00"
    assert exo_object({"L": ["x"], "N": 1}) == {"L@odata.type": "#Collection(String)", "L": ["x"], "N": 1}


def test_module_local_cmdlets_are_not_served(server: RestSimServer, http: httpx.Client) -> None:
    """Get-ConnectionInformation and friends live in the PowerShell module, not behind InvokeCommand."""
    for name in ("Get-ConnectionInformation", "Connect-ExchangeOnline", "Get-Module"):
        response = _invoke(http, server, {"CmdletInput": {"CmdletName": name, "Parameters": {}}})
        assert response.status_code == 400
        assert "CommandNotFoundException" in response.json()["error"]["details"][0]["message"]


def test_a_stalled_client_does_not_block_others(server: RestSimServer, http: httpx.Client) -> None:
    """A TCP connection that never starts TLS, and one that speaks plain HTTP, leave the server serving."""
    import socket

    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    stalled = socket.create_connection((host, int(port)))
    plain = socket.create_connection((host, int(port)))
    try:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.get(f"/{server.organization}/v2.0/.well-known/openid-configuration", timeout=10)
        assert response.status_code == 200
    finally:
        stalled.close()
        plain.close()
