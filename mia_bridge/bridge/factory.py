"""Build the backend a ConnectionSettings asks for: ``open_backend(settings) -> ExoBackend``.

The backend is returned unopened (use it as a context manager: ``with open_backend(s) as exo``). Backends
register a factory by name; ``psrp`` (pypsrp to a WinRM jump host) is built in. The REST backend plugs in
by defining ``mia_bridge/bridge/rest_backend.py`` that calls ``register_backend("rest", factory)`` on import.

A backend registered under another name serves the settings itself: ``open_backend(settings, credentials,
backend="sim")`` builds it instead of ``settings.backend`` (which then says which protocol it speaks).
The simulator is one (``mia_bridge.sim.backend.register``, called by the CLI); nothing here knows it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from mia_bridge.bridge.backend import ExoBackend, Secret
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.secrets import KEYRING_SERVICE, WINRM_PASSWORD_ENV, certificate_password, winrm_password
from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings
from mia_bridge.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    """Secrets resolved for one connection (never part of ConnectionSettings)."""

    winrm_password: Secret | None = None
    certificate_password: Secret | None = None


BackendFactory = Callable[[ConnectionSettings, Credentials], ExoBackend]
_FACTORIES: dict[str, BackendFactory] = {}
# Modules that register a backend when imported, tried when the name is not registered yet.
_PLUGIN_MODULES = {"rest": "mia_bridge.bridge.rest_backend"}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``factory`` the builder of backend ``name`` (replacing an earlier one of that name)."""
    _FACTORIES[name] = factory


def registered_backends() -> tuple[str, ...]:
    """The names registered so far (plug-in modules register on first use)."""
    return tuple(_FACTORIES)


def resolve_credentials(settings: ConnectionSettings, *, interactive: bool = True) -> Credentials:
    """Secrets from the environment, the keyring or a prompt (only what the settings need)."""
    password = None
    if settings.backend == "psrp" and settings.auth in ("basic", "ntlm", "negotiate", "kerberos") and settings.username:
        password = winrm_password(settings.username, interactive=interactive)
        # Negotiate/Kerberos may use a ticket from the credential cache instead.
        if password is None and settings.auth in ("basic", "ntlm"):
            raise ConfigError(
                f"no WinRM password for {settings.username}",
                hint=f"set {WINRM_PASSWORD_ENV} or store it in the OS keyring (service {KEYRING_SERVICE!r}, "
                "entry = the user name); it is never taken from the command line",
            )
    cert_password = None
    if settings.certificate_path and not settings.certificate_thumbprint:
        cert_password = certificate_password(settings.certificate_path, interactive=interactive)
    return Credentials(password, cert_password)


def open_backend(
    settings: ConnectionSettings,
    credentials: Credentials | None = None,
    *,
    interactive: bool = True,
    backend: str | None = None,
) -> ExoBackend:
    """The (unopened) backend for ``settings``; secrets are looked up unless given. ``backend`` names a
    registered backend that serves ``settings`` itself instead of ``settings.backend`` (no jump host needed)."""
    name = backend or settings.backend
    settings.validate(jump_host_required=name == settings.backend)
    if credentials is None:
        credentials = resolve_credentials(settings, interactive=interactive)
    factory = _FACTORIES.get(name)
    if factory is None and name in _PLUGIN_MODULES:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(_PLUGIN_MODULES[name])
        factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"the {name} backend is not available in this build")
    return factory(settings, credentials)


def winrm_settings(settings: ConnectionSettings, credentials: Credentials) -> WinRMSettings:
    if not settings.server:
        raise ConfigError("no jump host given", hint="pass --server HOST or set [jump_host] server")
    return WinRMSettings(
        server=settings.server,
        port=settings.port,
        transport=settings.transport,
        auth=settings.auth,
        username=settings.username,
        password=credentials.winrm_password,
        ca_bundle=settings.ca_bundle,
        spn_host=settings.spn_host,
        client_cert_pem=settings.client_certificate,
        client_key_pem=settings.client_key,
        configuration_name=settings.configuration_name,
        endpoint_kind=settings.endpoint_kind,
        organization=settings.organization,
        app_id=settings.app_id,
        certificate_thumbprint=settings.certificate_thumbprint,
        certificate_path=settings.certificate_path,
        certificate_password=credentials.certificate_password,
        exchange_environment=settings.exchange_environment,
        reconnection_retries=settings.reconnection_retries,
        operation_timeout=settings.operation_timeout,
        read_timeout=settings.read_timeout,
    )


def _psrp_factory(settings: ConnectionSettings, credentials: Credentials) -> ExoBackend:
    return WinRMBackend(winrm_settings(settings, credentials))


register_backend("psrp", _psrp_factory)
