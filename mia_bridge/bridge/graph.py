"""Microsoft Graph for the REST backend: the Get-Mg* cmdlets the product uses, answered over httpx.

Licence detection reads ``subscribedSkus`` (service plan ``M365_ADVANCED_AUDITING``); the Sparrow
inventory reads ``domains`` (and a federated domain's ``federationConfiguration``), ``servicePrincipals``
and their ``appRoleAssignments``. Results are
shaped as the Microsoft Graph PowerShell SDK returns them (PascalCase properties, dates as
DateTime), so both backends hand the collector identical records. ``@odata.nextLink`` pages are
followed to the end; 429 and 5xx are retried honouring ``Retry-After`` (see ``rest_http``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.clouds import Cloud
from mia_bridge.bridge.rest_auth import TokenProvider
from mia_bridge.bridge.rest_http import AuthorizedSender, RetryPolicy, body_excerpt, describe_response, parse_json
from mia_bridge.errors import AccessDeniedError, BridgeAuthError, BridgeTransportError, CmdletError, ThrottledError

_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class GraphCmdlet:
    """How one Get-Mg* cmdlet maps to Graph: the collection, the -<Id> parameter(s) and the parameters allowed."""

    collection: str  # path template; {ServicePrincipalId} is filled from the parameter
    item_parameter: str  # -DomainId etc.: GET {collection}/{id}, one entity
    required: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # accepted and ignored (SDK-side only)


GRAPH_CMDLETS: dict[str, GraphCmdlet] = {
    "get-mgsubscribedsku": GraphCmdlet("subscribedSkus", "SubscribedSkuId"),
    "get-mgdomain": GraphCmdlet("domains", "DomainId"),
    "get-mgdomainfederationconfiguration": GraphCmdlet(
        "domains/{DomainId}/federationConfiguration", "InternalDomainFederationId", required=("DomainId",)
    ),
    "get-mgserviceprincipal": GraphCmdlet(
        "servicePrincipals", "ServicePrincipalId", extra=("ConsistencyLevel", "CountVariable")
    ),
    "get-mgserviceprincipalapproleassignment": GraphCmdlet(
        "servicePrincipals/{ServicePrincipalId}/appRoleAssignments",
        "AppRoleAssignmentId",
        required=("ServicePrincipalId",),
    ),
    "get-mgusermessage": GraphCmdlet("users/{UserId}/messages", "MessageId", required=("UserId",)),
    "get-mgusermailfolder": GraphCmdlet("users/{UserId}/mailFolders", "MailFolderId", required=("UserId",)),
    "get-mgusermailfolderchildfolder": GraphCmdlet(
        "users/{UserId}/mailFolders/{MailFolderId}/childFolders", "MailFolderId1", required=("UserId", "MailFolderId")
    ),
}
_COMMON = ("All", "Top", "Filter", "Property")
GRAPH_MAX_PAGE = 999


def to_powershell(value: Any) -> Any:
    """Graph JSON → the SDK's object shape: PascalCase names, ``*DateTime`` strings as UTC datetimes."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.startswith("@odata."):
                continue
            name = key[:1].upper() + key[1:]
            if key.endswith("DateTime") and isinstance(item, str) and _ISO_DATE.match(item):
                out[name] = _parse_graph_date(item)
            else:
                out[name] = to_powershell(item)
        return out
    if isinstance(value, list):
        return [to_powershell(v) for v in value]
    return value


def _parse_graph_date(text: str) -> datetime:
    body = text[:-1] + "+00:00" if text.endswith("Z") else text
    if "." in body:
        head, rest = body.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        body = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    return datetime.fromisoformat(body).astimezone(UTC)


