"""App-only token acquisition: real MSAL against the loopback token service over HTTPS."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.clouds import Cloud, get_cloud
from mia_bridge.bridge.rest_auth import AppCredential, TokenProvider, msal_client_credential, resolve_tenant_id
from mia_bridge.errors import BridgeAuthError, BridgeTLSError, BridgeTransportError, UsageError
from mia_bridge.sim.rest_apps import EXO_RESOURCE, make_app_certificate
from mia_bridge.sim.rest_faults import FaultKind, RestFault
from mia_bridge.sim.rest_server import RestSimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig

EXO_SCOPE = f"{EXO_RESOURCE}/.default"


@pytest.fixture(scope="module")
def server() -> Iterator[RestSimServer]:
    with RestSimServer(Tenant(TenantConfig())) as srv:
        yield srv


@pytest.fixture
def cloud(server: RestSimServer) -> Cloud:
    server.faults.clear()
    return get_cloud("worldwide").with_loopback(server.url)


def _provider(
    server: RestSimServer, cloud: Cloud, credential: AppCredential, refresh_margin_s: float = 300.0
) -> TokenProvider:
    return TokenProvider(
        credential, cloud, server.tenant_id, verify=str(server.ca_path), refresh_margin_s=refresh_margin_s
    )


def _pem(server: RestSimServer) -> AppCredential:
    assert server.app_files is not None
    return AppCredential(server.tenant.config.app_id, server.app_files.pem_path)


def test_tenant_id_is_resolved_from_the_organization_name(server: RestSimServer, cloud: Cloud) -> None:
    """The OpenID configuration of contoso.onmicrosoft.com names the tenant GUID."""
    assert resolve_tenant_id(cloud, "contoso.onmicrosoft.com", verify=str(server.ca_path)) == server.tenant_id
    assert resolve_tenant_id(cloud, server.tenant_id.upper(), verify=str(server.ca_path)) == server.tenant_id


def test_unknown_organization_is_a_usage_error(server: RestSimServer, cloud: Cloud) -> None:
    with pytest.raises(UsageError, match=r"fabrikam\.onmicrosoft\.com"):
        resolve_tenant_id(cloud, "fabrikam.onmicrosoft.com", verify=str(server.ca_path))


def test_pem_certificate_gets_a_token_once_then_from_the_cache(server: RestSimServer, cloud: Cloud) -> None:
    """RS256 assertion with x5t; the second request for the same scope is served by MSAL's cache."""
    provider = _provider(server, cloud, _pem(server))
    issued = server.tokens_issued
    first = provider.token(EXO_SCOPE)
    second = provider.token(EXO_SCOPE)
    assert first == second
    assert provider.acquired == 1
    assert server.tokens_issued == issued + 1
    status, _, claims = server.check_token(f"Bearer {first.reveal()}", "exo")
    assert status == 200 and claims is not None
    assert claims["roles"] == ["Exchange.ManageAsApp"]
    assert claims["tid"] == server.tenant_id


def test_pfx_with_password_signs_with_ps256(server: RestSimServer, cloud: Cloud) -> None:
    assert server.app_files is not None
    credential = AppCredential(
        server.tenant.config.app_id,
        server.app_files.pfx_path,
        password=Secret(server.tenant.config.certificate_password),
    )
    assert "private_key_pfx_path" in msal_client_credential(credential)
    token = _provider(server, cloud, credential).token(EXO_SCOPE)
    assert server.check_token(f"Bearer {token.reveal()}", "exo")[0] == 200


def test_wrong_pfx_password_names_the_file_not_the_password(server: RestSimServer, cloud: Cloud) -> None:
    assert server.app_files is not None
    credential = AppCredential(server.tenant.config.app_id, server.app_files.pfx_path, password=Secret("nope-123"))
    with pytest.raises(BridgeAuthError) as info:
        _provider(server, cloud, credential)
    assert "app.pfx" in info.value.render()
    assert "nope-123" not in info.value.render()


