"""Registers the REST backend with ``bridge.factory`` (imported by ``open_backend`` for ``--backend rest``).

Settings map as follows: ``organization`` is the tenant (``contoso.onmicrosoft.com`` or its id),
``app_id`` the app registration, ``certificate_path`` a *local* PEM (key and certificate) or PFX
(password from MIA_CERT_PASSWORD or the keyring entry ``certificate:<path>``), ``exchange_environment``
the cloud (O365Default, O365USGovGCCHigh, O365USGovDoD, O365China), ``ca_bundle`` an extra CA for
TLS-inspecting proxies or the simulator. A thumbprint alone is not enough: it names a certificate
in a Windows store, and this backend signs with the key itself. ``server`` is only accepted as the
loopback URL of ``mia sim serve --api rest``: every host of the cloud then becomes that origin.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.bridge.clouds import Cloud, get_cloud
from mia_bridge.bridge.config import DELEGATED_AUTH, ConnectionSettings
from mia_bridge.bridge.factory import Credentials, register_backend
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.bridge.rest_auth import AppCredential
from mia_bridge.bridge.rest_delegated import DelegatedLogin
from mia_bridge.bridge.token_cache import CacheChoice
from mia_bridge.errors import ConfigError


def cache_choice(settings: ConnectionSettings) -> CacheChoice:
    """Where delegated tokens are kept: the OS secure store unless the user opted out or into plaintext."""
    if settings.no_token_cache:
        return CacheChoice("none")
    if settings.token_cache_insecure_file:
        return CacheChoice("insecure-file", Path(settings.token_cache_insecure_file).expanduser())
    return CacheChoice("encrypted")


def _delegated_backend(settings: ConnectionSettings, cloud: Cloud | None) -> RestBackend:
    missing = [f for f, v in (("--organization", settings.organization), ("--client-id", settings.client_id)) if not v]
    if missing:
        raise ConfigError(
            f"--auth {settings.auth} needs {' and '.join(missing)}",
            hint="--client-id is your organisation's public-client app registration (README: Delegated sign-in)",
        )
    assert settings.organization is not None and settings.client_id is not None
    login = DelegatedLogin(settings.client_id, settings.auth, login_hint=settings.username,
                           cache=cache_choice(settings))
    return RestBackend(cloud=cloud or _cloud(settings), organization=settings.organization, delegated=login,
                       ca_bundle=settings.ca_bundle)


def _cloud(settings: ConnectionSettings) -> Cloud:
    cloud = get_cloud(settings.exchange_environment or "worldwide")
    if settings.server:
        cloud = cloud.with_loopback(_loopback_origin(settings.server, settings.port))
    return cloud


def rest_backend(settings: ConnectionSettings, credentials: Credentials, *, cloud: Cloud | None = None) -> RestBackend:
    """A RestBackend for ``settings``; ``cloud`` overrides the one named by ``exchange_environment``."""
    if settings.auth in DELEGATED_AUTH:
        return _delegated_backend(settings, cloud)
    missing = [
        flag for flag, value in (("--organization", settings.organization), ("--app-id", settings.app_id)) if not value
    ]
    if missing:
        raise ConfigError(f"the rest backend needs {' and '.join(missing)}")
    if not settings.certificate_path:
        raise ConfigError(
            "the rest backend needs the app certificate file (--certificate-path app.pem or app.pfx)",
            hint="a thumbprint names a certificate in a Windows store; REST signs with the key itself",
        )
    path = Path(settings.certificate_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: certificate file not found (the rest backend reads it locally)")
    assert settings.organization is not None and settings.app_id is not None
    credential = AppCredential(
        client_id=settings.app_id,
        certificate_path=path,
        thumbprint=settings.certificate_thumbprint,
        password=credentials.certificate_password,
    )
    if cloud is None:
        cloud = _cloud(settings)
    return RestBackend(
        cloud=cloud,
        organization=settings.organization,
        credential=credential,
        ca_bundle=settings.ca_bundle,
    )


def _loopback_origin(server: str, port: int | None) -> str:
    """``--server`` with the rest backend: only a loopback origin standing in for every host of the cloud
    (the URL ``mia sim serve --api rest`` prints)."""
    origin = server if "://" in server else f"https://{server}"
    parts = urlsplit(origin)
    if parts.scheme != "https" or parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigError(
            f"--server {server}: the rest backend talks to Microsoft's own hosts for the chosen cloud",
            hint="drop --server (it names a WinRM jump host for --backend psrp), or give the https://127.0.0.1:PORT "
            "URL that `mia sim serve --api rest` printed",
        )
    if port and not parts.port:
        origin = f"{origin.rstrip('/')}:{port}"
    return f"{parts.scheme}://{urlsplit(origin).netloc}"


def _factory(settings: ConnectionSettings, credentials: Credentials) -> ExoBackend:
    return rest_backend(settings, credentials)


register_backend("rest", _factory)
