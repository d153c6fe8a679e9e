"""Connection settings: a TOML file (tenant, jump host, auth, certificate, output dir, backend) with
command-line overrides. No secret is ever read from or written to this file.

    settings = load_settings(Path("mia.toml"), overrides={"server": "jump02", "port": None})
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mia_bridge.bridge.endpoint import ENDPOINT_KINDS
from mia_bridge.errors import ConfigError

CONFIG_ENV = "MIA_CONFIG"
BACKENDS = ("psrp", "rest")
TRANSPORTS = ("http", "https")
AUTH_METHODS = ("negotiate", "ntlm", "kerberos", "certificate", "basic", "device-code", "browser")
DELEGATED_AUTH = ("device-code", "browser")  # --backend rest only: a responder's own sign-in
JUMP_HOST_HINT = "pass --server HOST (or set [jump_host] server in the config file)"


@dataclass
class ConnectionSettings:
    """How to reach one tenant. Holds no secret: passwords come from ``bridge.secrets``."""

    server: str | None = None  # the Windows jump host running ExchangeOnlineManagement
    port: int | None = None  # default 5986 (https) / 5985 (http)
    transport: str = "https"
    auth: str = "negotiate"
    username: str | None = None
    ca_bundle: str | None = None
    spn_host: str | None = None  # Kerberos SPN host when --server is an IP address or an alias
    client_certificate: str | None = None  # --auth certificate: PEM certificate mapped to a local account
    client_key: str | None = None  # its PEM private key
    configuration_name: str = "Microsoft.PowerShell"  # the JEA endpoint, e.g. MiaBridge
    # plain, jea, or auto (jea when configuration_name is MiaBridge): see bridge/endpoint.py.
    endpoint_kind: str = "auto"
    organization: str | None = None  # contoso.onmicrosoft.com
    app_id: str | None = None
    certificate_thumbprint: str | None = None
    certificate_path: str | None = None  # on the jump host (with MIA_CERT_PASSWORD)
    exchange_environment: str | None = None  # O365Default, O365USGovGCCHigh, O365China, …
    backend: str = "psrp"
    client_id: str | None = None  # --auth device-code/browser: the public-client app registration
    token_cache_insecure_file: str | None = None  # opt-in plaintext (0600) token cache instead of the OS store
    no_token_cache: bool = False  # delegated sign-in without a persistent cache (prompt on every run)
    reconnection_retries: int = 3  # connect retries (backoff 2 s, 4 s, 8 s …)
    operation_timeout: int = 20  # WSMan OperationTimeout of each Receive long poll, seconds
    read_timeout: int = 30  # HTTP read timeout, seconds (must exceed operation_timeout)
    output_dir: str | None = None
    config_path: str | None = None  # where the file values came from

    def validate(self, *, jump_host_required: bool = True) -> None:
        """ConfigError for settings no backend can use. ``jump_host_required=False``: a backend that serves
        these settings itself (``open_backend(settings, backend=NAME)``) needs no ``server`` for psrp."""
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"transport must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}")
        if self.auth not in AUTH_METHODS:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_METHODS)}, not {self.auth!r}")
        if self.endpoint_kind not in ENDPOINT_KINDS:
            raise ConfigError(
                f"endpoint kind must be one of {', '.join(ENDPOINT_KINDS)}, not {self.endpoint_kind!r}",
                hint="jea: the MiaBridge role capability; plain: a standard endpoint (ps_scripts/README.md)",
            )
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is out of range")
        if self.certificate_thumbprint and self.certificate_path:
            raise ConfigError("give either a certificate thumbprint or a certificate path, not both")
        if self.reconnection_retries < 0:
            raise ConfigError("reconnection_retries cannot be negative")
        if not 0 < self.operation_timeout < self.read_timeout:
            raise ConfigError("read_timeout must be longer than operation_timeout (both positive, in seconds)")
        if self.auth in DELEGATED_AUTH and self.backend != "rest":
            raise ConfigError(
                f"--auth {self.auth} signs in to Exchange Online's admin API and Graph directly",
                hint="add --backend rest (the psrp backend signs in on the jump host)",
            )
        if self.token_cache_insecure_file and self.no_token_cache:
            raise ConfigError("give either --token-cache-insecure-file or --no-token-cache, not both")
        if jump_host_required and self.backend == "psrp" and not self.server:
            raise ConfigError("no jump host given", hint=JUMP_HOST_HINT)

    def describe(self) -> dict[str, Any]:
        """JSON-safe view for manifests (there is nothing secret in here)."""
        return dataclasses.asdict(self)


# TOML section/key → ConnectionSettings field.
_FILE_KEYS: dict[tuple[str, str], str] = {
    ("tenant", "organization"): "organization",
    ("tenant", "app_id"): "app_id",
    ("tenant", "certificate_thumbprint"): "certificate_thumbprint",
    ("tenant", "certificate_path"): "certificate_path",
    ("tenant", "exchange_environment"): "exchange_environment",
    ("tenant", "client_id"): "client_id",
    ("jump_host", "server"): "server",
    ("jump_host", "port"): "port",
    ("jump_host", "transport"): "transport",
    ("jump_host", "auth"): "auth",
    ("jump_host", "username"): "username",
    ("jump_host", "ca_bundle"): "ca_bundle",
    ("jump_host", "spn_host"): "spn_host",
    ("jump_host", "client_certificate"): "client_certificate",
    ("jump_host", "client_key"): "client_key",
    ("jump_host", "configuration_name"): "configuration_name",
    ("jump_host", "endpoint_kind"): "endpoint_kind",
    ("jump_host", "reconnection_retries"): "reconnection_retries",
    ("jump_host", "operation_timeout"): "operation_timeout",
    ("jump_host", "read_timeout"): "read_timeout",
    ("output", "dir"): "output_dir",
    ("backend", "name"): "backend",
}
_SECRET_WORDS = ("password", "secret", "token")


def read_config_file(path: Path) -> dict[str, Any]:
    """The ConnectionSettings fields a TOML file sets; ConfigError naming the file and key if wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found", hint="create one with `mia config init`") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(ConnectionSettings)}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key, value in table.items():
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise ConfigError(
                    f"{path}: [{section}] {key}: secrets do not belong in the config file",
                    hint="use MIA_WINRM_PASSWORD / MIA_CERT_PASSWORD or the OS keyring (service mia-bridge)",
                )
            field_name = _FILE_KEYS.get((section, key))
            if field_name is None:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            expected = int if "int" in str(types[field_name]) else str
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ConfigError(f"{path}: [{section}] {key} must be a {expected.__name__}")
            values[field_name] = value
    return values