def test_certificate_not_registered_on_the_app_is_refused(
    server: RestSimServer, cloud: Cloud, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid certificate that is not uploaded to the app: AADSTS700027, and no key material anywhere."""
    other = make_app_certificate(tmp_path, pfx_password="x")
    provider = _provider(server, cloud, AppCredential(server.tenant.config.app_id, other.pem_path))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BridgeAuthError) as info:
        provider.token(EXO_SCOPE)
    text = info.value.render()
    assert "AADSTS700027" in text
    key_line = other.pem_path.read_text().splitlines()[1]  # first base64 line of the private key
    assert key_line not in text
    assert key_line not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


def test_unknown_app_id_is_refused(server: RestSimServer, cloud: Cloud) -> None:
    assert server.app_files is not None
    credential = AppCredential("11111111-2222-3333-4444-555555555555", server.app_files.pem_path)
    with pytest.raises(BridgeAuthError, match="AADSTS700016"):
        _provider(server, cloud, credential).token(EXO_SCOPE)


def test_thumbprint_that_does_not_match_the_certificate_is_a_usage_error(server: RestSimServer) -> None:
    assert server.app_files is not None
    credential = AppCredential(server.tenant.config.app_id, server.app_files.pem_path, thumbprint="AB" * 20)
    with pytest.raises(UsageError, match="does not match"):
        msal_client_credential(credential)
    right = AppCredential(
        server.tenant.config.app_id, server.app_files.pem_path, thumbprint=server.app_files.thumbprint
    )
    assert msal_client_credential(right)["thumbprint"] == server.app_files.thumbprint


def test_key_only_pem_needs_a_thumbprint(server: RestSimServer, tmp_path: Path) -> None:
    assert server.app_files is not None
    text = server.app_files.pem_path.read_text()
    key_only = tmp_path / "key.pem"
    key_only.write_text(text[: text.index("-----BEGIN CERTIFICATE-----")])
    with pytest.raises(UsageError, match="thumbprint"):
        msal_client_credential(AppCredential("x", key_only))
    ok = msal_client_credential(AppCredential("x", key_only, thumbprint=server.app_files.thumbprint.lower()))
    assert ok["thumbprint"] == server.app_files.thumbprint


def test_token_is_refreshed_before_it_expires(server: RestSimServer, cloud: Cloud) -> None:
    """A token with less than the refresh margin left is replaced before use, not sent to die mid-call."""
    provider = _provider(server, cloud, _pem(server), refresh_margin_s=4000.0)  # every 3599 s token is "aging"
    first = provider.token(EXO_SCOPE)
    second = provider.token(EXO_SCOPE)
    assert provider.acquired == 2
    assert first != second
    relaxed = _provider(server, cloud, _pem(server), refresh_margin_s=60.0)
    relaxed.token(EXO_SCOPE)
    relaxed.token(EXO_SCOPE)
    assert relaxed.acquired == 1


def test_short_lived_tokens_are_fetched_again(tmp_path: Path) -> None:
    """MSAL itself treats a token with under 5 minutes left as expired."""
    with RestSimServer(Tenant(TenantConfig()), token_lifetime_s=120) as srv:
        cloud = get_cloud("worldwide").with_loopback(srv.url)
        provider = _provider(srv, cloud, _pem(srv), refresh_margin_s=0.0)
        provider.token(EXO_SCOPE)
        provider.token(EXO_SCOPE)
        assert provider.acquired == 2


def test_invalidate_forces_a_new_token(server: RestSimServer, cloud: Cloud) -> None:
    provider = _provider(server, cloud, _pem(server))
    provider.token(EXO_SCOPE)
    provider.invalidate()
    provider.token(EXO_SCOPE)
    assert provider.acquired == 2


def test_untrusted_server_certificate_is_a_tls_error(server: RestSimServer, cloud: Cloud) -> None:
    """Without the simulator's CA the authority's certificate does not verify: no silent fallback."""
    with pytest.raises(BridgeTLSError):
        TokenProvider(_pem(server), cloud, server.tenant_id, verify=True)


def test_encrypted_pem_needs_its_password(server: RestSimServer, cloud: Cloud, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    assert server.app_files is not None
    text = server.app_files.pem_path.read_bytes()
    key = serialization.load_pem_private_key(text, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pem-pass"),
    )
    path = tmp_path / "enc.pem"
    path.write_bytes(encrypted + text[text.index(b"-----BEGIN CERTIFICATE-----") :])
    app_id = server.tenant.config.app_id
    with pytest.raises(BridgeAuthError, match="wrong or missing password"):
        msal_client_credential(AppCredential(app_id, path))
    good = AppCredential(app_id, path, password=Secret("pem-pass"))
    assert _provider(server, cloud, good).token(EXO_SCOPE).reveal()


def test_a_password_meant_for_another_file_does_not_break_an_unencrypted_pem(
    server: RestSimServer, cloud: Cloud
) -> None:
    """MIA_CERT_PASSWORD may be set for the psrp backend's PFX; a plain PEM must still load."""
    assert server.app_files is not None
    credential = AppCredential(server.tenant.config.app_id, server.app_files.pem_path, password=Secret("stray"))
    assert "passphrase" not in msal_client_credential(credential)
    assert _provider(server, cloud, credential).token(EXO_SCOPE).reveal()


@pytest.mark.parametrize("kind", [FaultKind.UNAVAILABLE, FaultKind.BAD_GATEWAY_HTML, FaultKind.THROTTLE])
def test_token_service_outage_is_a_retryable_transport_error(
    server: RestSimServer, cloud: Cloud, kind: FaultKind
) -> None:
    """MSAL raises for 5xx and returns a non-OAuth error for throttling; neither is an auth refusal."""
    server.faults.add(RestFault(kind, endpoint="token", retry_after="0"))
    provider = _provider(server, cloud, _pem(server))  # a fresh MSAL app: no replayed error from another test
    with pytest.raises(BridgeTransportError) as info:
        provider.token(EXO_SCOPE)
    assert info.value.retryable
    assert not isinstance(info.value, BridgeAuthError)
