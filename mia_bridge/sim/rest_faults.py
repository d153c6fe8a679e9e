"""Fault injection for the simulated REST endpoints: one-shot faults queued by tests and benchmarks.

Each ``RestFault`` fires on the next ``times`` requests that match its ``endpoint`` (``invoke``,
``graph``, ``token``, ``nextlink``) and, optionally, its cmdlet name or Graph path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    THROTTLE = "throttle"  # 429 with Retry-After (decimal seconds) and a JSON error
    FORBIDDEN_BODYLESS = "forbidden_bodyless"  # 403, empty body, x-ms-diagnostics header
    CMDLET_ERROR = "cmdlet_error"  # 400 with the module's error shape (ManagementObjectNotFound)
    SERVER_BUSY = "server_busy"  # 400 naming ServerBusyException (retryable)
    UNAVAILABLE = "unavailable"  # 503 with a JSON error
    GATEWAY_TIMEOUT = "gateway_timeout"  # 504, empty body
    BAD_GATEWAY_HTML = "bad_gateway_html"  # 502 with an HTML page (non-JSON)
    HTML_200 = "html_200"  # 200 whose body is not JSON (a captive proxy, a login page)
    EXPIRED_NEXT_LINK = "expired_next_link"  # the next nextLink follow-up is refused as expired
    TOKEN_REJECTED = "token_rejected"  # 401 with WWW-Authenticate, as for an expired/revoked token
    ADMINAPI_ERRORS = "adminapi_errors"  # 200 carrying @adminapi.errors (non-terminating errors)
    QUERY_FAILED = "query_failed"  # endpoint audit-create: the Graph audit log query ends "failed"
    QUERY_CANCELLED = "query_cancelled"  # endpoint audit-create: it ends "cancelled"


@dataclass
class RestFault:
    kind: FaultKind
    endpoint: str = "invoke"  # invoke | nextlink | graph | token | audit-create | audit-status | audit-records
    match: str | None = None  # cmdlet name (case-insensitive) or Graph path fragment
    times: int = 1
    retry_after: str = "0.05"  # seconds, as the server writes it


class FaultPlan:
    """Thread-safe queue of pending faults."""

    def __init__(self) -> None:
        self._faults: list[RestFault] = []
        self._lock = threading.Lock()
        self.fired: list[FaultKind] = []

    def add(self, fault: RestFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str, name: str = "") -> RestFault | None:
        """The first pending fault for this request, consuming one of its ``times``."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint != endpoint or fault.times <= 0:
                    continue
                if fault.match is not None and fault.match.lower() not in name.lower():
                    continue
                fault.times -= 1
                self.fired.append(fault.kind)
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None
