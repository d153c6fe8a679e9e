"""The PowerShell-free backend: Exchange Online's admin REST endpoint (``InvokeCommand``) plus Graph.

``POST {admin}/adminapi/beta/{tenantId}/InvokeCommand`` with ``{"CmdletInput":{"CmdletName",
"Parameters"}}`` is the transport of the ExchangeOnlineManagement V3 module itself; it is
undocumented, so every protocol fact here is sourced in ../shared/reference/exo-rest-invokecommand.md.
Parameters are typed JSON (switches as booleans, dates as UTC ``yyyy-MM-ddTHH:mm:ss``, arrays,
enums by name), never script text. Pages are followed by POSTing the same body to the absolute
``@odata.nextLink``. The Get-Mg* cmdlets the product uses are answered from Microsoft Graph
(``bridge/graph.py``), shaped as the Microsoft Graph PowerShell SDK returns them.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from mia_bridge.bridge.backend import CmdletCall, CmdletResult, ErrorInfo, Secret
from mia_bridge.bridge.clouds import Cloud
from mia_bridge.bridge.graph import GRAPH_CMDLETS, GraphClient
from mia_bridge.bridge.graph_audit import AuditLogQueryClient
from mia_bridge.bridge.pwsh import quote_single
from mia_bridge.bridge.rest_auth import AppCredential, TokenProvider, resolve_tenant_id
from mia_bridge.bridge.rest_delegated import DelegatedLogin, DelegatedTokenProvider
from mia_bridge.bridge.rest_errors import error_for, is_retryable_error
from mia_bridge.bridge.rest_http import (
    AuthorizedSender,
    RetryPolicy,
    body_excerpt,
    describe_response,
    httpx_verify,
    parse_json,
)
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeError,
    BridgeTransportError,
    CmdletError,
    CommandNotFoundError,
    UsageError,
)

log = logging.getLogger(__name__)

MODULE_VERSION = "3.10.1"  # what X-ClientModuleVersion claims; the module version this protocol was read from
# The system mailbox the module anchors app-only requests on (GUID from the module's DLL).
ANCHOR_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
MAX_PAGE_SIZE = 1000
# Cmdlets that only set up a PowerShell session: the REST backend is connected once it has a token.
SESSION_CMDLETS = frozenset(
    {"connect-exchangeonline", "disconnect-exchangeonline", "connect-mggraph", "disconnect-mggraph"}
)
# Module-local PowerShell commands with no admin-API counterpart.
MODULE_ONLY_CMDLETS = frozenset({"get-module", "get-mgcontext"})
_STATEFUL_PARAMETERS = frozenset({"sessionid", "sessioncommand"})


def encode_parameter(name: str, value: Any) -> Any:
    """One parameter value as the module's ``Transform-Parameters`` sends it."""
    if isinstance(value, Secret):
        raise UsageError(
            f"parameter {name}: SecureString values are not supported by the REST backend",
            hint="use --backend psrp for cmdlets that take a SecureString",
        )
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError(f"parameter {name}: a date must carry a time zone (got {value.isoformat()})")
        utc = value.astimezone(UTC)
        # Sub-second precision is kept (7 digits, as .NET writes them): message trace paging continues at
        # a row's Received, and a date cut to the second drops the rows of that second (issue 12).
        fraction = f".{utc.microsecond:06d}0" if utc.microsecond else ""
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, timedelta | uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [encode_parameter(name, v) for v in value]
    if isinstance(value, Mapping):
        table = {str(k): encode_parameter(f"{name}.{k}", v) for k, v in value.items()}
        return {"@odata.type": "#Exchange.GenericHashTable", **table}
    raise UsageError(f"parameter {name}: cannot send a {type(value).__name__} value to the admin API")


def encode_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): encode_parameter(str(k), v) for k, v in parameters.items()}


