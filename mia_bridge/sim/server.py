"""Start and stop the simulated WinRM endpoint in-process (tests, ``--sim``, ``mia sim serve``).

    with SimServer(tenant, transport="https", auth="ntlm", username="mia", password="pw") as sim:
        WSMan("127.0.0.1", port=sim.port, ssl=True, cert_validation=str(sim.ca_path), ...)
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mia_bridge.bridge.backend import Secret
from mia_bridge.sim.jea import CONFIGURATION as JEA_CONFIGURATION
from mia_bridge.sim.jea import JeaEndpoint
from mia_bridge.sim.kerberos import isolate_kerberos
from mia_bridge.sim.serialization_depth import REMOTING_DEPTH
from mia_bridge.sim.tls import TlsFiles, make_tls_files
from mia_bridge.sim.wsman_http import NTLM_USERS, Credential, Faults, WSManHTTPServer
from mia_bridge.sim.wsman_soap import WSManService


class SimServer:
    """A WinRM/PSRP listener on loopback serving one simulated tenant.

    Every runspace pool gets its own tenant session (``tenant.open_session()`` when the tenant has
    it, else the tenant itself). ``calls`` records each cmdlet invocation as decoded by the server
    (name, parameters) so tests can check exactly what arrived. ``jea=True`` adds the ``MiaBridge`` JEA
    endpoint (the shipped ps_scripts, enforced); ``serialization_depth`` is remoting's (1; None = no limit).
    ``auth="kerberos"`` (and Kerberos
    inside Negotiate) accepts tickets for any principal in the keytab named by ``KRB5_KTNAME``.
    """

    def __init__(
        self,
        tenant: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: str = "http",
        auth: str = "basic",
        username: str = "mia",
        password: str | Secret | None = None,
        configuration_names: tuple[str, ...] = ("Microsoft.PowerShell", "Microsoft.Exchange", "ExoBridge"),
        max_envelope_kb: int = 500,
        record_calls: bool = True,
        isolate_client_kerberos: bool = True,
        jea: bool = False,
        serialization_depth: int | None = REMOTING_DEPTH,
    ) -> None:
        if transport not in ("http", "https"):
            raise ValueError("transport must be http or https")
        self.tenant = tenant
        self.host = host
        self.transport = transport
        self.auth = auth
        self.username = username
        if password is None:
            password = secrets.token_urlsafe(18)
        self.password = password if isinstance(password, Secret) else Secret(password)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._record_calls = record_calls
        # Clients in this process get a Kerberos realm without a KDC (sim.kerberos); `mia sim serve`
        # has no client and keeps the machine's settings, so a Kerberos acceptor can use them.
        self._isolate_kerberos = isolate_client_kerberos
        self._requested_port = port
        # jea: the MiaBridge endpoint enforces the shipped MiaBridge.pssc / MiaBridgeAudit.psrc (sim/jea.py);
        # the other configuration names stay standard (unrestricted) endpoints.
        self.jea = JeaEndpoint.load() if jea else None
        jea_endpoints = {JEA_CONFIGURATION: self.jea} if self.jea is not None else {}
        if self.jea is not None and JEA_CONFIGURATION.lower() not in {n.lower() for n in configuration_names}:
            configuration_names = (*configuration_names, JEA_CONFIGURATION)
        self.service = WSManService(
            self._open_session,
            configuration_names=configuration_names,
            max_envelope_kb=max_envelope_kb,
            on_call=self._on_call,
            serialization_depth=serialization_depth,
            jea_endpoints=jea_endpoints,
        )
        self._httpd: WSManHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None
        self.tls_files: TlsFiles | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> SimServer:
        tls: ssl.SSLContext | None = None
        cert_der: bytes | None = None
        if self.transport == "https":
            self._tmp = Path(tempfile.mkdtemp(prefix="mia-sim-tls-"))
            client_user = self.username if self.auth == "certificate" else None
            self.tls_files = make_tls_files(self._tmp, client_user=client_user)
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(self.tls_files.cert_path, self.tls_files.key_path)
            if client_user:
                # Optional at the TLS layer, required by the handler: a missing certificate gets a 401.
                tls.verify_mode = ssl.CERT_OPTIONAL
                tls.load_verify_locations(self.tls_files.ca_path)
            first_pem = self.tls_files.cert_path.read_bytes().split(b"-----END CERTIFICATE-----")[0]
            cert = x509.load_pem_x509_certificate(first_pem + b"-----END CERTIFICATE-----\n")
            cert_der = cert.public_bytes(serialization.Encoding.DER)
        if self.auth in ("ntlm", "negotiate"):
            NTLM_USERS.add(self.username, self.password.reveal())
        if self.auth in ("ntlm", "negotiate") and self._isolate_kerberos:
            # A Negotiate client in this process (the demo, --sim, tests) must not ask a real KDC first.
            isolate_kerberos()
        self._httpd = WSManHTTPServer(
            (self.host, self._requested_port),
            self.service,
            auth=self.auth,
            credential=Credential(self.username, self.password.reveal()),
            tls=tls,
            cert_der=cert_der,
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="mia-sim-wsman", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
            if self.auth in ("ntlm", "negotiate"):
                NTLM_USERS.remove(self.username)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.service.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what clients need ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}/wsman"

    @property
    def ca_path(self) -> Path | None:
        return self.tls_files.ca_path if self.tls_files else None

    @property
    def client_certificate(self) -> tuple[Path, Path] | None:
        """(certificate, key) PEM files for WinRM certificate authentication, when auth is certificate."""
        files = self.tls_files
        if files is None or files.client_cert_path is None or files.client_key_path is None:
            return None
        return files.client_cert_path, files.client_key_path

    @property
    def faults(self) -> Faults:
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        return self._httpd.faults

    # --- internals --------------------------------------------------------------------------

    def _open_session(self) -> Any:
        opener = getattr(self.tenant, "open_session", None)
        return opener() if callable(opener) else self.tenant

    def _on_call(self, name: str, params: dict[str, Any]) -> None:
        if self._record_calls:
            self.calls.append((name, params))
