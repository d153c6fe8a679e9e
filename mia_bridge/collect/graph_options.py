"""Options of the Graph audit log query source (``--source graph-audit``), kept apart so the engine can name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOURCES = ("ual", "graph-audit")
# "Security audit log query service limits" (https://learn.microsoft.com/graph/throttling-limits
# #security-audit-log-query-service-limits, via ../shared/reference/exchange-platform-facts.md §8.1):
# at least 50 queued or running queries and 200 submissions a day per tenant, at least 1,000,000
# records per query. Windows run at most this many queries at once.
MAX_CONCURRENT_QUERIES = 50


@dataclass
class GraphAuditOptions:
    """Polling, retry and graph-only filters. Poll waits grow from ``poll_initial_s`` by ``poll_factor``."""

    poll_initial_s: float = 2.0
    poll_factor: float = 1.5
    poll_max_s: float = 60.0
    poll_timeout_s: float = 6 * 3600.0  # large searches take hours in Purview
    max_attempts: int = 3  # queries per window that may end failed/cancelled before giving up
    link_restarts: int = 3  # times a window's records are paged again after an expired nextLink
    page_size: int = 1000
    service_filters: tuple[str, ...] = ()
    administrative_unit_ids: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "poll_initial_s": self.poll_initial_s,
            "poll_factor": self.poll_factor,
            "poll_max_s": self.poll_max_s,
            "poll_timeout_s": self.poll_timeout_s,
            "max_attempts": self.max_attempts,
            "page_size": self.page_size,
            "service_filters": list(self.service_filters),
            "administrative_unit_ids": list(self.administrative_unit_ids),
        }

    def filters(self) -> dict[str, Any]:
        """The graph-only filters, for the resume header (a rerun must ask the same question)."""
        return {"service_filters": list(self.service_filters),
                "administrative_unit_ids": list(self.administrative_unit_ids)}
