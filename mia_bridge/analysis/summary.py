"""summary.json: the counts of the output contract, reconciled, plus period, conflicts and top leads.

The counts come from ``sql/summary_counts.sql`` and ``sql/summary_lists.sql``; here they are put in shape.
"""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from mia_bridge.analysis.base_tables import BaseTables


class _Period(Protocol):
    @property
    def start(self) -> Any: ...
    @property
    def end(self) -> Any: ...


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def build_summary(
    base: BaseTables,
    counts: dict[str, Any],
    lists: dict[str, list[tuple[str, int]]],
    *,
    top_leads: pd.DataFrame,  # the leads' first rows (the engine fetches no more)
    lookup: pd.DataFrame | None,
    options: _Period,
    inputs: list[dict[str, Any]],
) -> dict[str, Any]:
    unique = int(counts["records_unique"])
    in_period = int(counts["records_in_period"])
    conflicts = base.conflicts

    def values(name: str) -> list[str]:
        return [value for value, _ in lists.get(name, [])]

    summary: dict[str, Any] = {
        "records_read": base.read,
        "records_parsed": base.parsed,
        "records_quarantined": base.quarantined,
        "duplicates_removed": base.parsed - unique,
        "records_unique": unique,
        "id_conflicts": len(conflicts),
        "id_conflict_details": conflicts[:100],
        "period": {
            "start": _iso(options.start),
            "end": _iso(options.end),
            "records_in_period": in_period,
            "records_outside_period": unique - in_period,
            "first_record": _iso(counts["first_record"]) if unique else None,
            "last_record": _iso(counts["last_record"]) if unique else None,
        },
        "operations": {value: n for value, n in lists.get("operations", [])},
        "mail_items_accessed": {
            "events": int(counts["events"]),
            "bind_events": int(counts["bind_events"]),
            "sync_events": int(counts["sync_events"]),
            "other_access_type_events": int(counts["other_access_type_events"]),
            "throttled_events": int(counts["throttled_events"]),
            "items_accessed": int(counts["items_accessed"]),
            "unique_internet_message_ids": int(counts["unique_internet_message_ids"]),
            "synced_folders": int(counts["synced_folders"]),
            "throttled_windows": int(counts["throttled_windows"]),
            "mailboxes": values("mailboxes"),
            "sessions": int(counts["sessions"]),
            "client_ips": values("client_ips"),
            "app_ids": values("app_ids"),
            "contexts": int(counts["contexts"]),
            "events_with_message_ids_lost": int(counts["events_with_message_ids_lost"]),
        },
        "inputs": inputs,
        "top_leads": [
            {"rank": int(r["rank"]), "score": int(r["score"]), "mailbox": r["mailbox"], "client_ip": r["client_ip"],
             "app_id": r["app_id"], "reasons": r["reasons"]}
            for r in top_leads.head(10).to_dict("records")
        ],
    }
    if lookup is not None:
        summary["message_lookup"] = {k: int(v) for k, v in lookup["status"].value_counts().items()}
    return summary
