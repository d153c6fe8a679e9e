"""Microsoft Graph audit log query API (Purview "Audit Search"): create a query, poll it, page its records.

Microsoft's documentation (cited where each fact is used):
- auditLogQuery resource: https://learn.microsoft.com/graph/api/resources/security-auditlogquery
  (filterStartDateTime, filterEndDateTime, operationFilters, recordTypeFilters, keywordFilter,
  serviceFilters, objectIdFilters, ipAddressFilters, userPrincipalNameFilters,
  administrativeUnitIdFilters, status, recordCountLimit, isRecordCountLimitExceeded,
  approximateReturnedRecordCount);
- create: https://learn.microsoft.com/graph/api/security-auditcoreroot-post-auditlogqueries
  (``POST /security/auditLog/queries`` → 201 with the query, status ``notStarted``);
- get: https://learn.microsoft.com/graph/api/security-auditlogquery-get (status notStarted,
  running, succeeded, failed, cancelled);
- list records: https://learn.microsoft.com/graph/api/security-auditlogquery-list-records
  (``GET /security/auditLog/queries/{id}/records``, auditLogRecord with ``auditData``, paged by
  ``@odata.nextLink``). Availability table on these pages: global service only; not US Government
  L4 (GCC High), L5 (DoD) or 21Vianet. Permissions: AuditLogsQuery.Read.All, or the per-service
  AuditLogsQuery-{Exchange,SharePoint,OneDrive,Entra,CRM,Endpoint}.Read.All, delegated or application.

The client never follows a link that is not https on the tenant's Graph host: the bearer token
goes nowhere else.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from mia_bridge.bridge.clouds import Cloud
from mia_bridge.bridge.graph import graph_error_fields
from mia_bridge.bridge.rest_auth import TokenProvider
from mia_bridge.bridge.rest_http import AuthorizedSender, RetryPolicy, body_excerpt, describe_response, parse_json
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeAuthError,
    BridgeTransportError,
    CmdletError,
    ThrottledError,
    UsageError,
)

log = logging.getLogger(__name__)

WHAT = "Graph audit log query"
LONG_WAIT = "RetryAfterBeyondPolicy"  # error_id of a ThrottledError that asked to wait too long to retry here
QUERIES_PATH = "/security/auditLog/queries"
# v1.0 first; Microsoft moved the API back to beta in 2025 (MC1052169) and documents v1.0 again in
# 2026, so a tenant answering v1.0 with "Resource not found for the segment" is asked on beta.
VERSIONS = ("v1.0", "beta")
STATUSES = ("notStarted", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Clouds where the documentation's availability table has a tick (GCC tenants use the global service).
AVAILABLE_CLOUDS = frozenset({"worldwide", "gcc"})
ALL_WORKLOADS_PERMISSION = "AuditLogsQuery.Read.All"
WORKLOAD_PERMISSIONS = {
    "AuditLogsQuery-Exchange.Read.All": "Exchange",
    "AuditLogsQuery-SharePoint.Read.All": "SharePoint",
    "AuditLogsQuery-OneDrive.Read.All": "OneDrive",
    "AuditLogsQuery-Entra.Read.All": "Microsoft Entra",
    "AuditLogsQuery-CRM.Read.All": "Dynamics CRM",
    "AuditLogsQuery-Endpoint.Read.All": "Endpoint DLP",
}
PERMISSION_HINT = (
    "the app (application permission) or the signed-in user (delegated permission) needs Microsoft Graph "
    f"{ALL_WORKLOADS_PERMISSION} with admin consent; a signed-in user also needs a Purview role that can search "
    "the audit log (Audit Logs or View-Only Audit Logs, e.g. through Compliance Administrator)"
)


def check_cloud(cloud: Cloud) -> None:
    """Refuse clouds where the API does not exist (rather than sending a query that can only fail)."""
    base = cloud.name.split("@", 1)[0]
    if base not in AVAILABLE_CLOUDS:
        raise UsageError(
            f"--source graph-audit: Microsoft documents the Graph audit log query API for the global service only, "
            f"not for the {base} cloud",
            hint="use --source ual (Search-UnifiedAuditLog), which exists in this cloud",
        )


def token_permissions(token: str) -> set[str]:
    """The ``roles`` (app-only) and ``scp`` (delegated) claims of an access token, unverified.

    Only used to warn; the service decides. A token that is not a readable JWT gives an empty set."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return set()
    if not isinstance(claims, dict):
        return set()
    found = {str(r) for r in claims.get("roles") or [] if isinstance(r, str)}
    found.update(str(claims.get("scp") or "").split())
    return found