class GraphClient:
    """Reads the Graph collections behind the Get-Mg* cmdlets, all pages, with retries."""

    def __init__(self, http: httpx.Client, cloud: Cloud, tokens: TokenProvider, retry: RetryPolicy) -> None:
        self.cloud = cloud
        graph_host = urlsplit(cloud.graph_url).netloc
        self._sender = AuthorizedSender(
            http, tokens, retry, allow_redirect=lambda url: urlsplit(url).netloc == graph_host
        )
        self.pages_read = 0

    @property
    def retries(self) -> int:
        return self._sender.retries

    def run(self, call: CmdletCall) -> list[dict[str, Any]]:
        """The cmdlet's output as the SDK returns it: first page only, unless -All (every page) or -Top n."""
        spec = GRAPH_CMDLETS[call.name.lower()]
        params = {k.lower(): (k, v) for k, v in call.parameters.items()}
        allowed = {n.lower() for n in (*_COMMON, spec.item_parameter, *spec.required, *spec.extra)}
        for key, (name, _) in params.items():
            if key not in allowed:
                raise self._usage(call, f"A parameter cannot be found that matches parameter name '{name}'.")
        missing = [n for n in spec.required if params.get(n.lower(), (n, None))[1] in (None, "")]
        if missing:
            raise self._usage(
                call,
                f"Cannot process command because of one or more missing mandatory parameters: {' '.join(missing)}.",
            )
        path = spec.collection
        for name in spec.required:
            path = path.replace("{" + name + "}", quote(str(params[name.lower()][1]), safe=""))
        query: dict[str, str] = {}
        if "filter" in params:
            query["$filter"] = str(params["filter"][1])
        if "property" in params:
            value = params["property"][1]
            names = [value] if isinstance(value, str) else list(value)
            query["$select"] = ",".join(n[:1].lower() + n[1:] for n in names)
        item_id = params.get(spec.item_parameter.lower(), (None, None))[1]
        if item_id:
            entity = self.get_one(f"{path}/{quote(str(item_id), safe='')}", query, what=call.name)
            return [to_powershell(entity)]
        top = params.get("top", (None, None))[1]
        limit: int | None = None
        if top is not None:
            limit = int(top)
            query["$top"] = str(min(limit, GRAPH_MAX_PAGE))
        elif not params.get("all", (None, False))[1]:
            limit = -1  # the SDK without -All: the first page only
        items = self.get_all(path, query, what=call.name, limit=limit)
        return [to_powershell(item) for item in items]

    def _usage(self, call: CmdletCall, message: str) -> CmdletError:
        return CmdletError(message, cmdlet=call.name, category="InvalidArgument", error_id="NamedParameterNotFound")

    def get_one(self, path: str, query: dict[str, str], *, what: str) -> dict[str, Any]:
        response = self._get(f"{self.cloud.graph_url}/v1.0/{path}", query, what=what)
        doc = parse_json(response)
        if not isinstance(doc, dict):
            raise BridgeTransportError(f"{what}: Graph answered {describe_response(response)} without a JSON entity")
        return doc

    def get_all(
        self, path: str, query: dict[str, str] | None = None, *, what: str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Items of ``/v1.0/{path}`` following ``@odata.nextLink``; ``limit`` n stops at n, -1 after one page."""
        url = f"{self.cloud.graph_url}/v1.0/{path}"
        items: list[dict[str, Any]] = []
        graph_host = urlsplit(self.cloud.graph_url).netloc
        params: dict[str, str] | None = query
        while True:
            response = self._get(url, params, what=what)
            doc = parse_json(response)
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
                raise BridgeTransportError(
                    f"{what}: Graph answered {describe_response(response)} with a body that is not a collection: "
                    f"{body_excerpt(response)}"
                )
            self.pages_read += 1
            items.extend(v for v in doc["value"] if isinstance(v, dict))
            next_link = urljoin(url, str(doc["@odata.nextLink"])) if doc.get("@odata.nextLink") else None
            if limit is not None and limit >= 0 and len(items) >= limit:
                return items[:limit]
            if not next_link or limit == -1:
                return items
            if urlsplit(str(next_link)).netloc != graph_host:
                raise BridgeTransportError(f"{what}: Graph's next-page link leaves {graph_host}; not followed")
            url, params = str(next_link), None  # the link carries the query

    def _get(self, url: str, params: dict[str, str] | None, *, what: str) -> httpx.Response:
        if params:
            url = f"{url}?{urlencode(params, quote_via=quote, safe='$,')}"
        response = self._sender.send(
            "GET", url, scope=self.cloud.graph_scope, headers={"Accept": "application/json"}, what=what
        )
        if response.status_code != 200:
            raise self._error(response, what)
        return response

    def _error(self, response: httpx.Response, what: str) -> Exception:
        status, code, message = graph_error_fields(response, what)
        if status == 401:
            return BridgeAuthError(
                f"{what}: Microsoft Graph refused the token (HTTP 401): {message or code or 'no reason given'}",
                hint="check the app registration's Graph application permissions and admin consent",
            )
        if status == 403:
            return AccessDeniedError(
                f"Microsoft Graph denied access (HTTP 403): {message or code or 'no body'}",
                cmdlet=what,
                category="PermissionDenied",
                error_id=code or "Forbidden",
                hint="grant the app Organization.Read.All (licences) and Application.Read.All / Directory.Read.All "
                "(inventory) as application permissions, with admin consent",
            )
        if status == 429:
            return ThrottledError(f"Microsoft Graph is throttling after retries: {message}", cmdlet=what, error_id=code)
        if status >= 500:
            return BridgeTransportError(f"{what}: Graph answered {describe_response(response)}: {message}")
        # As the Graph PowerShell SDK reports it: "[code] : message", FullyQualifiedErrorId "code,<cmdlet class>".
        sdk_class = f"Microsoft.Graph.PowerShell.Cmdlets.{what.replace('-', '')}_Get"
        return CmdletError(
            f"[{code or status}] : {message or 'no message'}",
            cmdlet=what,
            category="ObjectNotFound" if status == 404 else "InvalidOperation",
            error_id=f"{code or status},{sdk_class}",
        )


def graph_error_fields(response: httpx.Response, what: str) -> tuple[int, str, str]:
    """(HTTP status, error code, error message) of a Graph error answer.

    Raises BridgeTransportError when the body is not JSON (a proxy or gateway answered, not Graph)."""
    doc = parse_json(response)
    err = doc.get("error") if isinstance(doc, dict) else None
    code = str(err.get("code", "")) if isinstance(err, dict) else ""
    message = str(err.get("message", "")) if isinstance(err, dict) else ""
    if doc is None and response.content:
        raise BridgeTransportError(
            f"{what}: Graph answered {describe_response(response)} with a non-JSON body: {body_excerpt(response)}"
        )
    return response.status_code, code, message