def load_settings(config_path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> ConnectionSettings:
    """Defaults ← config file (``config_path`` or $MIA_CONFIG) ← overrides that are not None."""
    values: dict[str, Any] = {}
    if config_path is None and os.environ.get(CONFIG_ENV):
        config_path = Path(os.environ[CONFIG_ENV])
    if config_path is not None:
        values.update(read_config_file(config_path))
        values["config_path"] = str(config_path)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    known = {f.name for f in dataclasses.fields(ConnectionSettings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown connection settings: {', '.join(sorted(unknown))}")
    return ConnectionSettings(**values)


CONFIG_TEMPLATE = """\
# mia-bridge configuration. Command-line options override every value here.
# Secrets never go in this file: the WinRM password comes from MIA_WINRM_PASSWORD or the OS keyring
# (service "mia-bridge", entry = the user name), the certificate file password from MIA_CERT_PASSWORD.

[tenant]
# The tenant's initial domain, as Connect-ExchangeOnline -Organization expects it.
organization = "contoso.onmicrosoft.com"
# The Entra app registration (Exchange.ManageAsApp + the View-Only Audit Logs role).
app_id = "00000000-0000-0000-0000-000000000000"
# The app certificate stays on the jump host: its thumbprint in Cert:\\LocalMachine\\My ...
certificate_thumbprint = "0000000000000000000000000000000000000000"
# ... or a .pfx path on the jump host (password from MIA_CERT_PASSWORD); use one or the other.
# certificate_path = 'C:\\certs\\mia-app.pfx'
# --backend rest --auth device-code|browser: your public-client app registration (README: Delegated sign-in).
# client_id = "00000000-0000-0000-0000-000000000000"
# Sovereign clouds: O365USGovGCCHigh, O365USGovDoD, O365China.
# exchange_environment = "O365Default"

[jump_host]
# Windows host with the ExchangeOnlineManagement module, reached over WinRM.
server = "jump01.corp.example"
transport = "https"        # https (5986) by default; http only with negotiate/kerberos message encryption
# port = 5986
auth = "negotiate"         # negotiate | kerberos | ntlm | certificate | basic (basic only over https)
username = "CORP\\\\svc-mia"
# CA that issued the jump host's WinRM certificate (validation is always on).
# ca_bundle = "/etc/mia-bridge/corp-ca.pem"
# Kerberos asks for a ticket to HOST/<server>; when server is an IP address or an alias, name the host here.
# spn_host = "jump01.corp.example"
# auth = "certificate": the client certificate mapped to a local account on the jump host (PEM files).
# client_certificate = "/etc/mia-bridge/winrm-client.pem"
# client_key = "/etc/mia-bridge/winrm-client.key"
# The JEA session configuration registered by ps_scripts/ (Microsoft.PowerShell if none).
configuration_name = "MiaBridge"
# jea: the role capability's functions; plain: a standard endpoint (the cmdlets + ConvertTo-Json);
# auto: jea when configuration_name is MiaBridge (ps_scripts/README.md).
# endpoint_kind = "auto"
# reconnection_retries = 3  # connect retries with backoff
# operation_timeout = 20    # seconds per Receive long poll (at most 60 on Windows)
# read_timeout = 30         # seconds; longer than operation_timeout

[output]
dir = "cases"

[backend]
name = "psrp"              # psrp (WinRM jump host) | rest
"""


def write_template(path: Path, *, force: bool = False) -> None:
    """Write the commented template; refuse to overwrite an existing file unless ``force``."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the config file ({exc.strerror})") from None
