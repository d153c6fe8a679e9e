"""Audit-log collection: every record despite the 5,000/50,000 caps, resumable, into a hashed case."""

from mia_bridge.collect.engine import (
    CollectionResult,
    CollectOptions,
    Gap,
    QueryCounts,
    QueryResult,
    check_ingestion,
    collect,
)
from mia_bridge.collect.query import AuditQuery
from mia_bridge.collect.retry import RetryPolicy
from mia_bridge.collect.windows import SessionPolicy

__all__ = [
    "AuditQuery",
    "CollectOptions",
    "CollectionResult",
    "Gap",
    "QueryCounts",
    "QueryResult",
    "RetryPolicy",
    "SessionPolicy",
    "check_ingestion",
    "collect",
]
