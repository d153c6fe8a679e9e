"""The Graph audit log query API on the REST simulator: ``/v1.0/security/auditLog/queries``.

Modelled on Microsoft's pages (see ``bridge/graph_audit.py`` for the URLs): POST creates a query
(201, status ``notStarted``); GET reports ``notStarted`` → ``running`` → ``succeeded`` as simulated
time passes (or ``failed``/``cancelled`` when a fault says so); ``/records`` pages ``auditLogRecord``
objects whose ``auditData`` is the record Search-UnifiedAuditLog returns (the same ``Tenant.select``
filters), plus the ``@odata.type`` annotation Microsoft's example shows. Harsher than kind where
the documentation is silent [U]:

- the service limits are the documented minimums ("Security audit log query service limits",
  https://learn.microsoft.com/graph/throttling-limits#security-audit-log-query-service-limits):
  ``recordCountLimit`` 1,000,000 per query, 50 queued or running queries and 200 submissions in a
  rolling 24 hours per tenant; over either count the create is refused with 429 and ``Retry-After``;
- a query matching more than ``recordCountLimit`` succeeds anyway ("can complete successfully after
  exceeding its record-count limit") with an arbitrary subset, said only by
  ``isRecordCountLimitExceeded`` and an approximate count that may be a little below the limit;
- records pages are at most 1,000 (150 without ``$top``); page links expire;
- ``versions`` says which Graph versions serve the API (Microsoft moved it back to beta in 2025,
  MC1052169, and documents v1.0 again in 2026); the other answers 400 as Graph does for an
  unknown segment;
- a token with only a per-service permission (``AuditLogsQuery-Exchange.Read.All`` …) silently gets
  only that service's records.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mia_bridge.sim.rest_faults import FaultKind
from mia_bridge.sim.rest_handler import RestHandlerBase
from mia_bridge.sim.tenant import Tenant
from mia_bridge.sim.tenant_store import RECORD_TYPE_NAMES

AUDIT_QUERY_PERMISSION = "AuditLogsQuery.Read.All"
# Per-service permissions → the AuditData Workload values they unlock.
WORKLOAD_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "AuditLogsQuery-Exchange.Read.All": ("Exchange",),
    "AuditLogsQuery-SharePoint.Read.All": ("SharePoint",),
    "AuditLogsQuery-OneDrive.Read.All": ("OneDrive",),
    "AuditLogsQuery-Entra.Read.All": ("AzureActiveDirectory",),
    "AuditLogsQuery-CRM.Read.All": ("CRM",),
    "AuditLogsQuery-Endpoint.Read.All": ("Endpoint",),
}
_LIST_FILTERS = ("operationFilters", "recordTypeFilters", "userPrincipalNameFilters", "ipAddressFilters",
                 "objectIdFilters", "serviceFilters", "administrativeUnitIdFilters")


@dataclass
class SimAuditQuery:
    query_id: str
    caller: str
    body: dict[str, Any]
    created: float
    positions: list[int]
    exceeded: bool
    final: str = "succeeded"  # succeeded | failed | cancelled (from a fault)
    duration_s: float = 0.0


@dataclass
class AuditQueryService:
    """Server-side state of the audit log queries of one simulated tenant."""

    tenant: Tenant
    clock: Callable[[], float]
    not_started_s: float = 0.05  # time a query waits before it runs
    running_s: float = 0.15  # time it runs, plus ``per_record_s`` per matching record
    per_record_s: float = 0.0
    record_count_limit: int = 1_000_000
    max_concurrent: int = 50
    daily_submissions: int = 200
    link_ttl_s: float = 600.0
    versions: tuple[str, ...] = ("v1.0", "beta")
    submitted: list[float] = field(default_factory=list)
    queries: dict[str, SimAuditQuery] = field(default_factory=dict)
    links: dict[str, tuple[str, int, int, float]] = field(default_factory=dict)
    created: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, q: SimAuditQuery) -> str:
        age = self.clock() - q.created
        if age < self.not_started_s:
            return "notStarted"
        if age < self.not_started_s + q.duration_s:
            return "running"
        return q.final

    def running(self) -> int:
        """Queued or running queries of the tenant (the limit is per tenant)."""
        return sum(1 for q in self.queries.values() if self.status(q) in ("notStarted", "running"))

    def quota_wait(self) -> float:
        """Seconds until another submission fits the rolling 24-hour quota (0 when it fits now)."""
        now = self.clock()
        recent = [t for t in self.submitted if now - t < 86_400]
        if len(recent) < self.daily_submissions:
            return 0.0
        return max(1.0, 86_400 - (now - min(recent)))

    def create(self, caller: str, body: dict[str, Any], workloads: tuple[str, ...] | None, final: str) -> SimAuditQuery:
        start = _parse(body["filterStartDateTime"])
        end = _parse(body["filterEndDateTime"])
        positions = self.tenant.select(
            start=start, end=end,
            operations=body.get("operationFilters") or None,
            record_types=body.get("recordTypeFilters") or None,
            user_ids=body.get("userPrincipalNameFilters") or None,
            free_text=body.get("keywordFilter") or None,
            ip_addresses=body.get("ipAddressFilters") or None,
            object_ids=body.get("objectIdFilters") or None,
        )
        services = {s.lower() for s in body.get("serviceFilters") or []}
        units = set(body.get("administrativeUnitIdFilters") or [])
        if services or units or workloads is not None:
            allowed = {w.lower() for w in workloads} if workloads is not None else None
            kept = []
            for pos, text in zip(positions, self.tenant.store.texts(positions), strict=True):
                record = json.loads(text)
                workload = str(record.get("Workload", "")).lower()
                if services and workload not in services:
                    continue
                if allowed is not None and workload not in allowed:
                    continue
                if units and not units & set(record.get("AdministrativeUnits") or []):
                    continue
                kept.append(pos)
            positions = kept
        exceeded = len(positions) > self.record_count_limit
        if exceeded:
            positions = sorted(random.Random(len(positions)).sample(positions, self.record_count_limit))
        query = SimAuditQuery(str(uuid.uuid4()), caller, body, self.clock(), positions, exceeded, final,
                              self.running_s + self.per_record_s * len(positions))
        with self._lock:
            self.queries[query.query_id] = query
            self.created += 1
            self.submitted.append(query.created)
        return query

    def describe(self, q: SimAuditQuery) -> dict[str, Any]:
        status = self.status(q)
        doc: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.security.auditLogQuery",
            "id": q.query_id,
            "displayName": q.body.get("displayName"),
            "filterStartDateTime": q.body.get("filterStartDateTime"),
            "filterEndDateTime": q.body.get("filterEndDateTime"),
            "keywordFilter": q.body.get("keywordFilter"),
            "status": status,
            "recordCountLimit": self.record_count_limit,
        }
        for name in _LIST_FILTERS:
            doc[name] = list(q.body.get(name) or [])
        if status == "succeeded":
            count = len(q.positions)
            # "can be higher or lower than recordCountLimit due to distributed counting"
            doc["approximateReturnedRecordCount"] = count - 3 if q.exceeded else count
            doc["isRecordCountLimitExceeded"] = q.exceeded
        return doc

    def page(self, q: SimAuditQuery, offset: int, size: int) -> list[dict[str, Any]]:
        positions = q.positions[offset : offset + size]
        rate = self.tenant.config.duplicate_rate
        if rate and offset:
            # "inconsistent record counts across paging have been reported" (exchange-platform-facts.md §8.1):
            # repeat some records of the previous page
            positions = q.positions[max(0, offset - int(size * rate)) : offset] + positions
        return [_record(json.loads(t), self.tenant.tenant_id) for t in self.tenant.store.texts(positions)]

    def link(self, q: SimAuditQuery, offset: int, size: int) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self.links[token] = (q.query_id, offset, size, self.clock())
        return token

    def take_link(self, token: str) -> tuple[str, int, int] | None:
        with self._lock:
            found = self.links.pop(token, None)
        if found is None or self.clock() - found[3] > self.link_ttl_s:
            return None
        return found[0], found[1], found[2]


def _parse(text: Any) -> datetime:
    value = str(text).strip()
    parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    if parsed.tzinfo is None:
        raise ValueError("a date without a time zone")
    return parsed


def _record(audit: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """An auditLogRecord as the list-records page shows it, around the AuditData object."""
    code = audit.get("RecordType")
    name = RECORD_TYPE_NAMES.get(int(code)) if isinstance(code, int) else None
    return {
        "@odata.type": "#microsoft.graph.security.auditLogRecord",
        "id": audit.get("Id"),
        "createdDateTime": (str(audit.get("CreationTime")) + "Z") if audit.get("CreationTime") else None,
        "auditLogRecordType": (name[:1].lower() + name[1:]) if name else str(code),
        "operation": audit.get("Operation"),
        "organizationId": tenant_id,
        "userType": "regular",
        "userId": audit.get("UserId"),
        "service": audit.get("Workload"),
        "objectId": audit.get("ObjectId"),
        "userPrincipalName": audit.get("UserId"),
        "clientIp": audit.get("ClientIP") or audit.get("ClientIPAddress"),
        "administrativeUnits": [],
        "auditData": {"@odata.type": "#microsoft.graph.security.defaultAuditData", **audit},
    }


class AuditRoutes(RestHandlerBase):
    """``POST/GET /v1.0/security/auditLog/queries[/{id}[/records]]``."""

    def _audit_error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"code": code, "message": message}}, headers=headers,
                   content_type="application/json")

    def _audit_access(self, claims: dict[str, Any]) -> tuple[str, tuple[str, ...] | None] | None:
        """(caller, workloads or None for all), or None after answering 403 as Graph does."""
        granted = {str(r) for r in claims.get("roles") or []} | set(str(claims.get("scp") or "").split())
        caller = str(claims.get("oid") or claims.get("appid"))
        denied = self.sim.audit_denied(claims) if hasattr(self.sim, "audit_denied") else None
        if AUDIT_QUERY_PERMISSION not in granted and not granted & set(WORKLOAD_PERMISSIONS):
            self._audit_error(403, "Forbidden", "Missing role permissions on the request. API requires one of '"
                              + ", ".join([AUDIT_QUERY_PERMISSION, *WORKLOAD_PERMISSIONS]) + "'.")
            return None
        if denied:
            self._audit_error(403, "Forbidden", denied)
            return None
        if AUDIT_QUERY_PERMISSION in granted:
            return caller, None
        return caller, tuple(w for p, ws in WORKLOAD_PERMISSIONS.items() if p in granted for w in ws)

    def _audit(self, version: str, method: str, rest: list[str], query: dict[str, str], body: bytes) -> None:
        sim = self.sim
        service: AuditQueryService = sim.audit
        if version not in service.versions:
            return self._audit_error(400, "BadRequest", "Resource not found for the segment 'auditLog'.")
        if service.tenant.config.latency_s:  # the same per-call latency model as the cmdlets (benchmarks)
            time.sleep(service.tenant.config.latency_s)
        endpoint = {0: "audit-create", 1: "audit-status"}.get(len(rest), "audit-records")
        fault = sim.faults.take(endpoint, self.path)
        if fault is not None and fault.kind is FaultKind.THROTTLE:
            return self._audit_error(429, "TooManyRequests", "Too many requests.",
                                     headers={"Retry-After": fault.retry_after})
        if fault is not None and fault.kind is FaultKind.UNAVAILABLE:
            return self._audit_error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        claims = self._auth("graph")
        if claims is None:
            return
        access = self._audit_access(claims)
        if access is None:
            return
        caller, workloads = access
        if method == "POST" and not rest:
            try:
                doc = json.loads(body)
                if not isinstance(doc, dict) or not doc.get("filterStartDateTime") or not doc.get("filterEndDateTime"):
                    raise ValueError("filterStartDateTime and filterEndDateTime are required")
                for name in _LIST_FILTERS:
                    if doc.get(name) is not None and not isinstance(doc[name], list):
                        raise ValueError(f"{name} must be a collection")
                _parse(doc["filterStartDateTime"])
                _parse(doc["filterEndDateTime"])
            except (ValueError, TypeError) as exc:
                return self._audit_error(400, "BadRequest", f"Invalid request: {exc}")
            wait_s = service.quota_wait()
            if wait_s:
                return self._audit_error(
                    429, "TooManyRequests", f"The tenant has submitted {service.daily_submissions} audit log queries "
                    "in the last 24 hours. Retry after some time.", headers={"Retry-After": f"{wait_s:.0f}"})
            if service.running() >= service.max_concurrent:
                return self._audit_error(
                    429, "TooManyRequests",
                    f"The maximum number of queued or running audit log queries ({service.max_concurrent}) has been "
                    "reached. Retry after some time.", headers={"Retry-After": "0.5"})
            final = "succeeded"
            if fault is not None and fault.kind in (FaultKind.QUERY_FAILED, FaultKind.QUERY_CANCELLED):
                final = "failed" if fault.kind is FaultKind.QUERY_FAILED else "cancelled"
            created = service.create(caller, doc, workloads, final)
            return self._send(201, {"@odata.context": f"{self._origin()}/v1.0/$metadata#security/auditLog/queries"
                                    "/$entity", **service.describe(created)}, content_type="application/json")
        if method != "GET" or len(rest) > 2 or (len(rest) == 2 and rest[1].lower() != "records"):
            return self._audit_error(404, "UnknownError", f"No route for {method} {self.path}")
        q = service.queries.get(rest[0]) if rest else None
        if not rest:  # list queries
            mine = [service.describe(x) for x in service.queries.values() if x.caller == caller]
            return self._send(200, {"value": mine}, content_type="application/json")
        if q is None or q.caller != caller:
            return self._audit_error(404, "NotFound", f"The audit log query '{rest[0]}' was not found.")
        if len(rest) == 1:
            return self._send(200, service.describe(q), content_type="application/json")
        if service.status(q) != "succeeded":
            return self._audit_error(400, "BadRequest", f"The query is {service.status(q)}; records are available "
                                     "once it has succeeded.")
        token = query.get("$skiptoken")
        if token is not None:
            found = None if fault is not None and fault.kind is FaultKind.EXPIRED_NEXT_LINK else service.take_link(
                token)
            if found is None or found[0] != q.query_id:
                return self._audit_error(400, "BadRequest", "The skip token is invalid or has expired.")
            _, offset, size = found
        else:
            offset, size = 0, min(int(query.get("$top") or 150), 1000)
        page: dict[str, Any] = {"@odata.context": f"{self._origin()}/v1.0/$metadata#security/auditLog/queries"
                                f"('{q.query_id}')/records", "value": service.page(q, offset, size)}
        if offset + size < len(q.positions):
            nxt = service.link(q, offset + size, size)
            page["@odata.nextLink"] = (f"{self._origin()}/v1.0/security/auditLog/queries/{q.query_id}/records"
                                      f"?$top={size}&$skiptoken={nxt}")
        self._send(200, page, content_type="application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8")
