"""The simulated tenant over HTTPS: EXO admin ``InvokeCommand``, Microsoft Graph and a token service.

A loopback ``ThreadingHTTPServer`` with a throwaway CA (``sim/tls.py``) serves the same tenant
model as the PSRP server, through the same ``registry.dispatch``:

- ``GET  /{tenant}/v2.0/.well-known/openid-configuration`` and ``POST /{tid}/oauth2/v2.0/token``:
  an STS that MSAL accepts (client-credentials grant with a certificate-signed client assertion,
  RS256/``x5t`` or PS256/``x5t#S256``, checked against the app's registered certificates);
- ``POST /adminapi/beta/{tenant}/InvokeCommand``: the module's JSON envelope, ``Prefer:
  odata.maxpagesize`` paging with absolute ``@odata.nextLink`` (POST the same body; links expire),
  ``@adminapi.warnings``/``@adminapi.errors``, errors in the module's OData shape, ``$select``;
- ``GET /v1.0/subscribedSkus|domains|servicePrincipals|servicePrincipals/{id}/appRoleAssignments``
  answered by the Get-Mg* handlers, converted to Graph's camelCase JSON, paged with ``$skiptoken``.

A second listener plays the tenant's regional host: with ``regional_redirect`` the main host
answers InvokeCommand with a 302 to it. Faults are queued with ``server.faults.add(RestFault(...))``.
Protocol facts and their uncertainty: ../shared/reference/exo-rest-invokecommand.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.clouds import CLOUDS
from mia_bridge.sim import rest_jwt
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, command_not_found, dispatch
from mia_bridge.sim.rest_faults import FaultKind, FaultPlan, RestFault
from mia_bridge.sim.tenant import MODULE_CMDLETS, Tenant, TenantSession
from mia_bridge.sim.tls import make_tls_files

EXO_RESOURCE = "https://outlook.office365.com"  # worldwide; the token service accepts every cloud's
GRAPH_RESOURCE = "https://graph.microsoft.com"
RESOURCES: dict[str, str] = {
    **{c.exo_scope.removesuffix("/.default"): "exo" for c in CLOUDS.values()},
    **{c.graph_scope.removesuffix("/.default"): "graph" for c in CLOUDS.values()},
}
EXO_ROLE = "Exchange.ManageAsApp"
GRAPH_ROLES = ("Organization.Read.All", "Directory.Read.All", "Application.Read.All")
JSON_CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_GUID = re.compile(r"^[0-9a-fA-F-]{36}$")
_DATE_PARAM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")

# PowerShell's System.Management.Automation.ErrorCategory, by value.
ERROR_CATEGORIES = (
    "NotSpecified",
    "OpenError",
    "CloseError",
    "DeviceError",
    "DeadlockDetected",
    "InvalidArgument",
    "InvalidData",
    "InvalidOperation",
    "InvalidResult",
    "InvalidType",
    "MetadataError",
    "NotImplemented",
    "NotInstalled",
    "ObjectNotFound",
    "OperationStopped",
    "OperationTimeout",
    "SyntaxError",
    "ParserError",
    "PermissionDenied",
    "ResourceBusy",
    "ResourceExists",
    "ResourceUnavailable",
    "ReadError",
    "WriteError",
    "FromStdErr",
    "SecurityError",
    "ProtocolError",
    "ConnectionError",
    "AuthenticationError",
    "LimitsExceeded",
    "QuotaExceeded",
    "NotEnabled",
)


# --- app registrations --------------------------------------------------------------------------


@dataclass
class SimApp:
    """An app registration: its id, uploaded certificates and application permissions per API (exo, graph)."""

    client_id: str
    certificates: list[x509.Certificate]
    roles: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"exo": (EXO_ROLE,), "graph": GRAPH_ROLES})


@dataclass(frozen=True)
class AppCertificateFiles:
    """A generated app certificate: PEM (key then certificate), PFX (password protected), thumbprint."""

    pem_path: Path
    pfx_path: Path
    thumbprint: str  # SHA-1, upper-case hex, as the Entra portal shows it
    certificate: x509.Certificate


def make_app_certificate(
    directory: Path, *, pfx_password: str, name: str = "mia-bridge sim app"
) -> AppCertificateFiles:
    """A self-signed RSA certificate as an app registration would have; key files are mode 0600."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem_path = directory / "app.pem"
    pfx_path = directory / "app.pfx"
    for path in (pem_path, pfx_path):
        path.touch(mode=0o600)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    pfx_path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"mia-sim-app", key, cert, None, serialization.BestAvailableEncryption(pfx_password.encode())
        )
    )
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    return AppCertificateFiles(pem_path, pfx_path, thumbprint, cert)


