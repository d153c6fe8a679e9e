"""App-only tokens for the REST backend: MSAL confidential client with a certificate.

The certificate is either a PEM file (private key, optionally followed by the certificate) with its
SHA-1 thumbprint, or a PFX whose password the caller resolved (``bridge.secrets``: MIA_CERT_PASSWORD
or the keyring entry ``certificate:<path>``).
MSAL reads the key; this module never logs it, never copies it to disk and never puts it in an
exception. Tokens are cached by MSAL and refreshed ``refresh_margin_s`` before they expire so
that a long collection never sends a token that dies mid-request.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
import msal.exceptions
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.clouds import Cloud
from mia_bridge.errors import BridgeAuthError, BridgeTLSError, BridgeTransportError, UsageError

log = logging.getLogger(__name__)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class AppCredential:
    """An app registration and its certificate. ``password`` unlocks a PFX or an encrypted PEM."""

    client_id: str
    certificate_path: Path
    thumbprint: str | None = None
    password: Secret | None = None

    @property
    def is_pfx(self) -> bool:
        return self.certificate_path.suffix.lower() in {".pfx", ".p12"}

    def describe(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "certificate": str(self.certificate_path), "thumbprint": self.thumbprint}


def _needed_password(cred: AppCredential, data: bytes) -> Secret | None:
    """The password, if the file needs one: MIA_CERT_PASSWORD set for another certificate must not break
    an unencrypted PEM or PFX."""
    if cred.password is None:
        return None
    if cred.is_pfx:
        try:
            pkcs12.load_key_and_certificates(data, None)
        except ValueError:
            return cred.password  # encrypted (or unreadable: the caller reports it)
        return None
    return cred.password if b"ENCRYPTED" in data.split(b"-----END", 1)[0] else None


def _load_certificate(cred: AppCredential) -> tuple[x509.Certificate | None, Secret | None]:
    """(public certificate in the file or None for a key-only PEM, the password the file needs).

    Errors name the file, never the key or the password."""
    path = cred.certificate_path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the certificate file ({exc.strerror})") from None
    needed = _needed_password(cred, data)
    password = needed.reveal().encode() if needed else None
    if cred.is_pfx:
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            raise BridgeAuthError(
                f"{path}: cannot open the PFX (wrong password or not a PKCS#12 file)",
                hint="set MIA_CERT_PASSWORD, or store it in the keyring: service mia-bridge, entry certificate:<path>",
            ) from None
        if key is None or cert is None:
            raise BridgeAuthError(f"{path}: the PFX must hold both the private key and its certificate")
        return cert, needed
    if b"PRIVATE KEY-----" not in data:
        raise UsageError(f"{path}: no PEM private key in this file", hint="use a PEM with the key, or a .pfx")
    try:
        serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError):
        raise BridgeAuthError(f"{path}: cannot load the PEM private key (wrong or missing password?)") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data[data.index(b"-----BEGIN CERTIFICATE-----") :]), needed
    return None, needed


def sha1_thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def msal_client_credential(cred: AppCredential) -> dict[str, Any]:
    """The ``client_credential`` dict MSAL wants; validates the thumbprint against the certificate."""
    cert, password = _load_certificate(cred)
    if cred.is_pfx:
        out: dict[str, Any] = {"private_key_pfx_path": str(cred.certificate_path)}
        if password:
            out["passphrase"] = password.reveal()
        return out
    thumbprint = (cred.thumbprint or "").replace(":", "").replace(" ", "").upper()
    if cert is not None:
        actual = sha1_thumbprint(cert)
        if thumbprint and thumbprint != actual:
            raise UsageError(
                f"{cred.certificate_path}: thumbprint {thumbprint} does not match the certificate ({actual})"
            )
        thumbprint = actual
    if not thumbprint:
        raise UsageError(
            f"{cred.certificate_path}: the PEM holds no certificate, so give its SHA-1 thumbprint",
            hint="use a PEM that also holds the certificate (cat key.pem cert.pem > app.pem), or a .pfx",
        )
    out = {"private_key": cred.certificate_path.read_text(encoding="ascii"), "thumbprint": thumbprint}
    if password:
        out["passphrase"] = password.reveal()
    return out


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOOPBACK


def resolve_tenant_id(cloud: Cloud, organization: str, *, verify: str | bool = True, timeout: float = 30.0) -> str:
    """Tenant GUID for ``contoso.onmicrosoft.com`` via the authority's OpenID configuration."""
    if _GUID.match(organization):
        return organization.lower()
    url = f"{cloud.login_url}/{organization}/v2.0/.well-known/openid-configuration"
    try:
        resp = httpx.get(
            url,
            verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify,
            timeout=timeout,
        )
    except httpx.ConnectError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise BridgeTLSError(
                f"{cloud.login_url}: certificate verification failed", hint="check --ca-bundle"
            ) from None
        raise BridgeTransportError(f"{cloud.login_url}: cannot connect ({exc})") from None
    except httpx.HTTPError as exc:
        raise BridgeTransportError(f"{cloud.login_url}: {type(exc).__name__}: {exc}") from None
    if resp.status_code in (400, 404):
        raise UsageError(
            f"tenant {organization!r} not found at {cloud.login_url}",
            hint="give the primary *.onmicrosoft.com domain or the tenant id, and the right --cloud",
        )
    if resp.status_code != 200:
        raise BridgeTransportError(f"{url}: HTTP {resp.status_code} while resolving the tenant id")
    try:
        token_endpoint = str(resp.json()["token_endpoint"])
    except (ValueError, KeyError, TypeError):
        raise BridgeTransportError(f"{url}: not an OpenID configuration document") from None
    segment = urlsplit(token_endpoint).path.strip("/").split("/")[0]
    if not _GUID.match(segment):
        raise BridgeTransportError(f"{url}: token endpoint {token_endpoint} carries no tenant id")
    return segment.lower()


