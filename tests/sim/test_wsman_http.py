"""The simulator's WinRM listener: auth schemes, message encryption, HTTPS and injected faults,
through pypsrp's real client over real sockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan

from mia_bridge.sim.registry import SimObject, cmdlet
from mia_bridge.sim.server import SimServer

PASSWORD = "wsman-test-pw"


class TinyTenant:
    def before_call(self, cmdlet: str, params: Mapping[str, Any]) -> None:
        pass


@cmdlet("Get-WsmanTestPing")
def _ping(tenant: TinyTenant, params: dict[str, Any]) -> list[SimObject]:
    return [SimObject(["Test.Pong"], {"Pong": params.get("Text", "pong")})]


def _ping_through(wsman: WSMan) -> str:
    with wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-WsmanTestPing").add_parameter("Text", "hello\nworld")
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED
        return str(ps.output[0].adapted_properties["Pong"])


def _client(sim: SimServer, auth: str, password: str = PASSWORD, **kw: Any) -> WSMan:
    https = sim.transport == "https"
    kw.setdefault("cert_validation", str(sim.ca_path) if https else False)
    return WSMan(
        "127.0.0.1",
        port=sim.port,
        ssl=https,
        auth=auth,
        username="mia",
        password=password,
        encryption="never" if (auth == "basic" and not https) else "auto",
        **kw,
    )


@pytest.mark.parametrize(
    ("transport", "auth"),
    [("http", "basic"), ("http", "ntlm"), ("http", "negotiate"), ("https", "basic"), ("https", "negotiate")],
)
def test_round_trip_per_transport_and_auth(transport: str, auth: str) -> None:
    with SimServer(TinyTenant(), transport=transport, auth=auth, password=PASSWORD) as sim:
        assert _ping_through(_client(sim, auth)) == "hello\nworld"


def test_ntlm_over_http_encrypts_every_message() -> None:
    with SimServer(TinyTenant(), transport="http", auth="ntlm", password=PASSWORD) as sim:
        wsman = _client(sim, "ntlm")
        _ping_through(wsman)
        httpd = sim._httpd
        assert httpd is not None and httpd.request_count > 3
        assert httpd.encrypted_count == httpd.request_count
        # Without a logon nothing is served.
        response = requests.post(sim.url, data=b"<s:Envelope/>", headers={"Content-Type": "application/soap+xml"})
        assert response.status_code == 401
        assert "Negotiate" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_wrong_password_is_an_authentication_error(auth: str) -> None:
    with (
        SimServer(TinyTenant(), transport="http", auth=auth, password=PASSWORD) as sim,
        pytest.raises(AuthenticationError),
    ):
        _ping_through(_client(sim, auth, password="not-the-password"))


def test_reject_auth_fault() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD) as sim:
        sim.faults.reject_auth = True
        with pytest.raises(AuthenticationError):
            _ping_through(_client(sim, "basic"))


def test_tls_verification_fails_without_the_ca_and_succeeds_with_it() -> None:
    with SimServer(TinyTenant(), transport="https", auth="basic", password=PASSWORD) as sim:
        with pytest.raises(requests.exceptions.SSLError):
            _ping_through(_client(sim, "basic", cert_validation=True))
        assert _ping_through(_client(sim, "basic")) == "hello\nworld"


def test_http_500_with_wsman_fault() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD) as sim:
        sim.faults.http500 = 1
        with pytest.raises(WSManFaultError) as info:
            _ping_through(_client(sim, "basic"))
        assert info.value.code == 0x803381A6
        assert "simulated fault" in str(info.value.reason)


def test_dropped_connection() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD) as sim:
        sim.faults.drop = 1
        with pytest.raises(requests.exceptions.ConnectionError):
            _ping_through(_client(sim, "basic"))


def test_slow_server_times_out() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD) as sim:
        sim.faults.delay_s = 1.5
        with pytest.raises(requests.exceptions.ReadTimeout):
            _ping_through(_client(sim, "basic", read_timeout=0.5, operation_timeout=0.2))


def test_refused_connection() -> None:
    with SimServer(TinyTenant(), auth="basic", password=PASSWORD) as sim:
        port = sim.port
    wsman = WSMan("127.0.0.1", port=port, ssl=False, auth="basic", username="mia", password=PASSWORD,
                  encryption="never")
    with pytest.raises(requests.exceptions.ConnectionError):
        _ping_through(wsman)


def test_only_loopback_is_served() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimServer(TinyTenant(), host="0.0.0.0").start()


def test_ipv6_loopback() -> None:
    with SimServer(TinyTenant(), host="::1", auth="basic", password=PASSWORD) as sim:
        assert sim.url.startswith("http://[::1]:")
        wsman = WSMan("::1", port=sim.port, ssl=False, auth="basic", username="mia", password=PASSWORD,
                      encryption="never")
        assert _ping_through(wsman) == "hello\nworld"


def test_client_certificate_authentication() -> None:
    with SimServer(TinyTenant(), transport="https", auth="certificate", username="mia", password=PASSWORD) as sim:
        assert sim.client_certificate is not None
        cert, key = sim.client_certificate
        wsman = WSMan("127.0.0.1", port=sim.port, ssl=True, auth="certificate", cert_validation=str(sim.ca_path),
                      certificate_pem=str(cert), certificate_key_pem=str(key))
        assert _ping_through(wsman) == "hello\nworld"
        # no client certificate: refused
        with pytest.raises(AuthenticationError):
            _ping_through(_client(sim, "basic"))
