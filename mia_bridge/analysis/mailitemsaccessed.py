"""MailItemsAccessed tables: events, accessed items (bind), synced folders (sync), throttled windows, contexts.

Microsoft: sync records name folders, not items, and every item in a synced folder must be treated as
exposed; a record with ``IsThrottled=True`` means auditing stopped for 24 hours for that mailbox and every
message in that window must be treated as exposed (guidance 2020–2023).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from mia_bridge.analysis.grouped_text import join_distinct
from mia_bridge.analysis.schema import (
    CONTEXT_COLUMNS,
    CONTEXT_KEY,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    SYNCED_FOLDER_COLUMNS,
    THROTTLED_WINDOW_COLUMNS,
)

THROTTLE_WINDOW = timedelta(hours=24)
_CONTEXT_FIELDS = ["record_id", "creation_time", "mailbox", "client_ip", "app_id", "client_app_id",
                   "session_id", "client_info_string"]


def _time_ordered(frame: pd.DataFrame, with_rec: bool) -> pd.DataFrame:
    """Sort by time (then input position); skipped when already in order, as bulk dumps usually are."""
    in_order = frame["creation_time"].is_monotonic_increasing and (
        not with_rec or frame["rec"].is_monotonic_increasing
    )
    if in_order:
        return frame
    return frame.sort_values(["creation_time", "rec"] if with_rec else ["creation_time"], kind="stable")


def event_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per MailItemsAccessed record (``records`` already de-duplicated and period-filtered)."""
    mask = records["operation"].str.lower() == "mailitemsaccessed"
    return _time_ordered(records.loc[mask.fillna(False).astype(bool), EVENT_COLUMNS], with_rec=False)


