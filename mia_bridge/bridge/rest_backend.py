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
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.factory import Credentials, register_backend
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.bridge.rest_auth import AppCredential
from mia_bridge.errors import ConfigError


def rest_backend(settings: ConnectionSettings, credentials: Credentials, *, cloud: Cloud | None = None) -> RestBackend:
    """A RestBackend for ``settings``; ``cloud`` overrides the one named by ``exchange_environment``."""
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
        cloud = get_cloud(settings.exchange_environment or "worldwide")
        if settings.server:
            cloud = cloud.with_loopback(_simulator_origin(settings.server, settings.port))
    return RestBackend(
        cloud=cloud,
        organization=settings.organization,
        credential=credential,
        ca_bundle=settings.ca_bundle,
    )


def _simulator_origin(server: str, port: int | None) -> str:
    """``--server`` with the rest backend: only the URL of a local simulator (``mia sim serve --api rest``)."""
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
