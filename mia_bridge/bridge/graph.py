"""Microsoft Graph for the REST backend: the Get-Mg* cmdlets the product uses, answered over httpx.

Licence detection reads ``subscribedSkus`` (service plan ``M365_ADVANCED_AUDITING``); the Sparrow
inventory reads ``domains``, ``servicePrincipals`` and their ``appRoleAssignments``. Results are
shaped as the Microsoft Graph PowerShell SDK returns them (PascalCase properties, dates as
DateTime), so both backends hand the collector identical records. ``@odata.nextLink`` pages are
followed to the end; 429 and 5xx are retried honouring ``Retry-After`` (see ``rest_http``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.clouds import Cloud
from mia_bridge.bridge.rest_auth import TokenProvider
from mia_bridge.bridge.rest_http import AuthorizedSender, RetryPolicy, body_excerpt, describe_response, parse_json
from mia_bridge.errors import AccessDeniedError, BridgeAuthError, BridgeTransportError, CmdletError, ThrottledError

_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _sp_id(call: CmdletCall) -> str:
    value = call.parameters.get("ServicePrincipalId")
    if not isinstance(value, str) or not value:
        raise CmdletError(
            "Cannot process command because of one or more missing mandatory parameters: ServicePrincipalId.",
            cmdlet=call.name,
            category="InvalidArgument",
            error_id="MissingMandatoryParameter",
        )
    return value


# cmdlet (lower case) → (parameters it accepts besides paging switches, Graph path builder)
GRAPH_CMDLETS: dict[str, tuple[frozenset[str], Callable[[CmdletCall], str]]] = {
    "get-mgsubscribedsku": (frozenset(), lambda call: "subscribedSkus"),
    "get-mgdomain": (frozenset(), lambda call: "domains"),
    "get-mgserviceprincipal": (frozenset(), lambda call: "servicePrincipals"),
    "get-mgserviceprincipalapproleassignment": (
        frozenset({"serviceprincipalid"}),
        lambda call: f"servicePrincipals/{quote(_sp_id(call), safe='')}/appRoleAssignments",
    ),
}
_PAGING_SWITCHES = frozenset({"all", "pagesize", "consistencylevel"})


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

    def run(self, call: CmdletCall) -> list[dict[str, Any]]:
        accepted, build_path = GRAPH_CMDLETS[call.name.lower()]
        for name in call.parameters:
            if name.lower() not in accepted and name.lower() not in _PAGING_SWITCHES:
                raise CmdletError(
                    f"A parameter cannot be found that matches parameter name '{name}' "
                    "(the REST backend maps only the parameters mia-bridge uses).",
                    cmdlet=call.name,
                    category="InvalidArgument",
                    error_id="NamedParameterNotFound",
                )
        items = self.get_all(build_path(call), what=call.name)
        records = [to_powershell(item) for item in items]
        if call.select:
            records = [{key: record.get(key) for key in call.select} for record in records]
        return records

    def get_all(self, path: str, *, what: str) -> list[dict[str, Any]]:
        """Every item of a Graph collection (``/v1.0/{path}``), following ``@odata.nextLink``."""
        url = f"{self.cloud.graph_url}/v1.0/{path}"
        items: list[dict[str, Any]] = []
        graph_host = urlsplit(self.cloud.graph_url).netloc
        while True:
            response = self._sender.send(
                "GET", url, scope=self.cloud.graph_scope, headers={"Accept": "application/json"}, what=what
            )
            if response.status_code != 200:
                raise self._error(response, what)
            doc = parse_json(response)
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
                raise BridgeTransportError(
                    f"{what}: Graph answered {describe_response(response)} with a body that is not a collection: "
                    f"{body_excerpt(response)}"
                )
            self.pages_read += 1
            items.extend(v for v in doc["value"] if isinstance(v, dict))
            next_link = doc.get("@odata.nextLink")
            if not next_link:
                return items
            if urlsplit(str(next_link)).netloc != graph_host:
                raise BridgeTransportError(f"{what}: Graph's next-page link leaves {graph_host}; not followed")
            url = str(next_link)

    def _error(self, response: httpx.Response, what: str) -> Exception:
        doc = parse_json(response)
        status = response.status_code
        err = doc.get("error") if isinstance(doc, dict) else None
        code = str(err.get("code", "")) if isinstance(err, dict) else ""
        message = str(err.get("message", "")) if isinstance(err, dict) else ""
        if doc is None and response.content:
            return BridgeTransportError(
                f"{what}: Graph answered {describe_response(response)} with a non-JSON body: {body_excerpt(response)}"
            )
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
        if status == 404:
            return CmdletError(message or "Resource not found", cmdlet=what, category="ObjectNotFound", error_id=code)
        if status >= 500:
            return BridgeTransportError(f"{what}: Graph answered {describe_response(response)}: {message}")
        return CmdletError(
            message or f"HTTP {status}", cmdlet=what, category="InvalidArgument", error_id=code or str(status)
        )