# --- value encoding -----------------------------------------------------------------------------


def dotnet_utc(value: dt.datetime) -> str:
    """A DateTime as EXO's REST layer writes it: 7 fraction digits and an explicit +00:00."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    utc = aware.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0+00:00"


def exo_object(obj: SimObject | dict[str, Any]) -> dict[str, Any]:
    """A cmdlet output object as one ``value`` entry with the module's type annotations."""
    props = obj.properties if isinstance(obj, SimObject) else obj
    out: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, dt.datetime):
            out[f"{key}@data.type"] = "System.DateTime"
        elif isinstance(value, list | tuple):
            out[f"{key}@odata.type"] = "#Collection(String)"
        elif isinstance(value, uuid.UUID):
            out[f"{key}@odata.type"] = "#Guid"
        out[key] = _exo_value(value)
    return out


def _exo_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return dotnet_utc(value)
    if isinstance(value, list | tuple):
        return [_exo_value(v) for v in value]
    if isinstance(value, SimObject | dict):
        return exo_object(value)
    if isinstance(value, Secret):
        return "System.Security.SecureString"  # what ToString() of a SecureString gives
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def decode_rest_parameters(raw: Any) -> dict[str, Any]:
    """InvokeCommand ``Parameters`` → handler parameters, leniently, as the service binds them."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SimCmdletError("Parameters must be a JSON object.", category="InvalidArgument", error_id="BadRequest")
    return {str(k): _decode_param(v) for k, v in raw.items() if "@" not in str(k)}


def _decode_param(value: Any) -> Any:
    if isinstance(value, str) and _DATE_PARAM.match(value):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        parsed = dt.datetime.fromisoformat(text)
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    if isinstance(value, list):
        return [_decode_param(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _decode_param(v) for k, v in value.items() if not str(k).startswith("@odata")}
    return value


def graph_json(value: Any) -> Any:
    """A Get-Mg* output value as Graph JSON: camelCase names, ISO-8601 Z dates, AdditionalProperties merged."""
    if isinstance(value, SimObject):
        value = value.properties
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "AdditionalProperties" and isinstance(item, dict):
                out.update({str(k): graph_json(v) for k, v in item.items()})
                continue
            out[_camel(str(key))] = graph_json(item)
        return out
    if isinstance(value, list | tuple):
        return [graph_json(v) for v in value]
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


# --- errors -------------------------------------------------------------------------------------


def cmdlet_error_body(err: SimCmdletError) -> dict[str, Any]:
    """A terminating cmdlet error in the shape the module's ``Get-ErrorMessage`` parses."""
    category = ERROR_CATEGORIES.index(err.category) if err.category in ERROR_CATEGORIES else 0
    string_id = err.error_id.split(",")[0] if err.error_id else ""
    detail = {"ClassName": err.exception_type, "Message": err.message, "localizedString": {"stringId": string_id}}
    return {
        "error": {
            "code": "BadRequest",
            "message": err.message,
            "details": [{"code": category, "target": err.target or "", "message": json.dumps(detail)}],
            "innererror": {
                "message": err.message,
                "type": err.exception_type,
                "internalexception": {"message": err.message},
            },
        }
    }


def _is_throttle(err: SimCmdletError) -> bool:
    text = f"{err.exception_type} {err.error_id} {err.message}".lower()
    return err.category in ("LimitsExceeded", "QuotaExceeded") or "throttl" in text or "micro delay" in text


@dataclass
class _Page:
    body_hash: str
    items: list[dict[str, Any]]
    created: float
    page_size: int
    warnings: list[str]


