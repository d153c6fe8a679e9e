"""Connection options shared by every command that talks to a tenant (collect, doctor, investigate).

Use::

    from mia_bridge.cli.connection import ConnectionSettings, connection_options, open_connection

    @connection_options
    def collect(out: Path = typer.Option(...), *, conn: ConnectionSettings) -> None:
        with open_connection(conn) as exo:          # an opened ExoBackend
            exo.invoke(CmdletCall("Get-AdminAuditLogConfig"))

``connection_options`` adds these options to the command and passes one ``conn`` keyword argument:
``--server --port --transport http|https --auth negotiate|ntlm|kerberos|certificate|basic --username
--spn-host NAME --ca-bundle FILE --configuration-name NAME --organization --app-id --certificate-thumbprint |
--certificate-path --exchange-environment --config FILE --backend psrp|rest --sim [--sim-records N
--sim-seed N --sim-no-premium --sim-ingestion-off --sim-mailbox-audit-retired]``. Values not given
come from the TOML config file (``--config`` or $MIA_CONFIG), then the defaults. Passwords never
come from the command line: ``MIA_WINRM_PASSWORD`` / ``MIA_CERT_PASSWORD``, the keyring, or a prompt.

``open_connection(conn)`` yields an opened backend and closes it afterwards. With ``--sim`` it builds
the simulated tenant, starts the PSRP server in-process on a free 127.0.0.1 port (same transport and
auth as asked: HTTPS with a throwaway CA and Negotiate by default) and connects the real pypsrp
backend to it. ``sim_session(conn)`` does the same and also yields the tenant and server.
"""

from __future__ import annotations

import functools
import inspect
import secrets as _secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import typer

from mia_bridge.bridge.backend import ExoBackend, Secret
from mia_bridge.bridge.config import ConnectionSettings, load_settings
from mia_bridge.bridge.endpoint import JEA_CONFIGURATION
from mia_bridge.bridge.factory import Credentials, open_backend
from mia_bridge.errors import ConfigError, UsageError

__all__ = ["ConnectionSettings", "SimSession", "connection_options", "open_connection", "sim_session"]

F = TypeVar("F", bound=Callable[..., Any])
_PANEL = "Connection"
_SIM_PANEL = "Simulator"

def _opt(default: Any, flag: str, text: str, panel: str = _PANEL) -> Any:
    return typer.Option(default, flag, help=text, rich_help_panel=panel)


# (parameter name, annotation, typer.Option) in the order they appear in --help.
_OPTIONS: list[tuple[str, Any, Any]] = [
    ("server", str | None, _opt(None, "--server", "WinRM jump host.")),
    ("port", int | None, _opt(None, "--port", "WinRM port (5986 https, 5985 http).")),
    ("transport", str | None, _opt(None, "--transport", "http or https (default https).")),
    ("auth", str | None, _opt(None, "--auth", "negotiate, ntlm, kerberos, certificate or basic (default negotiate; "
                              "basic only over https); with --backend rest: device-code or browser to sign in "
                              "as yourself (default: app-only certificate).")),
    ("username", str | None, _opt(None, "--username", "WinRM user (DOMAIN\\user); the password comes from "
                                  "MIA_WINRM_PASSWORD, the keyring or a prompt. With --auth device-code/browser: "
                                  "the account to sign in as.")),
    ("ca_bundle", Path | None, _opt(None, "--ca-bundle", "PEM CA bundle for the jump host's HTTPS certificate.")),
    ("spn_host", str | None, _opt(None, "--spn-host", "Kerberos: host name in the jump host's SPN (HOST/name) "
                                  "when --server is an IP address or an alias.")),
    ("configuration_name", str | None, _opt(None, "--configuration-name", "Session configuration (JEA endpoint).")),
    ("endpoint_kind", str | None, _opt(None, "--endpoint-kind", "jea (the MiaBridge role capability's functions), "
                                       "plain (a standard endpoint: the cmdlets + ConvertTo-Json) or auto (jea when "
                                       "--configuration-name is MiaBridge; the default).")),
    ("organization", str | None, _opt(None, "--organization", "Tenant, e.g. contoso.onmicrosoft.com.")),
    ("app_id", str | None, _opt(None, "--app-id", "Entra app id for app-only authentication.")),
    ("certificate_thumbprint", str | None, _opt(None, "--certificate-thumbprint", "App certificate thumbprint in "
                                                "the jump host's certificate store.")),
    ("certificate_path", str | None, _opt(None, "--certificate-path", "App certificate .pfx on the jump host "
                                          "(password from MIA_CERT_PASSWORD).")),
    ("exchange_environment", str | None, _opt(None, "--exchange-environment", "Sovereign cloud, e.g. "
                                              "O365USGovGCCHigh.")),
    ("config", Path | None, _opt(None, "--config", "TOML config file (default $MIA_CONFIG).")),
    ("backend", str | None, _opt(None, "--backend", "psrp (WinRM jump host) or rest.")),
    ("client_id", str | None, _opt(None, "--client-id", "--auth device-code/browser: the public-client app "
                                   "registration to sign in through.")),
    ("token_cache_insecure_file", Path | None, _opt(None, "--token-cache-insecure-file", "Keep delegated tokens "
                                                    "in this PLAINTEXT file (0600) where no OS secure store exists.")),
    ("no_token_cache", bool, _opt(False, "--no-token-cache", "Delegated sign-in without a token cache (sign in "
                                  "on every run).")),
    ("sim", bool, _opt(False, "--sim", "Use the built-in simulated tenant (in-process PSRP server).", _SIM_PANEL)),
    ("sim_records", int, _opt(5000, "--sim-records", "Audit records in the simulated tenant.", _SIM_PANEL)),
    ("sim_seed", int, _opt(0, "--sim-seed", "Seed of the simulated scenario.", _SIM_PANEL)),
    ("sim_no_premium", bool, _opt(False, "--sim-no-premium", "Simulated tenant without Audit Premium.", _SIM_PANEL)),
    ("sim_ingestion_off", bool, _opt(False, "--sim-ingestion-off", "Simulated tenant with unified audit log "
                                     "ingestion off.", _SIM_PANEL)),
    ("sim_mailbox_audit_retired", bool, _opt(False, "--sim-mailbox-audit-retired", "Search-MailboxAuditLog is "
                                             "retired in the simulated tenant.", _SIM_PANEL)),
    ("sim_approve_after", float, _opt(0.3, "--sim-approve-after", "Seconds before the simulated user approves "
                                      "a device-code or browser sign-in.", _SIM_PANEL)),
    ("sim_user_roles", str | None, _opt(None, "--sim-user-roles", "Roles of the simulated signed-in user, "
                                        "comma-separated (default Compliance Administrator).", _SIM_PANEL)),
    ("sim_quirk", list[str] | None, _opt(None, "--sim-quirk", "Service misbehaviour the simulated tenant shows "
                                         "(repeat): plain-cap, result-count-echo, unsorted, session-crosstalk, "
                                         "session-expiry, dehydrated; no-NAME, default, none. Default: all but "
                                         "dehydrated (which follows --sim-ingestion-off).", _SIM_PANEL)),
]
_OPTION_NAMES = [name for name, _, _ in _OPTIONS]


