"""De-duplication across inputs and formats, and same-Id conflicts.

A duplicate has the same ``Id`` and the same parsed content (``fingerprint``), so one record read from a
Sentinel export and from a raw API dump matches. A copy whose message ids were lost in its export
(Defender's ``System.Object[]``) duplicates a complete copy with the same Id and core content: the
complete one is kept. The same Id with different content is a conflict: both kept, both reported.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def deduplicate(records: pd.DataFrame) -> tuple[pd.Series, list[dict[str, Any]]]:
    """``(keep mask, id_conflicts)`` for the records table (index 0..n-1)."""
    if records.empty:
        return pd.Series([], dtype=bool), []
    rid = records["record_id"].fillna("")
    exact = pd.DataFrame({"rid": rid, "fp": records["fingerprint"]}).duplicated(keep="first")
    keep = ~exact
    lost = records["message_ids_lost"].fillna(False).astype(bool)
    has_id = rid != ""
    if bool((lost & keep & has_id).any()):
        complete = records.loc[keep & ~lost & has_id, ["record_id", "core_fingerprint"]]
        pairs = set(zip(complete["record_id"], complete["core_fingerprint"], strict=True))
        candidates = records.index[lost & keep & has_id]
        degraded = [
            idx for idx in candidates
            if (records.at[idx, "record_id"], records.at[idx, "core_fingerprint"]) in pairs
        ]
        keep.loc[degraded] = False
    kept = records.loc[keep & has_id, ["record_id", "fingerprint", "source_file", "source_line"]]
    counts = kept.groupby("record_id")["fingerprint"].nunique()
    conflict_ids = counts[counts > 1].index
    conflicts: list[dict[str, Any]] = []
    for record_id in conflict_ids:
        rows = kept[kept["record_id"] == record_id]
        conflicts.append({
            "record_id": record_id,
            "versions": int(rows["fingerprint"].nunique()),
            "where": [f"{f}:{ln}" for f, ln in zip(rows["source_file"], rows["source_line"], strict=True)],
        })
    return keep, conflicts
