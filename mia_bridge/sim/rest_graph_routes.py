"""Microsoft Graph on the REST simulator: the collections behind the Get-Mg* cmdlets.

Each route runs the same Get-Mg* handler the PSRP server runs and converts its objects to Graph's
camelCase JSON; collections are paged with ``$top``/``$skiptoken``, ``$filter`` and ``$select`` are
passed to the handler (as -Filter and -Property), ``{id}`` paths return one entity.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from mia_bridge.sim.registry import SimCmdletError
from mia_bridge.sim.rest_apps import DOMAIN_FEDERATION_ROLES, GRAPH_ROLES
from mia_bridge.sim.rest_codec import graph_json
from mia_bridge.sim.rest_delegated import READ_ROLES
from mia_bridge.sim.rest_faults import FaultKind
from mia_bridge.sim.rest_graph_messages import messages_route
from mia_bridge.sim.rest_handler import RestHandlerBase


class GraphRoutes(RestHandlerBase):
    """``GET /v1.0/...`` for subscribedSkus, domains, servicePrincipals and their appRoleAssignments."""

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
        granted = set(claims.get("roles", [])) | set(str(claims.get("scp") or "").split())
        needed = DOMAIN_FEDERATION_ROLES if "federationConfiguration" in segments else GRAPH_ROLES
        # delegated: the signed-in user also needs a directory read role (Global Reader or better)
        denied = "scp" in claims and not set(claims.get("wids") or []) & READ_ROLES
        if not granted & set(needed) or denied:
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
            output = self.sim.dispatch(session, cmdlet, params)
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
            origin = self._origin().replace("https://", "http://", 1) if sim.downgrade_links else self._origin()
            doc["@odata.nextLink"] = f"{origin}/v1.0/{path}?$top={page_size}{extra}&$skiptoken={token}"
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
        case ["domains", domain_id, "federationConfiguration"]:
            context = f"domains('{domain_id}')/federationConfiguration"
            return "Get-MgDomainFederationConfiguration", {"DomainId": domain_id, "All": True}, context, False
        case ["domains", domain_id, "federationConfiguration", fed_id]:
            context = f"domains('{domain_id}')/federationConfiguration"
            params = {"DomainId": domain_id, "InternalDomainFederationId": fed_id}
            return "Get-MgDomainFederationConfiguration", params, context, True
        case ["servicePrincipals"]:
            return "Get-MgServicePrincipal", {"All": True}, "servicePrincipals", False
        case ["servicePrincipals", sp_id]:
            return "Get-MgServicePrincipal", {"ServicePrincipalId": sp_id}, "servicePrincipals", True
        case ["servicePrincipals", sp_id, "appRoleAssignments"]:
            context = f"servicePrincipals('{sp_id}')/appRoleAssignments"
            return "Get-MgServicePrincipalAppRoleAssignment", {"ServicePrincipalId": sp_id, "All": True}, context, False
    return messages_route(segments)
