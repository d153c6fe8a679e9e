"""Request plumbing of the REST simulator: response writing, request log, bearer-token check."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from mia_bridge.sim.rest_codec import JSON_CONTENT_TYPE

if TYPE_CHECKING:
    from mia_bridge.sim.rest_faults import RestFault
    from mia_bridge.sim.rest_server import RestSimServer


@dataclass
class RequestRecord:
    """One request as the server saw it (headers minus Authorization), for tests."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


class RestHandlerBase(BaseHTTPRequestHandler):
    """HTTP plumbing shared by the STS, admin-API and Graph routes; ``sim`` is the server's state."""

    sim: RestSimServer
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

    timeout = 60.0  # seconds a client may stall (handshake included) before its thread gives up

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()  # here, in the request thread (see rest_server._TLSServer)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read sim.requests instead
        return

    # --- plumbing -------------------------------------------------------------------------------

    def _origin(self) -> str:
        address: Any = self.server.server_address
        host = str(address[0])
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{int(address[1])}"

    def _record(self, body: bytes) -> RequestRecord:
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        record = RequestRecord(self.command, self.path, headers, body)
        with self.sim._lock:
            self.sim.requests.append(record)
        return record

    def _send(
        self,
        status: int,
        body: bytes | dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = JSON_CONTENT_TYPE,
    ) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        if self._current is not None:
            # recorded before the reply goes out: a client that has read it may check at once
            self._current.status = status
        self.send_response(status)
        request_id = str(uuid.uuid4())
        self.send_header("request-id", request_id)
        self.send_header("client-request-id", self.headers.get("client-request-id", request_id))
        if data:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    _current: RequestRecord | None = None

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._current = self._record(b"")
        self._route("GET", b"")

    def do_POST(self) -> None:
        body = self._read_body()
        self._current = self._record(body)
        self._route("POST", body)

    def _auth(self, api: str) -> dict[str, Any] | None:
        status, diagnostics, claims = self.sim.check_token(self.headers.get("Authorization"), api)
        if claims is not None:
            return claims
        self._send(
            status,
            None,
            headers={
                "WWW-Authenticate": f'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
                f'authorization_uri="{self._origin()}/common/oauth2/authorize", error="invalid_token"',
                "x-ms-diagnostics": diagnostics,
            },
        )
        return None

    # Implemented by the concrete handler in rest_server.py.
    def _route(self, method: str, body: bytes) -> None:
        raise NotImplementedError

    def _fault(self, fault: RestFault, name: str = "") -> None:
        raise NotImplementedError

    # Implemented by rest_delegated.DelegatedRoutes (device code, authorization code, refresh token).
    def _delegated_grant(self, form: dict[str, str]) -> None:
        raise NotImplementedError