_TRANSIENT_STS_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ": ".join(str(value.get(k)) for k in ("code", "message") if value.get(k)) or str(value)[:200]
    return str(value)[:200]


class _PinnedVerifySession(requests.Session):
    """A session whose CA choice wins over REQUESTS_CA_BUNDLE (requests lets the environment override
    ``Session.verify``, which would silently drop the CA bundle the user passed)."""

    def __init__(self, verify: str | bool) -> None:
        super().__init__()
        self._pinned_verify = verify

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("verify") in (None, True):
            kwargs["verify"] = self._pinned_verify
        return super().request(method, url, *args, **kwargs)


class TokenProvider:
    """Bearer tokens for one app in one tenant, per scope, refreshed before expiry."""

    def __init__(
        self,
        credential: AppCredential,
        cloud: Cloud,
        tenant_id: str,
        *,
        verify: str | bool = True,
        refresh_margin_s: float = 300.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.cloud = cloud
        self.tenant_id = tenant_id
        self.refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._expires: dict[str, float] = {}
        self.acquired = 0  # tokens fetched from the STS (not from the cache), for tests and the manifest
        authority = cloud.authority(tenant_id)
        session = _PinnedVerifySession(verify)
        try:
            self._app = msal.ConfidentialClientApplication(
                credential.client_id,
                authority=authority,
                client_credential=msal_client_credential(credential),
                http_client=session,
                timeout=timeout,
                instance_discovery=False if is_loopback(authority) else None,
            )
        except requests.exceptions.SSLError:
            raise BridgeTLSError(
                f"{cloud.login_url}: certificate verification failed", hint="check --ca-bundle"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise BridgeTransportError(
                f"{cloud.login_url}: cannot reach the authority ({type(exc).__name__})"
            ) from None
        except msal.exceptions.MsalError as exc:
            raise BridgeTransportError(
                f"{cloud.login_url}: the authority's OpenID configuration failed ({exc})"
            ) from None
        except ValueError as exc:
            # MSAL's messages here describe the authority or credential format, never the key material.
            raise BridgeAuthError(f"cannot set up the app-only client: {exc}") from None

    def token(self, scope: str) -> Secret:
        """A bearer token for ``scope`` with at least ``refresh_margin_s`` left."""
        now = self._clock()
        if scope in self._expires and self._expires[scope] - now < self.refresh_margin_s:
            self._app.remove_tokens_for_client()  # MSAL would hand back the aging token otherwise
            self._expires.clear()
        try:
            result = self._app.acquire_token_for_client([scope])
        except requests.exceptions.SSLError:
            raise BridgeTLSError(f"{self.cloud.login_url}: certificate verification failed") from None
        except requests.exceptions.RequestException as exc:
            raise BridgeTransportError(f"{self.cloud.login_url}: token request failed ({type(exc).__name__})") from None
        except msal.exceptions.MsalServiceError as exc:  # 5xx from the token service (MSAL raises for those)
            raise BridgeTransportError(
                f"{self.cloud.login_url}: the token service is failing ({exc})",
                hint="retry in a few minutes; rerunning the same command resumes",
            ) from None
        if not result or "access_token" not in result:
            error = (result or {}).get("error", "no_token")
            if not isinstance(error, str) or error in _TRANSIENT_STS_ERRORS:
                # Not an OAuth refusal: throttling or an outage answered in another shape.
                raise BridgeTransportError(
                    f"{self.cloud.login_url}: the token service did not issue a token ({_short(error)})",
                    hint="retry in a few minutes; rerunning the same command resumes",
                )
            desc = str((result or {}).get("error_description", "")).splitlines()[0:1]
            raise BridgeAuthError(
                f"the token request for app {self.credential.client_id} was refused: {error}: {' '.join(desc)}",
                hint="check the app id, that this certificate is uploaded to the app registration, "
                "and that Exchange.ManageAsApp has admin consent",
            )
        if result.get("token_source") != "cache":
            self.acquired += 1
        expires_in = float(result.get("expires_in", 0))
        self._expires[scope] = now + expires_in
        if expires_in < self.refresh_margin_s:
            log.debug("token for %s lives only %.0f s (margin %.0f s)", scope, expires_in, self.refresh_margin_s)
        return Secret(str(result["access_token"]))

    def expires_at(self, scope: str) -> float | None:
        """Epoch seconds when the last token for ``scope`` expires (None before the first one)."""
        return self._expires.get(scope)

    def invalidate(self) -> None:
        """Drop cached tokens (after a 401) so the next ``token()`` asks the STS again."""
        self._app.remove_tokens_for_client()
        self._expires.clear()
