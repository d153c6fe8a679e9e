"""summary.json: the counts of the output contract, reconciled, plus period, conflicts and top leads."""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from mia_bridge.analysis.mailitemsaccessed import BindItems


class _Period(Protocol):
    @property
    def start(self) -> Any: ...
    @property
    def end(self) -> Any: ...


def _distinct(series: pd.Series) -> list[str]:
    return sorted({str(v) for v in series.dropna().unique() if str(v)})


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def build_summary(
    *,
    read: int,
    parsed: int,
    quarantined: int,
    unique: pd.DataFrame,
    period: pd.DataFrame,
    events: pd.DataFrame,
    items: BindItems,
    synced: pd.DataFrame,
    windows: pd.DataFrame,
    contexts: pd.DataFrame,
    leads: pd.DataFrame,
    conflicts: list[dict[str, Any]],
    options: _Period,
    inputs: list[dict[str, Any]],
    lookup: pd.DataFrame | None,
) -> dict[str, Any]:
    access = events["mail_access_type"]
    lost = events["message_ids_lost"].fillna(False).astype(bool)
    summary: dict[str, Any] = {
        "records_read": read,
        "records_parsed": parsed,
        "records_quarantined": quarantined,
        "duplicates_removed": parsed - len(unique),
        "records_unique": len(unique),
        "id_conflicts": len(conflicts),
        "id_conflict_details": conflicts[:100],
        "period": {
            "start": _iso(options.start),
            "end": _iso(options.end),
            "records_in_period": len(period),
            "records_outside_period": len(unique) - len(period),
            "first_record": _iso(unique["creation_time"].min()) if len(unique) else None,
            "last_record": _iso(unique["creation_time"].max()) if len(unique) else None,
        },
        "operations": {str(k): int(v) for k, v in unique["operation"].value_counts().sort_index().items()},
        "mail_items_accessed": {
            "events": len(events),
            "bind_events": int((access == "Bind").sum()),
            "sync_events": int((access == "Sync").sum()),
            "other_access_type_events": int((~access.isin(["Bind", "Sync"])).sum()),
            "throttled_events": int(events["is_throttled"].fillna(False).astype(bool).sum()),
            "items_accessed": len(items),
            "unique_internet_message_ids": items.message_id_codes()[1],
            "synced_folders": int(synced[["mailbox", "folder_path"]].drop_duplicates().shape[0]),
            "throttled_windows": len(windows),
            "mailboxes": _distinct(events["mailbox"]),
            "sessions": int(events["session_id"].dropna().loc[lambda s: s != ""].nunique()),
            "client_ips": _distinct(events["client_ip"]),
            "app_ids": _distinct(events["app_id"]),
            "contexts": len(contexts),
            "events_with_message_ids_lost": int(lost.sum()),
        },
        "inputs": inputs,
        "top_leads": [
            {"rank": int(r["rank"]), "score": int(r["score"]), "mailbox": r["mailbox"], "client_ip": r["client_ip"],
             "app_id": r["app_id"], "reasons": r["reasons"]}
            for r in leads.head(10).to_dict("records")
        ],
    }
    if lookup is not None:
        summary["message_lookup"] = {k: int(v) for k, v in lookup["status"].value_counts().items()}
    return summary