def workload_warning(permissions: set[str]) -> str | None:
    """A warning when the token can only see some services' records (the service filters silently)."""
    if not permissions or ALL_WORKLOADS_PERMISSION in permissions:
        return None
    partial = sorted(WORKLOAD_PERMISSIONS[p] for p in permissions if p in WORKLOAD_PERMISSIONS)
    if not partial:
        return None
    return (
        f"the token carries only per-service audit permissions ({', '.join(partial)}): records of other services "
        f"are not returned by the Graph audit log query API; grant {ALL_WORKLOADS_PERMISSION} for all of them"
    )


@dataclass
class QueryStatus:
    """One GET of a query: its status and the record-count fields the service reports."""

    query_id: str
    status: str
    record_count_limit: int | None = None
    limit_exceeded: bool | None = None
    approximate_count: int | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> QueryStatus:
        def _int(value: Any) -> int | None:
            try:
                return int(value) if value is not None else None
            except (TypeError, ValueError):
                return None

        exceeded = doc.get("isRecordCountLimitExceeded")
        return cls(
            query_id=str(doc.get("id") or ""),
            status=str(doc.get("status") or ""),
            record_count_limit=_int(doc.get("recordCountLimit")),
            limit_exceeded=exceeded if isinstance(exceeded, bool) else None,
            approximate_count=_int(doc.get("approximateReturnedRecordCount")),
        )

    @property
    def truncated(self) -> bool:
        """True when the query may hold fewer records than match: split its window.

        ``approximateReturnedRecordCount`` "can be higher or lower than recordCountLimit due to
        distributed counting" (resource page), so reaching the limit counts as exceeding it."""
        if self.limit_exceeded:
            return True
        return bool(self.record_count_limit and self.approximate_count is not None
                    and self.approximate_count >= self.record_count_limit)


