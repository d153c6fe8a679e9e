"""The simulator as a backend of ``bridge.factory``: its options, its tenant, its servers.

The production settings (``bridge.config.ConnectionSettings``) and everything in ``bridge/`` know
nothing of the simulator. Its settings live in ``SimOptions`` (every ``--sim-*`` flag); the CLI, the
only layer that knows both, builds them and calls ``register(options)``; after that
``open_backend(settings, Credentials(), backend="sim")`` gives an unopened ``SimBackend``.
Opening it builds the simulated tenant, starts its server on a free 127.0.0.1 port, speaking what
``settings`` ask for (``backend="psrp"``: WinRM/PSRP with the same transport and auth, HTTPS with a
throwaway CA and Negotiate by default; ``backend="rest"``: the admin API, Graph and the token service
over loopback HTTPS), and connects the real pypsrp or REST backend to it::

    options = SimOptions(records=1200, seed=7)
    with sim_session(ConnectionSettings(transport="http", auth="basic"), options) as session:
        session.backend.invoke(CmdletCall("Get-ConnectionInformation"))   # the real pypsrp backend
        start, end = session.records_period()   # whole days covering the tenant's audit records

``sim_session`` also yields the tenant and the server (tests look at both); ``build_tenant`` makes the
tenant alone (``mia sim serve`` serves it itself).
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mia_bridge.bridge.backend import CmdletCall, CmdletResult, ExoBackend, Secret
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.endpoint import JEA_CONFIGURATION
from mia_bridge.bridge.factory import Credentials, open_backend, register_backend
from mia_bridge.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from mia_bridge.sim.rest_server import RestSimServer
    from mia_bridge.sim.server import SimServer
    from mia_bridge.sim.tenant import Tenant

__all__ = [
    "BACKEND_NAME", "SIM_PASSWORD_ENV", "SimBackend", "SimOptions", "SimSession", "build_tenant", "register",
    "sim_session", "tenant_for",
]

BACKEND_NAME = "sim"  # the name ``register`` gives the simulator in ``bridge.factory``
SIM_PASSWORD_ENV = "MIA_SIM_PASSWORD"  # the password ``mia sim serve`` accepts (never from argv)
SIM_AUTH = ("negotiate", "ntlm", "basic", "certificate")  # what the in-process PSRP server offers a client


@dataclass(frozen=True)
class SimOptions:
    """The simulated tenant and its simulated users (``--sim-*``); nothing here reaches a real tenant."""

    records: int = 5000  # audit records in the tenant (--sim-records)
    seed: int = 0  # scenario seed (--sim-seed)
    premium: bool = True  # Audit Premium licence (--sim-no-premium turns it off)
    ingestion: bool = True  # unified audit log ingestion (--sim-ingestion-off)
    mailbox_audit_retired: bool = False  # Search-MailboxAuditLog answers CommandNotFound
    approve_after_s: float = 0.3  # the simulated user approves a device code / browser sign-in this long after
    user_roles: str | None = None  # comma-separated roles of the simulated signed-in user (default Compliance Admin.)
    quirks: tuple[str, ...] = ()  # --sim-quirk values (sim/quirks.py parse); () = the simulator's defaults

    def validate(self) -> None:
        if self.records < 0:
            raise ConfigError("--sim-records cannot be negative")


def build_tenant(
    options: SimOptions,
    *,
    organization: str | None = None,
    app_id: str | None = None,
    certificate_thumbprint: str | None = None,
    certificate_path: str | None = None,
    certificate_password: str | None = None,
    quirk_flag: str = "--sim-quirk",
) -> Tenant:
    """The compromised tenant ``options`` describe, accepting the organization, app and certificate given
    (the simulator's defaults otherwise). An unknown quirk is a UsageError naming ``quirk_flag``."""
    from mia_bridge.sim import quirks
    from mia_bridge.sim.scenario import build_tenant as build_scenario
    from mia_bridge.sim.tenant import TenantConfig

    options.validate()
    try:
        chosen = quirks.parse(options.quirks, ingestion_enabled=options.ingestion)
    except ValueError as exc:
        raise UsageError(f"{quirk_flag}: {exc}") from None
    config = TenantConfig(
        premium=options.premium,
        ingestion_enabled=options.ingestion,
        mailbox_audit_retired=options.mailbox_audit_retired,
        seed=options.seed,
        quirks=chosen,
    )
    given = {"organization": organization, "app_id": app_id, "certificate_thumbprint": certificate_thumbprint,
             "certificate_path": certificate_path, "certificate_password": certificate_password}
    for field_name, value in given.items():
        if value:
            setattr(config, field_name, value)
    return build_scenario(config, scenario="compromised", records=options.records)


def tenant_for(conn: ConnectionSettings, options: SimOptions, *, certificate_password: str | None = None) -> Tenant:
    """The tenant for ``conn``: it accepts the organization, app and certificate ``conn`` names, if any."""
    return build_tenant(options, organization=conn.organization, app_id=conn.app_id,
                        certificate_thumbprint=conn.certificate_thumbprint, certificate_path=conn.certificate_path,
                        certificate_password=certificate_password)


@dataclass
class SimSession:
    """A connected backend to an in-process simulated tenant, with the tenant and its server."""

    backend: ExoBackend
    tenant: Tenant
    server: SimServer | RestSimServer

    def records_period(self) -> tuple[datetime, datetime] | None:
        """Whole UTC days covering the tenant's audit records (None when it holds none): the period the
        demo investigates, since the simulated data sits in a fixed month."""
        return self.tenant.records_period()

    def now(self) -> datetime:
        """The simulated tenant's present (``Tenant.now``): clients count back from it what the service counts
        back from its own (retention, message trace's reach, doctor's probes)."""
        return self.tenant.now()


@contextmanager
def sim_session(
    conn: ConnectionSettings, options: SimOptions | None = None, *, tenant: Tenant | None = None
) -> Iterator[SimSession]:
    """Start the simulator for ``conn`` on 127.0.0.1 (``tenant``, or the one ``options`` describe) and
    yield the opened pypsrp (``conn.backend == "psrp"``) or REST backend connected to it."""
    options = options or SimOptions()
    options.validate()
    if conn.backend == "rest":  # the same tenant over loopback HTTPS (admin API, Graph, token service)
        from mia_bridge.sim.rest_session import rest_sim_session

        tenant = tenant if tenant is not None else tenant_for(conn, options)
        with rest_sim_session(conn, tenant, options) as (rest, rest_server):
            yield SimSession(backend=rest, tenant=tenant, server=rest_server)
        return
    from mia_bridge.sim.server import SimServer

    if conn.auth not in SIM_AUTH:
        raise ConfigError(
            f"the simulator does not offer {conn.auth} authentication",
            hint="use --auth negotiate, ntlm, basic or certificate (with https) with --sim",
        )
    if conn.auth == "certificate" and conn.transport != "https":
        raise ConfigError("certificate authentication needs --transport https")
    cert_password = _secrets.token_urlsafe(12) if conn.certificate_path and not conn.certificate_thumbprint else None
    if tenant is None:
        tenant = tenant_for(conn, options, certificate_password=cert_password)
    config = tenant.config
    settings = replace(
        conn,
        backend="psrp",
        server="127.0.0.1",
        organization=conn.organization or config.organization,
        app_id=conn.app_id or config.app_id,
        certificate_thumbprint=conn.certificate_thumbprint
        or (None if conn.certificate_path else config.certificate_thumbprint),
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


class SimBackend:
    """The simulator behind the ``ExoBackend`` interface, unopened. Opening it runs ``sim_session``
    (tenant, server, connected backend); ``with SimBackend(...) as exo`` gives the connected pypsrp or
    REST backend itself, so callers that clone connections (the collect engine) get the real one.
    Closing stops the server."""

    name = BACKEND_NAME

    def __init__(self, settings: ConnectionSettings, options: SimOptions | None = None, *,
                 tenant: Tenant | None = None) -> None:
        self.settings = settings
        self.options = options or SimOptions()
        self._tenant = tenant
        self._stack: ExitStack | None = None
        self.session: SimSession | None = None

    def open(self) -> None:
        if self.session is not None:
            return
        stack = ExitStack()
        try:
            self.session = stack.enter_context(sim_session(self.settings, self.options, tenant=self._tenant))
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def _opened(self) -> SimSession:
        if self.session is None:
            raise ConfigError("the simulated tenant's backend is not open")
        return self.session

    def invoke(self, call: CmdletCall) -> CmdletResult:
        return self._opened().backend.invoke(call)

    def close(self) -> None:
        stack, self._stack, self.session = self._stack, None, None
        if stack is not None:
            stack.close()

    def describe(self) -> dict[str, Any]:
        return self._opened().backend.describe()

    def __enter__(self) -> ExoBackend:
        self.open()
        return self._opened().backend

    def __exit__(self, *exc: object) -> None:
        self.close()


def register(options: SimOptions) -> None:
    """Register the simulator as ``bridge.factory``'s ``sim`` backend, serving the tenant ``options`` describe."""
    options.validate()

    def factory(settings: ConnectionSettings, credentials: Credentials) -> ExoBackend:
        return SimBackend(settings, options)  # it makes its own throwaway secrets: ``credentials`` are unused

    register_backend(BACKEND_NAME, factory)