@dataclass
class RequestRecord:
    """One request as the server saw it (headers minus Authorization), for tests."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


# --- the server ---------------------------------------------------------------------------------


class RestSimServer:
    """Loopback HTTPS server for one simulated tenant. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        directory: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        apps: list[SimApp] | None = None,
        token_lifetime_s: int = 3599,
        nextlink_ttl_s: float = 600.0,
        default_page_size: int = 1000,
        graph_page_size: int = 100,
        regional_redirect: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the simulator only listens on loopback")
        self.tenant = tenant
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mia-rest-sim-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self.host = host
        self._port = port
        self.token_lifetime_s = token_lifetime_s
        self.nextlink_ttl_s = nextlink_ttl_s
        self.default_page_size = default_page_size
        self.graph_page_size = graph_page_size
        self.regional_redirect = regional_redirect
        self.clock = clock
        self.faults = FaultPlan()
        self.requests: list[RequestRecord] = []
        self.tokens_issued = 0
        self.tls = make_tls_files(directory / "tls")
        self.ca_path = self.tls.ca_path
        self.app_files: AppCertificateFiles | None = None
        if apps is None:
            self.app_files = make_app_certificate(directory / "app", pfx_password=tenant.config.certificate_password)
            apps = [SimApp(tenant.config.app_id, [self.app_files.certificate])]
        self.apps = {a.client_id.lower(): a for a in apps}
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._pages: dict[str, _Page] = {}
        self._sessions: dict[str, TenantSession] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> RestSimServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_path, self.tls.key_path)
        handler = type("BoundHandler", (_Handler,), {"sim": self})
        for port in (self._port, 0):  # main host, then the "regional" host
            httpd = ThreadingHTTPServer((self.host, port), handler)
            httpd.daemon_threads = True
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(httpd)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RestSimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _origin(self, index: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{int(self._servers[index].server_address[1])}"

    @property
    def url(self) -> str:
        """Origin of the main host (login, Graph and admin API)."""
        return self._origin(0)

    @property
    def regional_url(self) -> str:
        return self._origin(1)

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def organization(self) -> str:
        return self.tenant.config.organization

    # --- tokens ---------------------------------------------------------------------------------

    def issue_token(self, app: SimApp, resource: str) -> tuple[str, int]:
        now = int(self.clock())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime_s,
            "tid": self.tenant_id,
            "appid": app.client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "roles": list(app.roles.get(RESOURCES.get(resource, ""), ())),
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
        }
        with self._lock:
            self.tokens_issued += 1
        return rest_jwt.sign_rs256(claims, self._signing_key), self.token_lifetime_s

    def check_token(self, authorization: str | None, api: str) -> tuple[int, str, dict[str, Any] | None]:
        """(status, diagnostics, claims): 200 with claims, or 401/403 with an x-ms-diagnostics reason."""
        if not authorization or not authorization.startswith("Bearer "):
            return 401, '2000000;reason="The authorization header is missing or not a bearer token."', None
        try:
            _, claims = rest_jwt.verify(authorization[7:], self._signing_key.public_key())
        except rest_jwt.JwtError:
            return 401, '2000001;reason="The token signature is not valid."', None
        if float(claims.get("exp", 0)) <= self.clock():
            return 401, '2000003;reason="The access token has expired.";error_category="invalid_token"', None
        if RESOURCES.get(str(claims.get("aud"))) != api:
            return 401, f'2000001;reason="The audience of the token is not the {api} API."', None
        if claims.get("tid") != self.tenant_id:
            return 401, '2000001;reason="The token was issued for another tenant."', None
        return 200, "", claims

    def session_for(self, client_id: str) -> TenantSession:
        """One tenant session per app: REST is connected as soon as the token is valid."""
        with self._lock:
            session = self._sessions.get(client_id)
            if session is None:
                session = self.tenant.open_session()
                session.connected_exchange = True
                session.connected_graph = True
                session.connected_at = dt.datetime.now(dt.UTC)
                self._sessions[client_id] = session
            return session

    # --- paging ---------------------------------------------------------------------------------

    def store_page(self, page: _Page) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._pages[token] = page
        return token

    def take_page(self, token: str) -> _Page | None:
        with self._lock:
            page = self._pages.pop(token, None)
        if page is None or self.clock() - page.created > self.nextlink_ttl_s:
            return None
        return page


