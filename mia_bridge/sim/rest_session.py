"""``--sim --backend rest``: the simulated tenant over loopback HTTPS and a REST backend connected to it.

The server makes a throwaway CA and an app certificate at start-up; the backend gets the CA bundle,
the certificate file and a cloud whose login, admin and Graph hosts are all the loopback origin.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from mia_bridge.bridge.clouds import get_cloud
from mia_bridge.bridge.config import DELEGATED_AUTH, ConnectionSettings
from mia_bridge.bridge.factory import Credentials
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.bridge.rest_backend import rest_backend
from mia_bridge.sim.backend import SIM_PASSWORD_ENV, SimOptions
from mia_bridge.sim.rest_browser import register_sim_browser
from mia_bridge.sim.rest_delegated import DEFAULT_PUBLIC_CLIENT_ID, SimPublicClient
from mia_bridge.sim.rest_server import RestSimServer


def sim_settings(conn: ConnectionSettings, server: RestSimServer, options: SimOptions | None = None
                 ) -> ConnectionSettings:
    """``conn`` pointed at ``server``: its tenant, app, certificate file and CA (or, for a delegated
    sign-in, its public client and signing-in user, set up on the server as ``conn`` and ``options`` ask)."""
    assert server.app_files is not None
    options = options or SimOptions()
    config = server.tenant.config
    if conn.auth in DELEGATED_AUTH:
        directory = server.delegated
        client_id = conn.client_id or DEFAULT_PUBLIC_CLIENT_ID
        directory.clients.setdefault(client_id.lower(), SimPublicClient(client_id))
        directory.approve_after_s = options.approve_after_s
        user = directory.user(conn.username) if conn.username else directory.user(directory.signing_in)
        if user is None or options.user_roles:
            wanted = (options.user_roles or "Compliance Administrator").split(",")
            roles = tuple(r.strip() for r in wanted if r.strip())
            user = directory.add_user(conn.username or directory.signing_in, roles)
        directory.signing_in = user.upn
        if conn.auth == "browser":
            register_sim_browser(server.ca_path)
        # A simulated tenant's tokens stay out of the user's real token store unless a cache file is named.
        no_cache = conn.no_token_cache or not conn.token_cache_insecure_file
        return replace(conn, backend="rest", organization=config.organization, client_id=client_id,
                       ca_bundle=str(server.ca_path), no_token_cache=no_cache)
    return replace(
        conn,
        backend="rest",
        organization=config.organization,
        app_id=config.app_id,
        certificate_thumbprint=None,
        certificate_path=str(server.app_files.pem_path),
        ca_bundle=str(server.ca_path),
    )


def sim_backend(conn: ConnectionSettings, server: RestSimServer, options: SimOptions | None = None) -> RestBackend:
    """An unopened RestBackend for ``server`` (the cloud is the worldwide one, served on loopback)."""
    cloud = get_cloud(conn.exchange_environment or "worldwide").with_loopback(server.url)
    return rest_backend(sim_settings(conn, server, options), Credentials(), cloud=cloud)


@contextmanager
def rest_sim_session(conn: ConnectionSettings, tenant: Any, options: SimOptions | None = None
                     ) -> Iterator[tuple[RestBackend, RestSimServer]]:
    """Start the HTTPS simulator for ``tenant`` and yield (opened backend, server)."""
    with RestSimServer(tenant) as server, sim_backend(conn, server, options) as backend:
        yield backend, server


def serve_rest(tenant: Any, *, host: str, port: int, ca_out: Path | None = None) -> None:
    """``mia sim serve --api rest``: serve ``tenant`` over HTTPS until SIGINT/SIGTERM; prints ``READY <url>``."""
    stop = threading.Event()
    password = os.environ.get(SIM_PASSWORD_ENV)
    if password:
        tenant.config.certificate_password = password  # protects the generated app.pfx

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with RestSimServer(tenant, host=host, port=port) as server:
            assert server.app_files is not None
            if ca_out is not None:
                shutil.copyfile(server.ca_path, ca_out)
            config = tenant.config
            for line in (
                f"CA certificate: {ca_out or server.ca_path}",
                f"organization {config.organization} (tenant id {server.tenant_id}), app id {config.app_id}",
                f"app certificate: {server.app_files.pem_path} (PEM, key + certificate) or {server.app_files.pfx_path}"
                f" (PFX, password {SIM_PASSWORD_ENV if password else 'TenantConfig.certificate_password'});"
                f" thumbprint {server.app_files.thumbprint}",
                f"login, admin API and Graph all at {server.url} (regional host {server.regional_url})",
                f"delegated sign-in (--auth device-code/browser): public client {DEFAULT_PUBLIC_CLIENT_ID}, the "
                f"simulated user {server.delegated.signing_in} approves after {server.delegated.approve_after_s} s",
            ):
                sys.stderr.write(line + "\n")
            sys.stdout.write(f"READY {server.url}\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stderr.write("simulator stopped\n")