def decode_object(item: Mapping[str, Any]) -> dict[str, Any]:
    """One ``value`` entry → plain dict: annotations dropped, annotated dates as aware UTC datetimes."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        if "@" in key:
            continue
        kind = str(item.get(f"{key}@data.type") or item.get(f"{key}@odata.type") or "")
        out[key] = _decode_value(value, kind)
    return out


def _decode_value(value: Any, kind: str) -> Any:
    if isinstance(value, dict):
        return decode_object(value)
    if isinstance(value, list):
        inner = kind[len("#Collection(") : -1] if kind.startswith("#Collection(") else ""
        return [_decode_value(v, inner) for v in value]
    if isinstance(value, str) and kind.lstrip("#") in ("System.DateTime", "DateTimeOffset", "DateTime"):
        return parse_dotnet_datetime(value)
    return value


def parse_dotnet_datetime(text: str) -> datetime:
    """``2022-09-21T08:07:47.0000000+00:00`` (7 fraction digits, offset or Z) → aware UTC datetime."""
    body = text.strip()
    if body.endswith("Z"):
        body = body[:-1] + "+00:00"
    if "." in body:
        head, rest = body.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        body = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = datetime.fromisoformat(body)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def powershell_line(call: CmdletCall) -> str:
    """The call as one PowerShell line, for hints (display only; never executed)."""
    parts = [call.name]
    for key, value in call.parameters.items():
        if value is True:
            parts.append(f"-{key}:$true" if key.lower().endswith("enabled") else f"-{key}")
        elif value is False:
            parts.append(f"-{key}:$false")
        elif isinstance(value, Secret):
            parts.append(f"-{key} (Read-Host -AsSecureString)")
        elif isinstance(value, list | tuple):
            parts.append(f"-{key} " + ",".join(_ps_quote(v) for v in value))
        else:
            parts.append(f"-{key} {_ps_quote(value)}")
    return " ".join(parts)


def _ps_quote(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return quote_single(str(value))


class NextLinkExpired(Exception):
    """Internal: a follow-up page request was refused (the link expired or was invalid)."""

    def __init__(self, pages: int, detail: str) -> None:
        super().__init__(detail)
        self.pages = pages
        self.detail = detail


class RestBackend:
    """``ExoBackend`` over the EXO admin REST API and Graph, authenticated app-only with a certificate."""

    name = "rest"

    def __init__(
        self,
        *,
        cloud: Cloud,
        organization: str,
        credential: AppCredential | None = None,
        ca_bundle: str | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 960.0,  # the module's client timeout: one minute more than the server's
        page_size: int = MAX_PAGE_SIZE,
        refresh_margin_s: float = 300.0,
        delegated: DelegatedLogin | None = None,
        shared_tokens: TokenProvider | None = None,
    ) -> None:
        if (credential is None) == (delegated is None):
            raise UsageError("the rest backend needs either an app certificate (app-only) or a delegated sign-in")
        if not cloud.certain:
            log.warning("cloud %s: %s", cloud.name, cloud.note)
        self.cloud = cloud
        self.organization = organization
        self.credential = credential
        self.delegated = delegated
        self._shared_tokens = shared_tokens  # clones of a delegated backend reuse its sign-in
        self.verify: str | bool = ca_bundle or True
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self.refresh_margin_s = refresh_margin_s
        self.tenant_id: str | None = None
        self.connection_id = str(uuid.uuid4())
        self.admin_url = cloud.admin_url
        self._http: httpx.Client | None = None
        self._tokens: TokenProvider | None = None
        self._sender: AuthorizedSender | None = None
        self._graph: GraphClient | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        if self._http is not None:
            return
        self.tenant_id = resolve_tenant_id(self.cloud, self.organization, verify=self.verify)
        if self._shared_tokens is not None:
            self._tokens = self._shared_tokens
        elif self.delegated is not None:
            self._tokens = DelegatedTokenProvider(
                self.delegated, self.cloud, self.tenant_id, verify=self.verify, refresh_margin_s=self.refresh_margin_s
            )
        else:
            assert self.credential is not None
            self._tokens = TokenProvider(
                self.credential, self.cloud, self.tenant_id, verify=self.verify, refresh_margin_s=self.refresh_margin_s
            )
        self._tokens.token(self.cloud.exo_scope)  # fail now, not on the first cmdlet, when auth is wrong
        self._http = httpx.Client(
            verify=httpx_verify(self.verify),
            timeout=httpx.Timeout(self.timeout_s, connect=30.0),
            follow_redirects=False,
            headers={"User-Agent": f"mia-bridge (ExchangeOnlineManagement-compatible/{MODULE_VERSION})"},
        )
        self._sender = AuthorizedSender(
            self._http, self._tokens, self.retry, allow_redirect=self.cloud.allows_admin_redirect
        )
        self._graph = GraphClient(self._http, self.cloud, self._tokens, self.retry)

    def clone(self) -> RestBackend:
        """An unopened backend with the same settings: the collector opens one per worker thread."""
        return RestBackend(
            cloud=self.cloud,
            organization=self.organization,
            credential=self.credential,
            delegated=self.delegated,
            shared_tokens=self._tokens if self.delegated is not None else None,
            ca_bundle=self.verify if isinstance(self.verify, str) else None,
            retry=self.retry,
            timeout_s=self.timeout_s,
            page_size=self.page_size,
            refresh_margin_s=self.refresh_margin_s,
        )

    def audit_log_queries(self) -> AuditLogQueryClient:
        """A client for the Graph audit log query API on this connection (``--source graph-audit``)."""
        if self._http is None or self._tokens is None:
            raise BridgeError("the REST backend is not open", hint="call open() or use it as a context manager")
        return AuditLogQueryClient(self._http, self.cloud, self._tokens, self.retry)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = self._sender = self._graph = None

    def __enter__(self) -> RestBackend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "cloud": self.cloud.name,
            "endpoint": f"{self.admin_url}/adminapi/beta/{self.tenant_id or self.organization}/InvokeCommand",
            "graph": self.cloud.graph_url,
            "organization": self.organization,
            "tenant_id": self.tenant_id,
            "auth": "delegated" if self.delegated else "app-only certificate",
            **({"app": self.credential.describe()} if self.credential else {}),
            **({"sign_in": self.delegated.describe(), "account": self.signed_in_user} if self.delegated else {}),
            "page_size": self.page_size,
            "module_version_emulated": MODULE_VERSION,
            "retries": self._sender.retries if self._sender else 0,
            "graph_retries": self._graph.retries if self._graph else 0,
            "tokens_acquired": self._tokens.acquired if self._tokens else 0,
            **({"cloud_note": self.cloud.note} if not self.cloud.certain else {}),
        }

    # --- cmdlets --------------------------------------------------------------------------------

    def invoke(self, call: CmdletCall) -> CmdletResult:
        if self._sender is None or self._graph is None:
            raise BridgeError("the REST backend is not open", hint="call open() or use it as a context manager")
        started = time.monotonic()
        key = call.name.lower()
        if key in SESSION_CMDLETS:
            result = CmdletResult(call=call)  # the token is the connection
        elif key == "get-connectioninformation":
            result = CmdletResult(call=call, output=[self._connection_information()])
        elif key in MODULE_ONLY_CMDLETS:
            raise CommandNotFoundError(
                f"not applicable with the rest backend: {call.name} describes a local PowerShell session, and this "
                "backend talks to the admin API directly (no PowerShell module is involved)",
                cmdlet=call.name,
                category="ObjectNotFound",
                error_id="CommandNotFoundException",
            )
        elif key in GRAPH_CMDLETS:
            result = CmdletResult(call=call, output=self._graph.run(call))
        else:
            result = self._invoke_command(call)
        result.duration_s = time.monotonic() - started
        return result

    def _connection_information(self) -> dict[str, Any]:
        """What Get-ConnectionInformation (module-local in ExchangeOnlineManagement) says about this connection."""
        assert self._tokens is not None
        expires = self._tokens.expires_at(self.cloud.exo_scope)
        return {
            "ConnectionId": self.connection_id,
            "State": "Connected",
            "Name": "ExchangeOnline_REST",
            "UserPrincipalName": self.signed_in_user,
            "ConnectionUri": self.admin_url,
            "AzureAdAuthorizationEndpointUri": self.cloud.authority(self.tenant_id or self.organization),
            "TokenExpiryTimeUTC": datetime.fromtimestamp(expires, UTC) if expires else None,
            "CertificateAuthentication": self.credential is not None,
            "Organization": self.organization,
            "AppId": self.client_id,
            "TenantID": self.tenant_id,
            "TokenStatus": "Active" if expires and expires > time.time() else "Expired",
            "PageSize": self.page_size,
        }

    def _invoke_command(self, call: CmdletCall) -> CmdletResult:
        body = json.dumps({"CmdletInput": {"CmdletName": call.name, "Parameters": encode_parameters(call.parameters)}})
        stateful = any(k.lower() in _STATEFUL_PARAMETERS for k in call.parameters)
        try:
            return self._run_pages(call, body.encode())
        except NextLinkExpired as exc:
            if stateful:
                raise CmdletError(
                    f"the paging link expired after {exc.pages} page(s) ({exc.detail}); the session's position "
                    "on the server is unknown, so nothing from this call was kept",
                    cmdlet=call.name,
                    category="OperationTimeout",
                    error_id="NextLinkExpired",
                    hint="re-run this time window with a new SessionId (mia collect does this when resuming)",
                ) from None
            log.warning("%s: paging link expired after %d page(s); re-running the query", call.name, exc.pages)
            result = self._run_pages(call, body.encode())
            result.warnings.insert(
                0,
                f"mia-bridge: the paging link expired after {exc.pages} page(s); "
                "the query was run again from the start",
            )
            return result

    def _url(self, call: CmdletCall) -> str:
        url = f"{self.admin_url}/adminapi/beta/{self.tenant_id}/InvokeCommand"
        if call.select:
            url += "?$select=" + quote(",".join(call.select), safe=",")
        return url

    def _headers(self, call: CmdletCall) -> dict[str, str]:
        result_size = call.parameters.get("ResultSize")
        page = self.page_size
        if isinstance(result_size, int) and not isinstance(result_size, bool) and result_size > 0:
            page = min(result_size, page)
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CmdletName": call.name,
            "client-request-id": str(uuid.uuid4()),  # one per cmdlet, reused on retries and pages
            "connection-id": self.connection_id,
            "Prefer": f"odata.maxpagesize={page}",
            "X-ResponseFormat": "json",
            "X-SerializationLevel": "Partial",
            "X-ClientApplication": "ExoManagementModule",
            "X-ClientModuleVersion": MODULE_VERSION,
            "X-AnchorMailbox": self._anchor(),
        }

    @property
    def client_id(self) -> str:
        who = self.credential or self.delegated
        assert who is not None  # __init__ demands one
        return who.client_id

    @property
    def signed_in_user(self) -> str | None:
        """The UPN of the delegated sign-in (None for app-only or before open())."""
        return self._tokens.username if isinstance(self._tokens, DelegatedTokenProvider) else None

    def _anchor(self) -> str:
        """X-AnchorMailbox: the signed-in user's mailbox (delegated, as the module sends ``UPN:<user>``), else the
        system mailbox the module anchors app-only calls on."""
        user = self.signed_in_user
        return f"UPN:{user}" if user else f"APP:{ANCHOR_MAILBOX}@{self.tenant_id}"

    def _run_pages(self, call: CmdletCall, body: bytes) -> CmdletResult:
        assert self._sender is not None
        result = CmdletResult(call=call)
        headers = self._headers(call)
        url = self._url(call)
        pages = 0
        seen_warnings: set[str] = set()
        while True:
            self._sender.redirected_to = None
            response = self._sender.send(
                "POST",
                url,
                scope=self.cloud.exo_scope,
                headers=headers,
                content=body,
                what=call.name,
                is_retryable=is_retryable_error,
            )
            if self._sender.redirected_to is not None and pages == 0:
                self._stick_to(self._sender.redirected_to)
            if response.status_code != 200:
                if pages > 0 and response.status_code in (400, 404, 410):
                    raise NextLinkExpired(pages, f"HTTP {response.status_code}")
                error = error_for(response, call.name, powershell_line=powershell_line(call))
                if isinstance(error, AccessDeniedError) and self.delegated is not None:
                    error.hint = (
                        f"the signed-in user {self.signed_in_user} needs an Exchange role that includes {call.name}: "
                        "View-Only Audit Logs or Audit Logs for the audit searches (e.g. Compliance Management, or "
                        "Purview Audit Reader); Global Reader covers the read-only inventory cmdlets"
                    )
                raise error
            doc = parse_json(response)
            if not isinstance(doc, dict) or not isinstance(doc.get("value", []), list):
                raise BridgeTransportError(
                    f"{call.name}: {describe_response(response)} with a body that is not an admin-API JSON document: "
                    f"{body_excerpt(response)}",
                    hint="a proxy or sign-in page may have answered instead of Exchange Online",
                )
            pages += 1
            result.output.extend(decode_object(item) for item in doc.get("value", []) if isinstance(item, dict))
            for warning in doc.get("@adminapi.warnings") or []:
                if str(warning) not in seen_warnings:  # the service repeats them on every page
                    seen_warnings.add(str(warning))
                    result.warnings.append(str(warning))
            for error in doc.get("@adminapi.errors") or []:
                result.errors.append(ErrorInfo(message=str(error), category="NotSpecified", error_id="AdminApiError"))
            next_link = urljoin(url, str(doc["@odata.nextLink"])) if doc.get("@odata.nextLink") else None
            if not next_link:
                return result
            if not self.cloud.allows_admin_redirect(str(next_link)):
                raise BridgeTransportError(
                    f"{call.name}: the next-page link points to {urlsplit(str(next_link)).netloc}, not a host of this "
                    "cloud; the token is not sent there"
                )
            url = str(next_link)

    def _stick_to(self, target: str) -> None:
        """Use the regional host a redirect named for every later call, as the module does."""
        parts = urlsplit(target)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin != self.admin_url:
            log.info("admin API: regional host %s", parts.netloc)
            self.admin_url = origin