def _take(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.take(positions)``; when the positions lie close together (a slice of rows in input order),
    the take runs on just that range: arrow concatenates a chunked column's chunks before a take, and
    the whole column of millions of rows per slice would be copied."""
    if len(positions):
        low, high = int(positions.min()), int(positions.max()) + 1
        if high - low <= 4 * len(positions) + 1024:
            return frame.iloc[low:high].take(positions - low)
    return frame.take(positions)


@dataclass
class BindItems:
    """The item table of bind events, not yet materialised: on large inputs it has millions of rows.

    ``rows`` are all item rows read (rec, folder_path, message ids, size), ``where`` the position of each
    one's event in ``context`` (the events' context columns; -1: not the item of a bind) and ``order`` the
    positions of the kept rows in output order (None: every row, as they are). Nothing is copied until
    ``frame`` builds the table or a slice of it, joining the context on by position. With ``ids`` (every
    row's message id factorised), ``rows`` need not keep the ``internet_message_id`` column: it is rebuilt
    from the codes (as strings it took ≈330 MB per million records).
    """

    rows: pd.DataFrame
    where: np.ndarray
    context: pd.DataFrame  # the events table's context columns (not a copy)
    order: np.ndarray | None
    ids: tuple[np.ndarray, Any] | None = None  # pd.factorize of every row's message id: (codes, uniques)
    _codes: tuple[np.ndarray, int] | None = None

    def __len__(self) -> int:
        return len(self.rows) if self.order is None else len(self.order)

    def _factorized(self) -> tuple[np.ndarray, Any]:
        if self.ids is None:
            self.ids = pd.factorize(self.rows["internet_message_id"])
        return self.ids

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Rows ``start:stop`` of the item table (``ITEM_COLUMNS``, output order)."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = min(start, stop)
        if self.order is None:
            positions = np.arange(start, stop)
            rows, where = self.rows.iloc[start:stop], self.where[start:stop]
        else:
            positions = self.order[start:stop]
            rows, where = _take(self.rows, positions), self.where[positions]
        context = _take(self.context, where)
        columns = {column: context[column] for column in _CONTEXT_FIELDS}
        columns.update({column: rows[column] for column in rows.columns if column not in columns})
        if "internet_message_id" not in columns:
            codes, uniques = self._factorized()
            columns["internet_message_id"] = pd.Series(uniques.take(codes[positions], allow_fill=True))
        frame = pd.DataFrame({column: series.reset_index(drop=True) for column, series in columns.items()})
        return frame[ITEM_COLUMNS]

    def event_positions(self, start: int, stop: int) -> np.ndarray:
        """For rows ``start:stop`` of the item table, the position of each one's event in ``context``."""
        stop = min(stop, len(self))
        start = min(start, stop)
        return self.where[start:stop] if self.order is None else self.where[self.order[start:stop]]

    def context_positions(self) -> np.ndarray:
        """Per item, the position of its event in the events table."""
        return self.where if self.order is None else self.where[self.order]

    def message_id_codes(self) -> tuple[np.ndarray, int]:
        """Per item, a number for its InternetMessageId (equal ids, equal numbers), and how many distinct ids."""
        if self._codes is None:
            codes, uniques = self._factorized()
            if self.order is not None:
                codes = codes[self.order]
            count = len(uniques)
            distinct = int(np.count_nonzero(np.bincount(codes, minlength=count))) if len(codes) else 0
            self._codes = (codes, distinct)
        return self._codes


def bind_items(events: pd.DataFrame, items: pd.DataFrame, message_ids: tuple[np.ndarray, Any] | None = None
               ) -> BindItems:
    """The FolderItems entries of bind events (repeats kept); ``rec`` in ``items`` is the event's index label.

    ``message_ids``: ``pd.factorize`` of the item rows' ``internet_message_id`` when the caller has it already
    (then ``items`` may lack that column).
    """
    is_bind = (events["mail_access_type"] == "Bind").fillna(False).to_numpy(dtype=bool)
    context = events[_CONTEXT_FIELDS]
    items = items.reset_index(drop=True)
    rec = items["rec"].to_numpy(dtype=np.int64)
    labels = events.index.to_numpy(dtype=np.int64)[is_bind]
    # An array lookup (record label -> position of its bind event) instead of a hash join.
    position = np.full(int(max(rec.max(initial=-1), labels.max(initial=-1))) + 1, -1, dtype=np.int64)
    position[labels] = np.flatnonzero(is_bind)
    where = position[rec]
    if message_ids is None:
        has_id = (items["internet_message_id"] != "").fillna(False).to_numpy(dtype=bool)
    else:
        codes, uniques = message_ids
        empty = np.flatnonzero(np.asarray(pd.Series(uniques).eq("").fillna(False), dtype=bool))
        has_id = (codes >= 0) & ~np.isin(codes, empty)
    keep = (where >= 0) & has_id
    kept = None if bool(keep.all()) else np.flatnonzero(keep)
    times = context["creation_time"].to_numpy(dtype="datetime64[ns]")[where if kept is None else where[kept]]
    kept_rec = rec if kept is None else rec[kept]
    in_order = bool((np.diff(times) >= np.timedelta64(0, "ns")).all()) and bool((np.diff(kept_rec) >= 0).all())
    order = kept
    if not in_order:  # by time, then input position (stable), as sort_values(["creation_time", "rec"], kind="stable")
        by_time = np.lexsort((kept_rec, times))
        order = by_time if kept is None else kept[by_time]
    # Positions as int32 where they fit, and no ``rec``: millions of rows, the table is held to the end.
    small = np.int32 if len(items) < 2**31 else np.int64
    return BindItems(items.drop(columns=["rec"]), where.astype(small),
                     context, None if order is None else order.astype(small), message_ids)


def synced_folder_table(events: pd.DataFrame, folders: pd.DataFrame) -> pd.DataFrame:
    """One row per folder of a sync event."""
    syncs = events.loc[events["mail_access_type"] == "Sync", _CONTEXT_FIELDS]
    merged = folders.merge(syncs, left_on="rec", right_index=True, how="inner")
    return _time_ordered(merged, with_rec=True)[SYNCED_FOLDER_COLUMNS].reset_index(drop=True)


def throttled_windows(events: pd.DataFrame) -> pd.DataFrame:
    """24-hour windows opened by throttled records, merged per mailbox where they overlap or touch.

    In time order a record opens a new window when it is another mailbox's or comes more than 24 h after
    the mailbox's previous throttled record (a window ends 24 h after its last record): one sort, one
    cumulative sum and one grouped aggregation, whatever the number of windows."""
    mask = events["is_throttled"].fillna(False).astype(bool)
    frame = pd.DataFrame({"mailbox": events.loc[mask, "mailbox"].fillna("").astype(str),
                          "when": events.loc[mask, "creation_time"]})
    if frame.empty:
        return pd.DataFrame(columns=THROTTLED_WINDOW_COLUMNS)
    frame = frame.sort_values(["mailbox", "when"], kind="stable")
    opens = frame["mailbox"].ne(frame["mailbox"].shift()) | (frame["when"].diff() > THROTTLE_WINDOW)
    grouped = frame.groupby(opens.cumsum().to_numpy(), sort=True)
    windows = grouped.agg(mailbox=("mailbox", "first"), window_start=("when", "min"), last=("when", "max"),
                          throttled_events=("when", "size"))
    windows["window_end"] = windows["last"] + THROTTLE_WINDOW
    windows["throttled_events"] = windows["throttled_events"].astype("int64")
    return windows[THROTTLED_WINDOW_COLUMNS].reset_index(drop=True)


def _key_frame(frame: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """The context key columns (missing → "") plus ``extra`` columns, without copying the rest."""
    keyed = {column: frame[column].fillna("").astype(str) for column in CONTEXT_KEY}
    keyed.update({column: frame[column] for column in extra})
    return pd.DataFrame(keyed, index=frame.index)


def _item_counts(event_groups: np.ndarray, groups: int, items: BindItems) -> tuple[np.ndarray, np.ndarray]:
    """Items and distinct message ids per context, from each item's event's context number (no string keys)."""
    pairs = event_groups[items.context_positions()]
    counted = np.bincount(pairs, minlength=groups)
    codes, _ = items.message_id_codes()
    width = np.int64(int(codes.max(initial=0)) + 1)
    # One number per (context, message id), computed and sorted in place (millions of items: no temporaries);
    # once sorted, equal ones adjoin.
    pairs *= width
    pairs += codes
    pairs.sort()
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]
    distinct = np.bincount(pairs[first] // width, minlength=groups)
    return counted, distinct


def context_table(events: pd.DataFrame, items: pd.DataFrame | BindItems, synced: pd.DataFrame) -> pd.DataFrame:
    """Access contexts: mailbox × IP × AppId × ClientInfoString × SessionId, with first/last seen and counts.

    ``items`` is the item table, or the ``BindItems`` it is built from (counted without materialising it).
    """
    if events.empty:
        return pd.DataFrame(columns=CONTEXT_COLUMNS)
    keyed = _key_frame(events, "creation_time", "record_id", "mail_access_type", "is_throttled", "client_app_id")
    keyed["is_bind"] = keyed["mail_access_type"] == "Bind"
    keyed["is_sync"] = keyed["mail_access_type"] == "Sync"
    keyed["throttled"] = keyed["is_throttled"].fillna(False).astype(bool)
    grouped = keyed.groupby(CONTEXT_KEY, sort=False)
    table = grouped.agg(
        first_seen=("creation_time", "min"),
        last_seen=("creation_time", "max"),
        events=("record_id", "size"),
        bind_events=("is_bind", "sum"),
        sync_events=("is_sync", "sum"),
        throttled_events=("throttled", "sum"),
    )
    group_of_event = grouped.ngroup().to_numpy(dtype=np.int64)  # numbered as the rows of ``table`` (sort=False)
    table["client_app_ids"] = join_distinct(group_of_event, keyed["client_app_id"], len(table))
    if isinstance(items, BindItems):
        counted, distinct = _item_counts(group_of_event, len(table), items)
        table["items_accessed"] = counted
        table["unique_message_ids"] = distinct
    elif not items.empty:
        item_keyed = _key_frame(items, "internet_message_id").groupby(CONTEXT_KEY, sort=False)["internet_message_id"]
        table = table.join(item_keyed.size().rename("items_accessed"))
        table = table.join(item_keyed.nunique().rename("unique_message_ids"))
    else:
        table["items_accessed"] = 0
        table["unique_message_ids"] = 0
    if not synced.empty:
        sync_keyed = _key_frame(synced, "folder_path").groupby(CONTEXT_KEY, sort=False)["folder_path"].nunique()
        table = table.join(sync_keyed.rename("synced_folders"))
    else:
        table["synced_folders"] = 0
    table = table.fillna({"items_accessed": 0, "unique_message_ids": 0, "synced_folders": 0})
    table = table.reset_index()
    for column in ("events", "bind_events", "sync_events", "throttled_events", "items_accessed",
                   "unique_message_ids", "synced_folders"):
        table[column] = table[column].astype("int64")
    return table.sort_values(["mailbox", "first_seen"], kind="stable")[CONTEXT_COLUMNS].reset_index(drop=True)
