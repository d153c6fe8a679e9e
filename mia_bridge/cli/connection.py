"""Connection options shared by every command that talks to a tenant (collect, doctor, enrich, investigate).

Use::

    from mia_bridge.cli.connection import ConnectionSettings, SimOptions, connection_options, open_connection

    @connection_options
    def collect(out: Path = typer.Option(...), *, conn: ConnectionSettings, simulator: SimOptions | None) -> None:
        with open_connection(conn, simulator) as exo:          # an opened ExoBackend
            exo.invoke(CmdletCall("Get-AdminAuditLogConfig"))

``connection_options`` adds these options to the command and passes two keyword arguments, ``conn``
(the production settings) and ``simulator`` (``SimOptions`` with ``--sim``, else None):
``--server --port --transport http|https --auth negotiate|ntlm|kerberos|certificate|basic --username
--spn-host NAME --ca-bundle FILE --configuration-name NAME --organization --app-id --certificate-thumbprint |
--certificate-path --exchange-environment --config FILE --backend psrp|rest --sim [--sim-records N
--sim-seed N --sim-no-premium --sim-ingestion-off --sim-mailbox-audit-retired --sim-approve-after S
--sim-user-roles R --sim-quirk Q]``. Values not given come from the TOML config file (``--config`` or
$MIA_CONFIG), then the defaults. Passwords never come from the command line: ``MIA_WINRM_PASSWORD`` /
``MIA_CERT_PASSWORD``, the keyring, or a prompt.

``open_connection(conn, simulator)`` yields an opened backend and closes it afterwards. With ``--sim``
this layer, the only one that knows both the production settings and the simulator, registers the
simulator as the ``sim`` backend (``mia_bridge.sim.backend``) and opens that: the simulated tenant served
in-process on a free 127.0.0.1 port, with the transport and auth asked for, reached by the real backend.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.bridge.config import JUMP_HOST_HINT, ConnectionSettings, load_settings
from mia_bridge.bridge.factory import Credentials, open_backend
from mia_bridge.errors import ConfigError
from mia_bridge.sim import backend as sim_backend
from mia_bridge.sim.backend import SimOptions

__all__ = ["ConnectionSettings", "SimOptions", "connection_options", "open_connection"]

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
        )
    }
    if values.get("token_cache_insecure_file") is not None:
        overrides["token_cache_insecure_file"] = str(values["token_cache_insecure_file"])
    if values.get("no_token_cache"):
        overrides["no_token_cache"] = True
    if values.get("ca_bundle") is not None:
        overrides["ca_bundle"] = str(values["ca_bundle"])
    config = values.get("config")
    settings = load_settings(Path(config) if config is not None else None, overrides)
    settings.validate(jump_host_required=False)
    if not values.get("sim") and settings.backend == "psrp" and not settings.server:
        raise ConfigError("no jump host given", hint=f"{JUMP_HOST_HINT}, or --sim for the simulator")
    return settings


def sim_options_from(values: dict[str, Any]) -> SimOptions | None:
    """The simulator's options for ``--sim`` (None without it)."""
    if not values.get("sim"):
        return None
    options = SimOptions(
        records=5000 if values.get("sim_records") is None else int(values["sim_records"]),
        seed=0 if values.get("sim_seed") is None else int(values["sim_seed"]),
        premium=not values.get("sim_no_premium", False),
        ingestion=not values.get("sim_ingestion_off", False),
        mailbox_audit_retired=bool(values.get("sim_mailbox_audit_retired", False)),
        approve_after_s=0.3 if values.get("sim_approve_after") is None else float(values["sim_approve_after"]),
        user_roles=values.get("sim_user_roles"),
        quirks=tuple(values.get("sim_quirk") or ()),
    )
    options.validate()
    return options


def connection_options(func: F) -> F:
    """Decorate a typer command: add the connection options, pass ``conn: ConnectionSettings`` and
    ``simulator: SimOptions | None``."""
    signature = inspect.signature(func)
    if "conn" not in signature.parameters or "simulator" not in signature.parameters:
        raise TypeError(f"{func.__name__} must accept `conn` and `simulator` keyword arguments")
    clash = set(_OPTION_NAMES) & set(signature.parameters)
    if clash:
        raise TypeError(f"{func.__name__} already has parameters named {', '.join(sorted(clash))}")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in _OPTION_NAMES}
        kwargs["conn"] = settings_from_options(values)
        kwargs["simulator"] = sim_options_from(values)
        return func(*args, **kwargs)

    params = [p for p in signature.parameters.values() if p.name not in ("conn", "simulator")]
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
    hints.pop("simulator", None)
    # typer reads annotations through get_type_hints; give it real types for the added options.
    try:
        resolved = dict(inspect.get_annotations(func, eval_str=True))
    except Exception:
        resolved = hints
    resolved.pop("conn", None)
    resolved.pop("simulator", None)
    resolved.update({name: annotation for name, annotation, _ in _OPTIONS})
    wrapper.__annotations__ = resolved
    del wrapper.__wrapped__  # type: ignore[attr-defined]  # or inspect.signature would show the original
    return wrapper  # type: ignore[return-value]


# --- opening a connection ----------------------------------------------------------------------


@contextmanager
def open_connection(conn: ConnectionSettings, simulator: SimOptions | None = None, *,
                    interactive: bool = True) -> Iterator[ExoBackend]:
    """An opened backend for ``conn`` (the simulated tenant ``simulator`` describes, when given); closed on exit."""
    if simulator is not None:
        sim_backend.register(simulator)
        # the simulator makes its own throwaway secrets: nothing to look up or prompt for
        backend = open_backend(conn, Credentials(), interactive=interactive, backend=sim_backend.BACKEND_NAME)
    else:
        backend = open_backend(conn, interactive=interactive)
    with backend as opened:
        yield opened


def _real_now() -> datetime:
    return datetime.now(tz=UTC)


@contextmanager
def open_tenant(conn: ConnectionSettings, simulator: SimOptions | None = None, *,
                interactive: bool = True) -> Iterator[tuple[ExoBackend, Callable[[], datetime]]]:
    """``open_connection``'s backend with the tenant's present: the real clock, or the simulated tenant's
    (``Tenant.now``: its records sit in a fixed month), from which whatever the service counts back from its own
    present must be counted (the retention, message trace's 90 days, doctor's probes)."""
    if simulator is None:
        with open_connection(conn, interactive=interactive) as backend:
            yield backend, _real_now
        return
    with sim_backend.sim_session(conn, simulator) as session:
        yield session.backend, session.now