class _Handler(BaseHTTPRequestHandler):
    sim: RestSimServer
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

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
        if self._current is not None:
            self._current.status = status

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

    def _route(self, method: str, body: bytes) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [s for s in path.split("/") if s]
        try:
            if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration") and len(segments) == 4:
                return self._openid(segments[0])
            if method == "POST" and len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
                return self._token(segments[0], body)
            if (
                method == "POST"
                and len(segments) == 4
                and segments[:2] == ["adminapi", "beta"]
                and segments[3].lower() == "invokecommand"
            ):
                return self._invoke(segments[2], query, body)
            if method == "GET" and segments[:1] == ["v1.0"]:
                return self._graph(segments[1:], query)
            self._send(404, {"error": {"code": "NotFound", "message": f"No route for {method} {path}"}})
        except Exception as exc:  # a simulator bug must reach the client as a 500, not a dropped connection
            self._send(500, {"error": {"code": "InternalServerError", "message": f"{type(exc).__name__}: {exc}"}})

    # --- STS ------------------------------------------------------------------------------------

    def _known_tenant(self, name: str) -> bool:
        return name.lower() in (self.sim.tenant_id, self.sim.organization.lower())

    def _openid(self, tenant: str) -> None:
        if not self._known_tenant(tenant):
            self._send(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                    "error_codes": [90002],
                },
            )
            return
        origin, tid = self._origin(), self.sim.tenant_id
        self._send(
            200,
            {
                "token_endpoint": f"{origin}/{tid}/oauth2/v2.0/token",
                "authorization_endpoint": f"{origin}/{tid}/oauth2/v2.0/authorize",
                "issuer": f"{origin}/{tid}/v2.0",
                "jwks_uri": f"{origin}/{tid}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "tenant_region_scope": "EU",
            },
            content_type="application/json; charset=utf-8",
        )

    def _token_error(self, status: int, error: str, code: int, text: str) -> None:
        self._send(
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text}",
                "error_codes": [code],
                "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            },
            content_type="application/json; charset=utf-8",
        )

    def _token(self, tenant: str, body: bytes) -> None:
        sim = self.sim
        fault = sim.faults.take("token")
        if fault is not None:
            return self._fault(fault)
        if tenant.lower() != sim.tenant_id:
            return self._token_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return self._token_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        app = sim.apps.get(client_id.lower())
        if app is None:
            return self._token_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{sim.organization}'.",
            )
        assertion = form.get("client_assertion")
        if (
            not assertion
            or form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return self._token_error(
                401, "invalid_client", 7000218, "The request body must contain 'client_assertion'."
            )
        problem = self._check_assertion(app, assertion)
        if problem:
            return self._token_error(401, "invalid_client", problem[0], problem[1])
        scope = form.get("scope", "")
        resource = scope.split()[0].removesuffix("/.default") if scope else ""
        if resource not in RESOURCES:
            return self._token_error(
                400, "invalid_scope", 500011, f"The resource principal named {resource} was not found."
            )
        token, lifetime = sim.issue_token(app, resource)
        self._send(
            200,
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
            content_type="application/json; charset=utf-8",
        )

    def _check_assertion(self, app: SimApp, assertion: str) -> tuple[int, str] | None:
        try:
            header, claims, _, _ = rest_jwt.split(assertion)
        except rest_jwt.JwtError:
            return 50027, "JWT token is invalid or malformed."
        cert = None
        for candidate in app.certificates:
            sha1 = rest_jwt.b64url(candidate.fingerprint(hashes.SHA1()))
            sha256 = rest_jwt.b64url(candidate.fingerprint(hashes.SHA256()))
            # MSAL keeps the base64 padding; RFC 7515 drops it. Accept both.
            if str(header.get("x5t", "")).rstrip("=") == sha1 or str(header.get("x5t#S256", "")).rstrip("=") == sha256:
                cert = candidate
        if cert is None:
            return 700027, (
                "The certificate with identifier used to sign the client assertion is not registered on application. "
                f"[Reason - The key was not found., Thumbprint of key used by client: "
                f"'{header.get('x5t') or header.get('x5t#S256')}']"
            )
        try:
            rest_jwt.verify(assertion, cert.public_key())
        except rest_jwt.JwtError:
            return 700027, "Client assertion failed signature validation."
        now = self.sim.clock()
        expected_aud = f"{self._origin()}/{self.sim.tenant_id}/oauth2/v2.0/token"
        if claims.get("aud") != expected_aud:
            return (
                700212,
                f"No matching federated identity record found for presented assertion audience '{claims.get('aud')}'.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return 700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        if float(claims.get("exp", 0)) < now - 300:
            return 700024, "Client assertion is not within its valid time range."
        return None

    # --- InvokeCommand --------------------------------------------------------------------------

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

    def _invoke(self, tenant: str, query: dict[str, str], body: bytes) -> None:
        sim = self.sim
        if not self._known_tenant(tenant):
            self._send(
                404, {"error": {"code": "NotFound", "message": f"Tenant {tenant} is not known to this endpoint."}}
            )
            return
        claims = self._auth("exo")
        if claims is None:
            return
        if EXO_ROLE not in claims.get("roles", []):
            self._send(
                403,
                None,
                headers={
                    "x-ms-diagnostics": '2000008;reason="The token does not contain the Exchange.ManageAsApp role.";'
                    'error_category="insufficient_auth_strength"',
                },
            )
            return
        try:
            request = json.loads(body)
            cmdlet_input = request["CmdletInput"]
            name = str(cmdlet_input["CmdletName"])
            params = decode_rest_parameters(cmdlet_input.get("Parameters"))
        except (ValueError, KeyError, TypeError, SimCmdletError):
            self._send(
                400, {"error": {"code": "BadRequest", "message": "The request body is not a CmdletInput document."}}
            )
            return
        if sim.regional_redirect and self.server is sim._servers[0]:
            location = f"{sim.regional_url}{self.path}"
            self._send(302, None, headers={"Location": location})
            return
        body_hash = hashlib.sha256(json.dumps(cmdlet_input, sort_keys=True).encode()).hexdigest()
        token = query.get("$skiptoken")
        if token is not None:
            fault = sim.faults.take("nextlink", name)
            if fault is not None and fault.kind is not FaultKind.EXPIRED_NEXT_LINK:
                return self._fault(fault, name)
            page = None if fault is not None else sim.take_page(token)
            if page is None:
                self._send(
                    400,
                    {
                        "error": {
                            "code": "BadRequest",
                            "message": ("The continuation token is invalid or has expired. Run the command again."),
                        }
                    },
                )
                return
            if page.body_hash != body_hash:
                self._send(
                    400,
                    {"error": {"code": "BadRequest", "message": "The request body does not match the paged query."}},
                )
                return
            return self._send_page(page.items, page.page_size, page.warnings, [], body_hash)
        fault = sim.faults.take("invoke", name)
        if fault is not None and fault.kind is not FaultKind.ADMINAPI_ERRORS:
            return self._fault(fault, name)
        if (
            name.lower() == "set-adminauditlogconfig"
            and str(params.get("UnifiedAuditLogIngestionEnabled")).lower() == "true"
        ):
            # Reported for the real endpoint (pnp/cli-microsoft365#4677, KelvinTegelaar/CIPP#2661).
            self._send(
                400,
                {
                    "error": {
                        "code": "BadRequest",
                        "message": (
                            "|Microsoft.Exchange.Configuration.Tasks.CmdletProxyNotAvailableException|"
                            "Cmdlet needs proxy. "
                            "Current Server FQDN : SIM1P190MB0001.EURP190.PROD.OUTLOOK.COM, "
                            "Required Server FQDN : SIM1P190MB0002.EURP190.PROD.OUTLOOK.COM"
                        ),
                    }
                },
            )
            return
        session = sim.session_for(str(claims.get("appid")))
        if name.lower() in MODULE_CMDLETS:
            # Connect-ExchangeOnline, Get-ConnectionInformation, Get-Module …: module-local, not service cmdlets.
            self._send(400, cmdlet_error_body(command_not_found(name)))
            return
        try:
            output = dispatch(session, name, params)
        except SimCmdletError as err:
            if _is_throttle(err):
                self._send(
                    429, {"error": {"code": "TooManyRequests", "message": err.message}}, headers={"Retry-After": "0.05"}
                )
            elif err.category == "PermissionDenied":
                self._send(403, cmdlet_error_body(err))
            else:
                self._send(400, cmdlet_error_body(err))
            return
        items = [exo_object(o) for o in _select(output, query.get("$select")).objects]
        errors = [e.message for e in output.errors]
        if fault is not None:  # ADMINAPI_ERRORS: a 200 that also carries a non-terminating error
            errors.append(f"The operation on '{name}' completed with errors (simulated).")
        self._send_page(items, self._page_size(), list(output.warnings), errors, body_hash)

    def _page_size(self) -> int:
        prefer = self.headers.get("Prefer") or ""
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        size = int(match.group(1)) if match else self.sim.default_page_size
        return max(1, min(size, 1000))

    def _send_page(
        self, items: list[dict[str, Any]], page_size: int, warnings: list[str], errors: list[str], body_hash: str
    ) -> None:
        tenant = self.sim.tenant_id
        doc: dict[str, Any] = {
            "@odata.context": (
                f"{self._origin()}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)"
            ),
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": warnings,
        }
        if errors:
            doc["@adminapi.errors"] = errors
        doc["value"] = items[:page_size]
        rest = items[page_size:]
        if rest:
            token = self.sim.store_page(_Page(body_hash, rest, self.sim.clock(), page_size, warnings))
            doc["@odata.nextLink"] = f"{self._origin()}/adminapi/beta/{tenant}/InvokeCommand?$skiptoken={token}"
        self._send(
            200,
            doc,
            headers={
                "OData-Version": "4.0",
                "Rate-Limit-Limit": "30000",
                "Rate-Limit-Remaining": "29999",
                "X-CalculatedBETarget": "SIM1P190MB0001.EURP190.PROD.OUTLOOK.COM",
            },
        )

    def _fault(self, fault: RestFault, name: str = "") -> None:
        kind = fault.kind
        if kind is FaultKind.THROTTLE:
            self._send(
                429,
                {
                    "error": {
                        "code": "TooManyRequests",
                        "message": (f"The request was throttled. Retry after {fault.retry_after} seconds."),
                    }
                },
                headers={"Retry-After": fault.retry_after},
            )
        elif kind is FaultKind.FORBIDDEN_BODYLESS:
            self._send(
                403,
                None,
                headers={
                    "x-ms-diagnostics": '2000008;reason="The caller does not have the role needed to run this cmdlet.";'
                    'error_category="insufficient_auth_strength"',
                },
            )
        elif kind is FaultKind.CMDLET_ERROR:
            self._send(
                400,
                cmdlet_error_body(
                    SimCmdletError(
                        f"The operation couldn't be performed because object '{name or 'x'}' couldn't be found on "
                        "'SIM1P190DC001.EURP190.PROD.OUTLOOK.COM'.",
                        category="ObjectNotFound",
                        error_id="ManagementObjectNotFound",
                        exception_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                    )
                ),
            )
        elif kind is FaultKind.SERVER_BUSY:
            self._send(
                400,
                {
                    "error": {
                        "code": "BadRequest",
                        "message": (
                            "|Microsoft.Exchange.Data.Storage.ServerBusyException|The server is busy. Try again later."
                        ),
                    }
                },
            )
        elif kind is FaultKind.UNAVAILABLE:
            self._send(
                503, {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable."}}
            )
        elif kind is FaultKind.GATEWAY_TIMEOUT:
            self._send(504, None)
        elif kind is FaultKind.BAD_GATEWAY_HTML:
            self._send(
                502,
                b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
                content_type="text/html",
            )
        elif kind is FaultKind.HTML_200:
            self._send(
                200, b"<!DOCTYPE html><html><body>Sign in to your account</body></html>", content_type="text/html"
            )
        elif kind is FaultKind.TOKEN_REJECTED:
            self._send(
                401,
                None,
                headers={
                    "WWW-Authenticate": (
                        'Bearer error="invalid_token", error_description="The access token has expired"'
                    ),
                    "x-ms-diagnostics": '2000003;reason="The access token has expired.";error_category="invalid_token"',
                },
            )
        else:  # pragma: no cover - every kind is handled above
            self._send(500, {"error": {"code": "InternalServerError", "message": f"unhandled fault {kind}"}})

    # --- Graph ----------------------------------------------------------------------------------

    def _graph(self, segments: list[str], query: dict[str, str]) -> None:
        sim = self.sim
        path = "/".join(segments)
        fault = sim.faults.take("graph", self.path)  # match on path and query (page links)
        if fault is not None:
            if fault.kind is FaultKind.THROTTLE:
                # Graph writes whole seconds; the client must honour it.
                self._send(
                    429,
                    {"error": {"code": "TooManyRequests", "message": "Too many requests."}},
                    headers={"Retry-After": fault.retry_after},
                    content_type="application/json",
                )
                return
            return self._fault(fault, path)
        claims = self._auth("graph")
        if claims is None:
            return
        if not set(claims.get("roles", [])) & set(GRAPH_ROLES):
            self._send(
                403,
                {
                    "error": {
                        "code": "Authorization_RequestDenied",
                        "message": "Insufficient privileges to complete the operation.",
                    }
                },
                content_type="application/json",
            )
            return
        route = _graph_route(segments)
        if route is None:
            self._send(
                404,
                {"error": {"code": "Request_ResourceNotFound", "message": f"Resource not found: /{path}"}},
                content_type="application/json",
            )
            return
        cmdlet, params, context, single = route
        if "$filter" in query:
            params["Filter"] = query["$filter"]
        if "$select" in query:
            params["Property"] = [n[:1].upper() + n[1:] for n in query["$select"].split(",") if n]
        session = sim.session_for(str(claims.get("appid")))
        try:
            output = dispatch(session, cmdlet, params)
        except SimCmdletError as err:
            self._graph_error(err)
            return
        items = [graph_json(o) for o in output.objects]
        if single:
            entity = dict(items[0]) if items else {}
            self._send(
                200,
                {"@odata.context": f"{self._origin()}/v1.0/$metadata#{context}/$entity", **entity},
                content_type="application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8",
            )
            return
        page_size = min(int(query.get("$top") or sim.graph_page_size), 999)
        offset = int(base64.urlsafe_b64decode(query["$skiptoken"]).decode()) if "$skiptoken" in query else 0
        doc: dict[str, Any] = {"@odata.context": f"{self._origin()}/v1.0/$metadata#{context}"}
        doc["value"] = items[offset : offset + page_size]
        if offset + page_size < len(items):
            token = base64.urlsafe_b64encode(str(offset + page_size).encode()).decode()
            next_query = {k: v for k, v in query.items() if k not in ("$skiptoken", "$top")}
            extra = "".join(f"&{quote(k, safe='$')}={quote(v, safe='')}" for k, v in next_query.items())
            doc["@odata.nextLink"] = f"{self._origin()}/v1.0/{path}?$top={page_size}{extra}&$skiptoken={token}"
        self._send(200, doc, content_type="application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8")

    def _graph_error(self, err: SimCmdletError) -> None:
        """A Get-Mg* handler error as Graph's JSON error ("[code] : message" is the SDK's rendering of it)."""
        match = re.match(r"^\[(\w+)\]\s*:\s*(.*)$", err.message, re.DOTALL)
        code, message = (match.group(1), match.group(2)) if match else ("BadRequest", err.message)
        status = 404 if code == "Request_ResourceNotFound" or err.category == "ObjectNotFound" else 400
        self._send(status, {"error": {"code": code, "message": message}}, content_type="application/json")


def _graph_route(segments: list[str]) -> tuple[str, dict[str, Any], str, bool] | None:
    """Graph path → (Get-Mg* cmdlet, its parameters, @odata.context suffix, single entity?)."""
    match segments:
        case ["subscribedSkus"]:
            return "Get-MgSubscribedSku", {"All": True}, "subscribedSkus", False
        case ["subscribedSkus", sku_id]:
            return "Get-MgSubscribedSku", {"SubscribedSkuId": sku_id}, "subscribedSkus", True
        case ["domains"]:
            return "Get-MgDomain", {"All": True}, "domains", False
        case ["domains", domain_id]:
            return "Get-MgDomain", {"DomainId": domain_id}, "domains", True
        case ["servicePrincipals"]:
            return "Get-MgServicePrincipal", {"All": True}, "servicePrincipals", False
        case ["servicePrincipals", sp_id]:
            return "Get-MgServicePrincipal", {"ServicePrincipalId": sp_id}, "servicePrincipals", True
        case ["servicePrincipals", sp_id, "appRoleAssignments"]:
            context = f"servicePrincipals('{sp_id}')/appRoleAssignments"
            return "Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": sp_id, "All": True}, context, False
    return None


def _select(output: SimOutput, select: str | None) -> SimOutput:
    """``$select=a,b``: keep only those properties (what Select-Object does on the PSRP path)."""
    if not select:
        return output
    wanted = [s.strip() for s in select.split(",") if s.strip()]
    objects = [SimObject(o.type_names, {p: o.properties.get(p) for p in wanted}) for o in output.objects]
    return SimOutput(objects=objects, warnings=output.warnings, errors=output.errors)