def settings_from_options(values: dict[str, Any]) -> ConnectionSettings:
    """Option values (None = not given) merged over the config file and the defaults."""
    overrides: dict[str, Any] = {
        key: values.get(key)
        for key in (
            "server", "port", "transport", "auth", "username", "spn_host", "configuration_name", "endpoint_kind",
            "organization",
            "app_id", "certificate_thumbprint", "certificate_path", "exchange_environment", "backend", "client_id",
            "sim_user_roles",
        )
    }
    if values.get("token_cache_insecure_file") is not None:
        overrides["token_cache_insecure_file"] = str(values["token_cache_insecure_file"])
    if values.get("no_token_cache"):
        overrides["no_token_cache"] = True
    if values.get("ca_bundle") is not None:
        overrides["ca_bundle"] = str(values["ca_bundle"])
    overrides.update(
        sim=bool(values.get("sim")),
        sim_records=int(values.get("sim_records", 5000)),
        sim_seed=int(values.get("sim_seed", 0)),
        sim_premium=not values.get("sim_no_premium", False),
        sim_ingestion=not values.get("sim_ingestion_off", False),
        sim_mailbox_audit_retired=bool(values.get("sim_mailbox_audit_retired", False)),
        sim_approve_after_s=0.3 if values.get("sim_approve_after") is None else float(values["sim_approve_after"]),
        sim_quirks=tuple(values.get("sim_quirk") or ()),
    )
    config = values.get("config")
    settings = load_settings(Path(config) if config is not None else None, overrides)
    settings.validate()
    return settings


def connection_options(func: F) -> F:
    """Decorate a typer command: add the connection options, pass ``conn: ConnectionSettings``."""
    signature = inspect.signature(func)
    if "conn" not in signature.parameters:
        raise TypeError(f"{func.__name__} must accept a `conn` keyword argument")
    clash = set(_OPTION_NAMES) & set(signature.parameters)
    if clash:
        raise TypeError(f"{func.__name__} already has parameters named {', '.join(sorted(clash))}")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in _OPTION_NAMES}
        kwargs["conn"] = settings_from_options(values)
        return func(*args, **kwargs)

    params = [p for p in signature.parameters.values() if p.name != "conn"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for name, annotation, option in _OPTIONS
    ]
    # Keyword-only parameters must follow positional ones.
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = [p for p in params if p.kind == p.KEYWORD_ONLY]
    wrapper.__signature__ = signature.replace(parameters=positional + keyword + extra)  # type: ignore[attr-defined]
    hints = dict(getattr(func, "__annotations__", {}))
    hints.pop("conn", None)
    # typer reads annotations through get_type_hints; give it real types for the added options.
    try:
        resolved = dict(inspect.get_annotations(func, eval_str=True))
    except Exception:
        resolved = hints
    resolved.pop("conn", None)
    resolved.update({name: annotation for name, annotation, _ in _OPTIONS})
    wrapper.__annotations__ = resolved
    del wrapper.__wrapped__  # type: ignore[attr-defined]  # or inspect.signature would show the original
    return wrapper  # type: ignore[return-value]


