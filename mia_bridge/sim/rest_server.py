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
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from mia_bridge.sim import rest_jwt
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, command_not_found, dispatch
from mia_bridge.sim.rest_apps import EXO_ROLE, RESOURCES, AppCertificateFiles, SimApp, make_app_certificate
from mia_bridge.sim.rest_audit_routes import AuditQueryService, AuditRoutes
from mia_bridge.sim.rest_codec import cmdlet_error_body, decode_rest_parameters, exo_object, is_throttle
from mia_bridge.sim.rest_delegated import DelegatedDirectory, DelegatedRoutes, denied_reason
from mia_bridge.sim.rest_faults import FaultKind, FaultPlan, RestFault
from mia_bridge.sim.rest_graph_routes import GraphRoutes
from mia_bridge.sim.rest_handler import RequestRecord
from mia_bridge.sim.rest_sts import StsRoutes
from mia_bridge.sim.tenant import MODULE_CMDLETS, Tenant, TenantSession
from mia_bridge.sim.tls import make_tls_files

__all__ = ["RequestRecord", "RestSimServer"]


@dataclass
class _Page:
    body_hash: str
    items: list[dict[str, Any]]
    created: float
    page_size: int
    warnings: list[str]


# --- the server ---------------------------------------------------------------------------------


# The ExchangeOnlineManagement module's client-side cmdlets (its RestApiClient DLL), not served by InvokeCommand.
CLIENT_SIDE_CMDLETS = frozenset(name.lower() for name in (
    "Get-EXOMailbox", "Get-EXOMailboxStatistics", "Get-EXOMailboxFolderStatistics", "Get-EXOMailboxPermission",
    "Get-EXOMailboxFolderPermission", "Get-EXORecipient", "Get-EXORecipientPermission", "Get-EXOCasMailbox",
    "Get-EXOMobileDeviceStatistics",
))


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
        dispatcher: Callable[[Any, str, dict[str, Any]], SimOutput] = dispatch,
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
        # Tests: links and redirects downgraded to http (what a rewriting proxy would do); a client must
        # never follow them with its token.
        self.downgrade_links = False
        self.clock = clock
        self.dispatch = dispatcher  # registry.dispatch; tests may wrap it to add cmdlets of their own
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
        self.audit = AuditQueryService(tenant, clock)  # Graph audit log queries (rest_audit_routes)
        self.delegated = DelegatedDirectory(tenant.config.organization)  # users and public clients (rest_delegated)
        self._sessions: dict[str, TenantSession] = {}
        self._lock = threading.Lock()
        self._servers: list[_TLSServer] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> RestSimServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_path, self.tls.key_path)
        handler = type("BoundHandler", (_Handler,), {"sim": self})
        for port in (self._port, 0):  # main host, then the "regional" host
            httpd = _TLSServer((self.host, port), handler, context)
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

    def audit_denied(self, claims: dict[str, Any]) -> str | None:
        """Why a delegated caller may not search the audit log through Graph (None: allowed or app-only)."""
        return denied_reason(self, claims, "audit")

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


class _TLSServer(ThreadingHTTPServer):
    """HTTPS listener whose TLS handshakes run in the request threads, so a client that connects and
    stalls cannot block ``accept`` (and with it every other client and ``stop()``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a failed handshake or a dropped client is the client's problem, not a traceback here


class _Handler(StsRoutes, GraphRoutes, AuditRoutes, DelegatedRoutes):
    """Routes requests to the token service, the admin API (here) and Graph."""

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
            if method == "POST" and len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "devicecode"]:
                return self._devicecode(body)
            if method == "GET" and len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "authorize"]:
                return self._authorize(query)
            if (
                method == "POST"
                and len(segments) == 4
                and segments[:2] == ["adminapi", "beta"]
                and segments[3].lower() == "invokecommand"
            ):
                return self._invoke(segments[2], query, body)
            if segments[0:1] in (["v1.0"], ["beta"]) and [s.lower() for s in segments[1:4]] == [
                "security", "auditlog", "queries",
            ]:
                return self._audit(segments[0], method, segments[4:], query, body)
            if method == "GET" and segments[:1] == ["v1.0"]:
                return self._graph(segments[1:], query)
            self._send(404, {"error": {"code": "NotFound", "message": f"No route for {method} {path}"}})
        except Exception as exc:  # a simulator bug must reach the client as a 500, not a dropped connection
            self._send(500, {"error": {"code": "InternalServerError", "message": f"{type(exc).__name__}: {exc}"}})

    # --- InvokeCommand --------------------------------------------------------------------------

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
        if "scp" in claims and "Exchange.Manage" in str(claims["scp"]).split():
            pass  # delegated: the user's roles decide per cmdlet, below
        elif EXO_ROLE not in claims.get("roles", []):
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
            if sim.downgrade_links:
                location = "http://" + location.split("://", 1)[1]
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
        denied = denied_reason(sim, claims, "exo", name)
        if denied:  # RBAC: the module's bodyless 403 (exo-rest-invokecommand.md §2)
            reason = denied.replace('"', "'")
            self._send(403, None, headers={"x-ms-diagnostics": f'2000008;reason="{reason}";'
                                           'error_category="insufficient_auth_strength"'})
            return
        session = sim.session_for(str(claims.get("appid")))
        if name.lower() in MODULE_CMDLETS or name.lower() in CLIENT_SIDE_CMDLETS:
            # Connect-ExchangeOnline, Get-ConnectionInformation, Get-Module …: module-local, not service cmdlets;
            # Get-EXO* run in the module's own REST client, not behind InvokeCommand (exchange-platform-facts,
            # "Client-side cmdlets"): the service serves Get-Mailbox instead.
            self._send(400, cmdlet_error_body(command_not_found(name)))
            return
        try:
            output = self.sim.dispatch(session, name, params)
        except SimCmdletError as err:
            if is_throttle(err):
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


def _select(output: SimOutput, select: str | None) -> SimOutput:
    """``$select=a,b``: keep only those properties (what Select-Object does on the PSRP path)."""
    if not select:
        return output
    wanted = [s.strip() for s in select.split(",") if s.strip()]
    objects = [SimObject(o.type_names, {p: o.properties.get(p) for p in wanted}) for o in output.objects]
    return SimOutput(objects=objects, warnings=output.warnings, errors=output.errors)
