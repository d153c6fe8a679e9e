"""De-duplication across inputs and formats, and same-Id conflicts.

A duplicate has the same ``Id`` and the same parsed content (``fingerprint``), so one record read from a
Sentinel export and from a raw API dump matches. The content compared is what every format keeps: time
(to the second), operation, user, client IP, session, app, access type, throttling, the folder paths and
the message ids (as multisets). Records without an Id are compared on their whole parsed content.
A copy whose message ids were lost in its export (Defender's ``System.Object[]``) duplicates a complete
copy with the same Id and core content: the complete one is kept. The same Id with different content is
a conflict: both kept, both reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def _per_record_sum(n: int, rec: pd.Series, values: pd.Series) -> np.ndarray:
    """Order-independent hash of each record's values (a multiset): sum of value hashes, wrapping."""
    total = np.zeros(n, dtype=np.uint64)
    if len(rec):
        hashes = pd.util.hash_pandas_object(values.fillna("").astype(str), index=False).to_numpy(dtype=np.uint64)
        np.add.at(total, rec.to_numpy(dtype=np.int64), hashes)
    return total


def _per_record_code_sum(n: int, rec: pd.Series, codes: np.ndarray, uniques: Any) -> np.ndarray:
    """``_per_record_sum`` of values given factorised (``codes`` into ``uniques``, -1: missing): each
    distinct value used is hashed once."""
    total = np.zeros(n, dtype=np.uint64)
    if len(rec):
        used, inverse = np.unique(codes, return_inverse=True)
        texts = pd.concat([pd.Series([""] * int((used < 0).sum()), dtype="string"),
                           pd.Series(uniques.take(used[used >= 0])).astype("string")], ignore_index=True)
        hashes = pd.util.hash_pandas_object(texts.astype(str), index=False).to_numpy(dtype=np.uint64)
        np.add.at(total, rec.to_numpy(dtype=np.int64), hashes[inverse])
    return total


def fingerprints(
    records: pd.DataFrame, folders: pd.DataFrame, items: pd.DataFrame, message_ids: tuple[np.ndarray, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """``(core, full)`` uint64 fingerprints per record; ``full`` adds the message ids to ``core``.

    ``message_ids``: ``pd.factorize`` of the message ids, aligned with ``items`` (which needs only ``rec``).
    """
    n = len(records)
    seconds = records["creation_time"].dt.floor("s").astype("int64") // 1  # one integer per second
    core = pd.DataFrame({
        "rid": records["record_id"].fillna("").astype(str),
        "t": seconds,
        "op": records["operation"].fillna("").astype(str).str.lower(),
        "user": records["user_id"].fillna("").astype(str).str.lower(),
        "ip": records["client_ip"].fillna("").astype(str),
        "session": records["session_id"].fillna("").astype(str),
        "app": records["app_id"].fillna("").astype(str),
        "access": records["mail_access_type"].fillna("").astype(str),
        "throttled": records["is_throttled"].astype("Int8").fillna(-1).astype("int64"),
        "content": records["content_hash"].fillna("").astype(str),
        "folders": _per_record_sum(n, folders["rec"], folders["folder_path"].fillna("").astype(str).str.lower()),
    })
    core_fp = pd.util.hash_pandas_object(core, index=False).to_numpy(dtype=np.uint64)
    item_sums = _per_record_code_sum(n, items["rec"], *message_ids)
    full = pd.DataFrame({"core": core_fp, "items": item_sums})
    return core_fp, pd.util.hash_pandas_object(full, index=False).to_numpy(dtype=np.uint64)


def compared_fingerprints(
    records: pd.DataFrame, folders: pd.DataFrame, items: pd.DataFrame,
    message_ids: Callable[[], tuple[np.ndarray, Any]],
) -> tuple[pd.Series, pd.Series]:
    """``(core, full)`` fingerprints (UInt64) of the records whose Id occurs more than once; missing elsewhere.

    Only records sharing an Id are ever compared (a record without an Id shares the empty one), so on the
    common input, every Id once, nothing is hashed: hashing each record's message ids cost ≈1.5 s per
    million records. ``message_ids`` gives ``pd.factorize`` of ``items["internet_message_id"]``; it is only
    called when some record is fingerprinted.
    """
    n = len(records)
    need = records["record_id"].fillna("").duplicated(keep=False).to_numpy(dtype=bool)
    core = np.zeros(n, dtype=np.uint64)
    full = np.zeros(n, dtype=np.uint64)
    if need.any():
        positions = np.flatnonzero(need)
        remap = np.full(n, -1, dtype=np.int64)
        remap[positions] = np.arange(len(positions))
        folder_rec = remap[folders["rec"].to_numpy(dtype=np.int64)]
        item_rec = remap[items["rec"].to_numpy(dtype=np.int64)]
        folder_rows, item_rows = folder_rec >= 0, item_rec >= 0
        codes, uniques = message_ids()
        core[positions], full[positions] = fingerprints(
            records.iloc[positions].reset_index(drop=True),
            folders.loc[folder_rows].assign(rec=folder_rec[folder_rows]).reset_index(drop=True),
            pd.DataFrame({"rec": item_rec[item_rows]}),
            (codes[item_rows], uniques),
        )
    missing = ~need
    return (pd.Series(pd.arrays.IntegerArray(core, missing), index=records.index),
            pd.Series(pd.arrays.IntegerArray(full, missing), index=records.index))


def deduplicate(records: pd.DataFrame) -> tuple[pd.Series, list[dict[str, Any]]]:
    """``(keep mask, id_conflicts)`` for the records table (index 0..n-1, with fingerprint columns).

    Only records with a fingerprint (their Id occurs more than once) can be duplicates or conflicts.
    """
    compared = records["fingerprint"].notna().to_numpy(dtype=bool) if len(records) else np.zeros(0, dtype=bool)
    if not compared.any():
        return pd.Series(True, index=records.index, dtype=bool), []
    if not compared.all():
        kept_compared, found = deduplicate(records.loc[compared])
        return kept_compared.reindex(records.index, fill_value=True), found
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
    kept = kept[kept["record_id"].duplicated(keep=False)]  # an Id kept once cannot conflict
    counts = kept.groupby("record_id")["fingerprint"].nunique()
    conflict_ids = counts[counts > 1].index
    conflicts: list[dict[str, Any]] = []
    if len(conflict_ids):
        for record_id, rows in kept[kept["record_id"].isin(conflict_ids)].groupby("record_id", sort=True):
            conflicts.append({
                "record_id": record_id,
                "versions": int(rows["fingerprint"].nunique()),
                "where": [f"{f}:{ln}" for f, ln in zip(rows["source_file"], rows["source_line"], strict=True)],
            })
    return keep, conflicts