# --- opening a connection ----------------------------------------------------------------------


@dataclass
class SimSession:
    """A connected backend to an in-process simulated tenant, with the tenant and server."""

    backend: ExoBackend
    tenant: Any
    server: Any


@contextmanager
def open_connection(conn: ConnectionSettings, *, interactive: bool = True) -> Iterator[ExoBackend]:
    """An opened backend for ``conn`` (the simulator when ``conn.sim``); closed on exit."""
    if conn.sim:
        with sim_session(conn) as session:
            yield session.backend
        return
    backend = open_backend(conn, interactive=interactive)
    with backend:
        yield backend


def build_sim_tenant(conn: ConnectionSettings, *, certificate_password: str | None = None) -> Any:
    """The simulated tenant for ``--sim`` (accepting the organization/app/certificate given, if any)."""
    from mia_bridge.sim import quirks
    from mia_bridge.sim.tenant import Tenant, TenantConfig

    try:
        chosen = quirks.parse(conn.sim_quirks, ingestion_enabled=conn.sim_ingestion)
    except ValueError as exc:
        raise UsageError(f"--sim-quirk: {exc}") from None
    config = TenantConfig(
        premium=conn.sim_premium,
        ingestion_enabled=conn.sim_ingestion,
        mailbox_audit_retired=conn.sim_mailbox_audit_retired,
        seed=conn.sim_seed,
        quirks=chosen,
    )
    for field_name in ("organization", "app_id", "certificate_thumbprint", "certificate_path"):
        value = getattr(conn, field_name)
        if value:
            setattr(config, field_name, value)
    if certificate_password is not None:
        config.certificate_password = certificate_password
    try:
        from mia_bridge.sim.scenario import build_tenant
    except ModuleNotFoundError:  # the scenario generator is not in this build yet: an empty tenant
        return Tenant(config)
    return build_tenant(config, scenario="compromised", records=conn.sim_records)


@contextmanager
def sim_session(conn: ConnectionSettings, *, tenant: Any = None) -> Iterator[SimSession]:
    """Start the simulator for ``conn`` on 127.0.0.1 and yield a connected pypsrp backend."""
    from mia_bridge.sim.server import SimServer

    if conn.backend == "rest":  # the same tenant over loopback HTTPS (admin API, Graph, token service)
        from mia_bridge.sim.rest_session import rest_sim_session

        tenant = tenant if tenant is not None else build_sim_tenant(conn)
        with rest_sim_session(conn, tenant) as (backend, server):
            yield SimSession(backend=backend, tenant=tenant, server=server)
        return
    if conn.auth not in ("negotiate", "ntlm", "basic", "certificate"):
        raise ConfigError(
            f"the simulator does not offer {conn.auth} authentication",
            hint="use --auth negotiate, ntlm, basic or certificate (with https) with --sim",
        )
    if conn.auth == "certificate" and conn.transport != "https":
        raise ConfigError("certificate authentication needs --transport https")
    cert_password = _secrets.token_urlsafe(12) if conn.certificate_path and not conn.certificate_thumbprint else None
    if tenant is None:
        tenant = build_sim_tenant(conn, certificate_password=cert_password)
    config = getattr(tenant, "config", None)
    settings = replace(
        conn,
        backend="psrp",
        server="127.0.0.1",
        organization=conn.organization or getattr(config, "organization", None),
        app_id=conn.app_id or getattr(config, "app_id", None),
        certificate_thumbprint=conn.certificate_thumbprint
        or (None if conn.certificate_path else getattr(config, "certificate_thumbprint", None)),
        username=conn.username or "mia",
    )
    # The MiaBridge configuration is the JEA endpoint of ps_scripts/, enforced by the simulator;
    # --endpoint-kind jea without a configuration name means that endpoint.
    if settings.endpoint_kind == "jea" and settings.configuration_name == ConnectionSettings.configuration_name:
        settings = replace(settings, configuration_name=JEA_CONFIGURATION)
    jea = settings.configuration_name.lower() == JEA_CONFIGURATION.lower()
    password = Secret(_secrets.token_urlsafe(18))
    assert settings.username is not None
    with SimServer(tenant, transport=settings.transport, auth=settings.auth, username=settings.username,
                   password=password, jea=jea) as server:
        settings = replace(settings, port=server.port,
                           ca_bundle=str(server.ca_path) if server.ca_path else settings.ca_bundle)
        if server.client_certificate is not None:
            cert, key = server.client_certificate
            settings = replace(settings, client_certificate=str(cert), client_key=str(key))
        credentials = Credentials(password, Secret(cert_password) if cert_password else None)
        psrp_backend = open_backend(settings, credentials)
        with psrp_backend:
            yield SimSession(backend=psrp_backend, tenant=tenant, server=server)
