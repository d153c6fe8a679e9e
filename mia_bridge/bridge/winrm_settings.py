"""Settings of the pypsrp backend: where the jump host is, how to log on, how to reach Exchange.

``validate()`` refuses unsafe or incomplete combinations before any traffic (Basic over plain HTTP
to a remote host, certificate auth without HTTPS, Exchange without app id or certificate).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.endpoint import resolve_kind
from mia_bridge.errors import UsageError

AUTH_METHODS = ("negotiate", "ntlm", "kerberos", "certificate", "basic")
DEFAULT_CONFIGURATION = "Microsoft.PowerShell"


@dataclass(frozen=True)
class WinRMSettings:
    """Everything needed to reach the jump host and connect it to Exchange Online."""

    server: str
    port: int | None = None  # 5986 for https, 5985 for http
    transport: str = "https"
    auth: str = "negotiate"
    username: str | None = None
    password: Secret | None = None
    ca_bundle: str | None = None  # PEM file; None = the system store
    spn_host: str | None = None  # Kerberos: the host part of the server's SPN when ``server`` is an IP or alias
    cert_validation: bool = True
    client_cert_pem: str | None = None  # certificate auth
    client_key_pem: str | None = None
    configuration_name: str = DEFAULT_CONFIGURATION
    # plain (real cmdlets + ConvertTo-Json), jea (the MiaBridge role capability's functions) or auto
    # (jea when configuration_name is MiaBridge); see bridge/endpoint.py.
    endpoint_kind: str = "auto"
    path: str = "wsman"
    # Exchange Online app-only connection, made once per pool (skipped when organization is None).
    organization: str | None = None
    app_id: str | None = None
    certificate_thumbprint: str | None = None
    certificate_path: str | None = None  # on the jump host
    certificate_password: Secret | None = None
    exchange_environment: str | None = None  # O365USGovGCCHigh, O365China, …
    operation_timeout: int = 20
    read_timeout: int = 30
    connection_timeout: int = 30
    reconnection_retries: int = 3
    reconnection_backoff: float = 2.0
    max_envelope_size: int = 512_000  # Windows' default MaxEnvelopeSizekb is 500
    idle_timeout: int = 3600

    @property
    def kind(self) -> str:
        """The endpoint kind in effect: plain or jea."""
        return resolve_kind(self.endpoint_kind, self.configuration_name)

    @property
    def ssl(self) -> bool:
        return self.transport == "https"

    @property
    def effective_port(self) -> int:
        return self.port or (5986 if self.ssl else 5985)

    @property
    def endpoint(self) -> str:
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{self.transport}://{host}:{self.effective_port}/{self.path}"

    def validate(self) -> None:
        """Refuse unsafe or incomplete combinations before any traffic."""
        self.kind  # noqa: B018 -- refuses an unknown endpoint kind
        if self.transport not in ("http", "https"):
            raise UsageError(f"transport must be http or https, not {self.transport!r}")
        if self.auth not in AUTH_METHODS:
            raise UsageError(f"auth must be one of {', '.join(AUTH_METHODS)}, not {self.auth!r}")
        if self.auth == "basic" and not self.ssl and not _is_loopback(self.server):
            raise UsageError(
                "Basic authentication over plain HTTP would send the password in clear text",
                hint="use --transport https (port 5986), or negotiate/kerberos",
            )
        if self.auth == "certificate" and (not self.ssl or not self.client_cert_pem or not self.client_key_pem):
            raise UsageError("certificate authentication needs HTTPS and a client certificate and key (PEM)")
        if self.auth in ("basic", "ntlm") and not self.username:
            raise UsageError(f"{self.auth} authentication needs --username")
        if self.organization and not self.app_id:
            raise UsageError("connecting to Exchange Online needs --app-id as well as --organization")
        if self.organization and not (self.certificate_thumbprint or self.certificate_path):
            raise UsageError(
                "connecting to Exchange Online needs --certificate-thumbprint or --certificate-path",
                hint="app-only authentication: the certificate stays on the jump host",
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