class _LongWait(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class RecordsLinkExpired(Exception):
    """A follow-up records page was refused (the ``@odata.nextLink`` expired); page again from the start."""


class AuditLogQueryClient:
    """Create, poll and read audit log queries on one tenant's Graph host."""

    def __init__(self, http: httpx.Client, cloud: Cloud, tokens: TokenProvider, retry: RetryPolicy) -> None:
        check_cloud(cloud)
        self.cloud = cloud
        self.version = VERSIONS[0]
        self._host = urlsplit(cloud.graph_url).netloc
        self._tokens = tokens
        self._retry = retry
        # A Retry-After at or beyond the policy's longest wait (the daily query quota answers in hours) is
        # not slept through five times: the run stops at once and says so (_sleep raises _LongWait).
        self._sender = AuthorizedSender(http, tokens, replace(retry, sleep=self._sleep), allow_redirect=self._allowed)
        self.calls = 0

    @property
    def retries(self) -> int:
        return self._sender.retries

    @property
    def base(self) -> str:
        return f"{self.cloud.graph_url}/{self.version}{QUERIES_PATH}"

    def _unknown_segment(self, response: httpx.Response) -> bool:
        """Graph's answer when this version does not serve the API: move to the next version."""
        if response.status_code not in (400, 404) or self.version == VERSIONS[-1]:
            return False
        doc = parse_json(response)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and "segment" in str(err.get("message", "")).lower():
            log.info("%s: Graph %s does not serve the API; using %s", WHAT, self.version, VERSIONS[-1])
            self.version = VERSIONS[-1]
            return True
        return False

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme == "https" and parts.netloc == self._host

    def _sleep(self, seconds: float) -> None:
        if seconds >= self._retry.max_wait_s:
            raise _LongWait(seconds)
        self._retry.sleep(seconds)

    def permissions(self) -> set[str]:
        return token_permissions(self._tokens.token(self.cloud.graph_scope).reveal())

    def _send(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        self.calls += 1
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._sender.send(method, url, scope=self.cloud.graph_scope, headers=headers, content=content,
                                     what=WHAT)
        except _LongWait as wait:
            raise ThrottledError(
                f"{WHAT}: Microsoft Graph asks to wait {wait.seconds:.0f} s or more before the next request "
                "(the tenant's 200 queries a day, or heavy throttling)",
                cmdlet=WHAT, error_id=LONG_WAIT,
                hint="rerun the same command later: what was collected is kept and the case resumes",
            ) from None

    def create(self, body: dict[str, Any]) -> QueryStatus:
        """POST the query; the service answers 201 with the new query (status notStarted)."""
        response = self._send("POST", self.base, json.dumps(body).encode())
        if self._unknown_segment(response):
            response = self._send("POST", self.base, json.dumps(body).encode())
        if response.status_code not in (200, 201):
            raise self._error(response)
        doc = parse_json(response)
        if not isinstance(doc, dict) or not doc.get("id"):
            raise BridgeTransportError(
                f"{WHAT}: create answered {describe_response(response)} without a query id: {body_excerpt(response)}"
            )
        return QueryStatus.from_json(doc)

    def get(self, query_id: str) -> QueryStatus | None:
        """The query's current state; None when the service no longer knows the id (expired or deleted)."""
        response = self._send("GET", f"{self.base}/{quote(query_id, safe='')}")
        if self._unknown_segment(response):
            response = self._send("GET", f"{self.base}/{quote(query_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response)
        doc = parse_json(response)
        if not isinstance(doc, dict):
            raise BridgeTransportError(
                f"{WHAT}: {describe_response(response)} is not a query: {body_excerpt(response)}"
            )
        status = QueryStatus.from_json(doc)
        if status.status not in STATUSES:
            # An unknown status is neither done nor failed: say so instead of guessing.
            raise BridgeTransportError(f"{WHAT}: query {query_id} has an unknown status {status.status!r}")
        return status

    def probe(self) -> None:
        """List at most one query: proves the permission without creating one (doctor)."""
        response = self._send("GET", f"{self.base}?$top=1")
        if self._unknown_segment(response):
            response = self._send("GET", f"{self.base}?$top=1")
        if response.status_code != 200:
            raise self._error(response)

    def record_pages(self, query_id: str, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages of auditLogRecord objects; raises RecordsLinkExpired when a follow-up link is refused."""
        url: str = f"{self.base}/{quote(query_id, safe='')}/records?$top={page_size}"
        first = True
        while True:
            response = self._send("GET", url)
            if response.status_code != 200:
                if not first and response.status_code in (400, 404, 410):
                    raise RecordsLinkExpired(f"HTTP {response.status_code}")
                raise self._error(response)
            doc = parse_json(response)
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
                raise BridgeTransportError(
                    f"{WHAT}: records answered {describe_response(response)} with a body that is not a collection: "
                    f"{body_excerpt(response)}"
                )
            yield [v for v in doc["value"] if isinstance(v, dict)]
            link = doc.get("@odata.nextLink")
            if not link:
                return
            target = urljoin(url, str(link))
            if not self._allowed(target):
                raise BridgeTransportError(
                    f"{WHAT}: the next-page link points to {urlsplit(target).scheme}://{urlsplit(target).netloc}, "
                    f"not https on {self._host}; the token is not sent there"
                )
            url, first = target, False

    def _error(self, response: httpx.Response) -> Exception:
        status, code, message = graph_error_fields(response, WHAT)
        if status == 401:
            return BridgeAuthError(
                f"{WHAT}: Microsoft Graph refused the token (HTTP 401): {message or code or 'no reason given'}",
                hint=PERMISSION_HINT,
            )
        if status == 403:
            return AccessDeniedError(
                f"Microsoft Graph denied the audit log query (HTTP 403): {message or code or 'no body'}",
                cmdlet=WHAT, category="PermissionDenied", error_id=code or "Forbidden", hint=PERMISSION_HINT,
            )
        if status == 429:
            return ThrottledError(
                f"{WHAT}: Microsoft Graph is still throttling after retries: {message or code}",
                cmdlet=WHAT, error_id=code or "TooManyRequests",
                hint="too many audit log queries may be running for this tenant; rerun later (the case resumes)",
            )
        if status >= 500:
            return BridgeTransportError(f"{WHAT}: Graph answered {describe_response(response)}: {message}")
        return CmdletError(f"{WHAT}: [{code or status}] {message or 'no message'}", cmdlet=WHAT,
                           category="InvalidArgument" if status == 400 else "InvalidOperation",
                           error_id=code or str(status))
