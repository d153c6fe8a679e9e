"""The simulator's WinRM listener: HTTP(S) on loopback, ``/wsman``, Basic, NTLM/Negotiate or Kerberos.

NTLM, Negotiate and Kerberos use pyspnego's acceptor and, over plain HTTP, WinRM message encryption
(``multipart/encrypted`` bodies) exactly as Windows does; the security context lives on the TCP
connection, as with IIS/WinRM. Kerberos (and Kerberos inside Negotiate) needs python-gssapi and a
keytab for the server's principal (``KRB5_KTNAME``); the tests run a real MIT KDC for that.
Faults can be injected at run time (``Faults``) to test how the client side copes: refused logons,
HTTP 500 with a WSMan fault, slow answers, dropped connections.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import hmac
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import spnego
from pypsrp.encryption import WinRMEncryption

from mia_bridge.sim.wsman_soap import WSManFault, WSManService, fault_envelope

log = logging.getLogger(__name__)

AUTH_SCHEMES = ("basic", "ntlm", "negotiate", "kerberos", "certificate")
MUTUAL_TLS = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
_TOKEN_RE = re.compile(r"^(Negotiate|Kerberos|NTLM|Basic)\s+(\S+)\s*$", re.I)
# What a WinRM service with only that method enabled offers in WWW-Authenticate.
_CHALLENGES = {
    "basic": 'Basic realm="WSMAN"', "ntlm": "Negotiate, NTLM", "negotiate": "Negotiate", "kerberos": "Kerberos",
}
_REPLY_SCHEMES = {"ntlm": "NTLM", "negotiate": "Negotiate", "kerberos": "Kerberos"}
FAULT_SIMULATED = 0x803381A6  # what the injected 500s carry


@dataclass
class Faults:
    """Run-time fault injection; tests flip these while the server runs."""

    reject_auth: bool = False  # every logon fails (401), as with a wrong or locked account
    http500: int = 0  # the next N WSMan requests answer 500 with a WSMan fault
    drop: int = 0  # the next N WSMan requests get their connection closed without an answer
    delay_s: float = 0.0  # every WSMan request waits this long before it is answered


@dataclass(frozen=True)
class Credential:
    username: str
    password: str  # plain text: the simulator is the account database


class _NtlmUserFile:
    """pyspnego's NTLM acceptor reads accounts from the file named by NTLM_USER_FILE (process-wide).

    Every running simulator adds its account here; the file holds NT hashes, not passwords.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[str, int]] = {}
        self._dir: str | None = None

    def add(self, username: str, password: str) -> None:
        from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1

        line = (
            f"{{user}}:0:{binascii.hexlify(lmowfv1(password)).decode()}:"
            f"{binascii.hexlify(ntowfv1(password)).decode()}:[U]:LCT-00000000"
        )
        domain, _, user = username.rpartition("\\")
        with self._lock:
            for key in {("", user), (domain, user)}:
                name = f"{key[0]}\\{key[1]}" if key[0] else key[1]
                _, count = self._entries.get(key, ("", 0))
                self._entries[key] = (line.format(user=name), count + 1)
            self._write()

    def remove(self, username: str) -> None:
        domain, _, user = username.rpartition("\\")
        with self._lock:
            for key in {("", user), (domain, user)}:
                line, count = self._entries.get(key, ("", 0))
                if count <= 1:
                    self._entries.pop(key, None)
                else:
                    self._entries[key] = (line, count - 1)
            self._write()

    def _write(self) -> None:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="mia-sim-ntlm-")
            atexit.register(shutil.rmtree, self._dir, True)
        path = Path(self._dir) / "users"
        path.touch(mode=0o600)
        path.write_text("".join(line + "\n" for line, _ in self._entries.values()))
        os.environ["NTLM_USER_FILE"] = str(path)


NTLM_USERS = _NtlmUserFile()


class WSManHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the WSMan service, the account and the fault plan."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        service: WSManService,
        *,
        auth: str,
        credential: Credential,
        tls: ssl.SSLContext | None = None,
        cert_der: bytes | None = None,
    ) -> None:
        if auth not in AUTH_SCHEMES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_SCHEMES)}")
        if auth == "certificate" and tls is None:
            raise ValueError("certificate authentication needs HTTPS")
        if address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the simulator only listens on loopback (127.0.0.1 or ::1)")
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        self.auth = auth
        self.credential = credential
        self.faults = Faults()
        self.cert_der = cert_der
        self.tls = tls
        self.request_count = 0  # WSMan requests answered (after authentication)
        self.encrypted_count = 0  # of which arrived as WinRM-encrypted multipart bodies
        self.encryption_protocols: set[str] = set()  # multipart/encrypted protocol= values seen
        self.logons: list[tuple[str, str]] = []  # (client principal, protocol) per completed NTLM/Kerberos logon
        super().__init__(address, _WSManHandler)
        if tls is not None:
            # Handshake in the worker thread, not in the accept loop.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that abort a TLS handshake or drop a connection are normal here; keep stderr quiet.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _WSManHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WSManHTTPServer
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Per-connection security state (NTLM/Negotiate authenticate a connection, not a request).
        self._ctx: Any = None
        self._authenticated_user = ""
        self._extra_headers: dict[str, str] = {}

    def log_message(self, format: str, *args: Any) -> None:
        # Never write the request line with headers to stderr; debug log only, and no headers.
        log.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        srv = self.server
        if self.path.rstrip("/").lower() != "/wsman":
            self._reply(404, b"", {})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._check_auth(body):
            return
        content_type = self.headers.get("Content-Type", "")
        if not body:
            # pypsrp's empty priming request once the context is set up.
            self._reply(200, b"", {})
            return
        encrypted = content_type.startswith("multipart/encrypted")
        reply_protocol = WinRMEncryption.SPNEGO
        if encrypted:
            boundary = re.search(r'boundary="?([^";]+)"?', content_type)
            protocol = re.search(r'protocol="?([^";]+)"?', content_type)
            if self._ctx is None or boundary is None:
                self._reply(400, b"", {})
                return
            wrapper = WinRMEncryption(self._ctx, protocol.group(1) if protocol else WinRMEncryption.SPNEGO)
            body = wrapper.unwrap_message(body, boundary.group(1))
            # Kerberos-only logons use application/HTTP-Kerberos-session-encrypted; answer in kind.
            reply_protocol = wrapper.protocol
            srv.encryption_protocols.add(reply_protocol)
        elif srv.auth != "basic" and srv.tls is None:
            # WinRM refuses unencrypted traffic over HTTP (AllowUnencrypted=false).
            self._reply(400, b"", {})
            return

        srv.request_count += 1
        srv.encrypted_count += int(encrypted)
        if srv.faults.delay_s:
            time.sleep(srv.faults.delay_s)
        if srv.faults.drop > 0:
            srv.faults.drop -= 1
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = 200
        if srv.faults.http500 > 0:
            srv.faults.http500 -= 1
            status, answer = 500, fault_envelope(WSManFault(FAULT_SIMULATED, "The WS-Management service is "
                                                            "temporarily unavailable (simulated fault)."))
        else:
            try:
                answer = srv.service.handle(body, self._authenticated_user)
            except WSManFault as fault:
                status, answer = 500, fault_envelope(fault)
        if encrypted:
            ctype, payload = WinRMEncryption(self._ctx, reply_protocol).wrap_message(answer)
            headers = {"Content-Type": f'{ctype};protocol="{reply_protocol}";boundary="Encrypted Boundary"'}
            self._reply(status, payload, headers)
        else:
            self._reply(status, answer, {"Content-Type": "application/soap+xml;charset=UTF-8"})

    # --- authentication -----------------------------------------------------------------------

    def _check_auth(self, body: bytes) -> bool:
        """True when the request may proceed; otherwise the 401 (or 200 with the last token) is sent."""
        srv = self.server
        header = self.headers.get("Authorization", "")
        if srv.auth == "certificate":
            return self._check_client_certificate(header)
        if not header and self._ctx is not None and self._authenticated_user:
            return True
        match = _TOKEN_RE.match(header)
        challenge = _CHALLENGES[srv.auth]
        if match is None or srv.faults.reject_auth:
            self._reply(401, b"", {"WWW-Authenticate": challenge}, close=bool(header))
            return False
        scheme, token = match.group(1).lower(), match.group(2)
        if srv.auth == "basic":
            if scheme != "basic":
                self._reply(401, b"", {"WWW-Authenticate": challenge}, close=True)
                return False
            try:
                user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            ok = _same(user.lower(), srv.credential.username.lower()) and _same(password, srv.credential.password)
            if not ok:
                self._reply(401, b"", {"WWW-Authenticate": challenge}, close=True)
                return False
            self._authenticated_user = user
            return True
        if scheme == "basic" or (srv.auth == "kerberos") != (scheme == "kerberos"):
            self._reply(401, b"", {"WWW-Authenticate": challenge}, close=True)
            return False
        return self._step_spnego(scheme, token, body)

    def _check_client_certificate(self, header: str) -> bool:
        """WinRM certificate auth: a client certificate from our CA whose CN is the mapped user."""
        peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        subject = dict(item[0] for item in (peer or {}).get("subject", ()))
        user = str(subject.get("commonName", ""))
        if (header != MUTUAL_TLS or not user or self.server.faults.reject_auth
                or not _same(user.lower(), self.server.credential.username.lower())):
            self._reply(401, b"", {"WWW-Authenticate": MUTUAL_TLS}, close=True)
            return False
        self._authenticated_user = user
        return True

    def _step_spnego(self, scheme: str, token: str, body: bytes) -> bool:
        srv = self.server
        try:
            in_token = base64.b64decode(token)
            if self._ctx is None or self._ctx.complete:
                bindings = None
                if srv.cert_der is not None:
                    bindings = spnego.channel_bindings.GssChannelBindings(
                        application_data=b"tls-server-end-point:" + _cert_hash(srv.cert_der)
                    )
                self._ctx = spnego.server(
                    protocol=scheme if scheme in ("ntlm", "kerberos") else "negotiate",
                    options=spnego.NegotiateOptions.wrapping_winrm,
                    channel_bindings=bindings,
                )
                self._authenticated_user = ""
            out_token = self._ctx.step(in_token)
        except Exception:  # any SPNEGO failure is a refused logon; the reason stays server-side
            log.debug("authentication failed", exc_info=True)
            self._ctx = None
            self._reply(401, b"", {"WWW-Authenticate": _CHALLENGES[srv.auth]}, close=True)
            return False
        reply_scheme = _REPLY_SCHEMES[scheme]
        if not self._ctx.complete:
            self._reply(401, b"", {"WWW-Authenticate": f"{reply_scheme} {base64.b64encode(out_token or b'').decode()}"})
            return False
        self._authenticated_user = str(self._ctx.client_principal or "")
        with contextlib.suppress(Exception):  # the protocol is for tests to read; never fail a logon on it
            srv.logons.append((self._authenticated_user, str(self._ctx.negotiated_protocol)))
        # The final SPNEGO token (mechListMIC) must reach the client, or the NTLM sequence numbers drift.
        headers = {"WWW-Authenticate": f"{reply_scheme} {base64.b64encode(out_token).decode()}"} if out_token else {}
        if not body:
            self._reply(200, b"", headers)
            return False
        self._extra_headers = headers
        return True

    def _reply(self, status: int, payload: bytes, headers: dict[str, str], *, close: bool = False) -> None:
        self.send_response(status)
        headers = {**self._extra_headers, **headers}
        self._extra_headers = {}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # Headers and body in one write: two small segments meet Nagle and delayed ACKs (~40 ms each).
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        buffered.append(b"\r\n")
        self.wfile.write(b"".join(buffered) + payload)
        buffered.clear()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _cert_hash(cert_der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point hash (SHA-256 for our SHA-256-signed certificate)."""
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert_der)
    return digest.finalize()
