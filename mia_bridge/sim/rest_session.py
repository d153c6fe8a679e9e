"""``--sim --backend rest``: the simulated tenant over loopback HTTPS and a REST backend connected to it.

The server makes a throwaway CA and an app certificate at start-up; the backend gets the CA bundle,
the certificate file and a cloud whose login, admin and Graph hosts are all the loopback origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from mia_bridge.bridge.clouds import get_cloud
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.factory import Credentials
from mia_bridge.bridge.rest import RestBackend
from mia_bridge.bridge.rest_backend import rest_backend
from mia_bridge.sim.rest_server import RestSimServer


def sim_settings(conn: ConnectionSettings, server: RestSimServer) -> ConnectionSettings:
    """``conn`` pointed at ``server``: its tenant, app, certificate file and CA."""
    assert server.app_files is not None
    config = server.tenant.config
    return replace(
        conn,
        backend="rest",
        organization=config.organization,
        app_id=config.app_id,
        certificate_thumbprint=None,
        certificate_path=str(server.app_files.pem_path),
        ca_bundle=str(server.ca_path),
    )


def sim_backend(conn: ConnectionSettings, server: RestSimServer) -> RestBackend:
    """An unopened RestBackend for ``server`` (the cloud is the worldwide one, served on loopback)."""
    cloud = get_cloud(conn.exchange_environment or "worldwide").with_loopback(server.url)
    return rest_backend(sim_settings(conn, server), Credentials(), cloud=cloud)


@contextmanager
def rest_sim_session(conn: ConnectionSettings, tenant: Any) -> Iterator[tuple[RestBackend, RestSimServer]]:
    """Start the HTTPS simulator for ``tenant`` and yield (opened backend, server)."""
    with RestSimServer(tenant) as server, sim_backend(conn, server) as backend:
        yield backend, server
