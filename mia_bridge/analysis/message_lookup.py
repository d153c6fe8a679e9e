"""``--message-ids``: was each listed message accessed (bind), possibly exposed (sync/throttle), or not seen?

The file has one id per line, with or without angle brackets, any case; ``mailbox,message-id`` (or tab)
narrows the exposure check to that mailbox. Blank lines and ``#`` comments are ignored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mia_bridge.analysis.normalise import norm_message_id
from mia_bridge.analysis.schema import MESSAGE_LOOKUP_COLUMNS
from mia_bridge.errors import UsageError


def read_message_ids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the message-id list: {exc.strerror or exc}") from None
    entries = [line.strip() for line in text.splitlines()]
    entries = [line for line in entries if line and not line.startswith("#")]
    if not entries:
        raise UsageError(f"{path}: the message-id list is empty")
    return entries


def _split(entry: str) -> tuple[str | None, str]:
    for sep in ("\t", ","):
        if sep in entry:
            mailbox, _, mid = entry.partition(sep)
            return mailbox.strip().lower() or None, mid
    return None, entry


def _join(values: pd.Series) -> str:
    return ";".join(sorted({str(v) for v in values.dropna() if str(v)}))


def lookup_messages(
    entries: list[str], items: pd.DataFrame, synced: pd.DataFrame, windows: pd.DataFrame
) -> pd.DataFrame:
    synced_mailboxes = set(synced["mailbox"].dropna()) if not synced.empty else set()
    throttled_mailboxes = set(windows["mailbox"].dropna()) if not windows.empty else set()
    requests = [(entry, *_split(entry)) for entry in entries]
    wanted = {norm_message_id(requested) or "" for _, _, requested in requests}
    # only the requested ids' rows are grouped: the items table holds every id read in the period
    hits_of = items[items["internet_message_id"].isin(wanted)] if not items.empty else items
    by_id = {mid: group for mid, group in hits_of.groupby("internet_message_id")} if not hits_of.empty else {}
    rows = []
    for entry, mailbox, requested in requests:
        mid = norm_message_id(requested) or ""
        hits = by_id.get(mid)
        if hits is not None and mailbox:
            hits = hits[hits["mailbox"] == mailbox]
        reasons = []
        for box in sorted(synced_mailboxes if mailbox is None else synced_mailboxes & {mailbox}):
            reasons.append(f"mailbox {box} was synced in the period")
        for box in sorted(throttled_mailboxes if mailbox is None else throttled_mailboxes & {mailbox}):
            reasons.append(f"mailbox {box} was throttled (24 h unaudited) in the period")
        if hits is not None and not hits.empty:
            status = "accessed"
            row = {
                "accesses": len(hits), "first_access": hits["creation_time"].min(),
                "last_access": hits["creation_time"].max(), "mailboxes": _join(hits["mailbox"]),
                "client_ips": _join(hits["client_ip"]), "app_ids": _join(hits["app_id"]),
                "session_ids": _join(hits["session_id"]),
            }
        else:
            status = "possibly_exposed" if reasons else "not_seen"
            row = {"accesses": 0, "first_access": pd.NaT, "last_access": pd.NaT, "mailboxes": mailbox or "",
                   "client_ips": "", "app_ids": "", "session_ids": ""}
        if mailbox is None and reasons and status != "accessed":
            reasons.append("the list gives no mailbox for this id, so every synced/throttled mailbox counts")
        rows.append({"internet_message_id": mid, "requested_as": entry, "status": status, **row,
                     "exposure_reasons": "; ".join(reasons)})
    table = pd.DataFrame(rows, columns=MESSAGE_LOOKUP_COLUMNS)
    for column in ("first_access", "last_access"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return table
