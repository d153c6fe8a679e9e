"""Accumulates normalised records, folders, items and quarantined records into tables.

Records arrive one by one (readers + ``normalise``) or as whole column chunks (the vectorised JSON-lines
path); both end up in the same three tables, addressed by the record's position ``rec``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mia_bridge.analysis.normalise import Normalised, normalise
from mia_bridge.analysis.schema import RECORD_COLUMNS
from mia_bridge.readers.base import Quarantined, RawRecord

QUARANTINE_COLUMNS = ["file", "line", "reason", "raw"]
FOLDER_ROW_COLUMNS = ["rec", "folder_path", "folder_id"]
ITEM_ROW_COLUMNS = ["rec", "folder_path", "internet_message_id", "internet_message_id_raw", "size_in_bytes"]
BUILT_COLUMNS = [c for c in RECORD_COLUMNS if c not in ("in_period", "fingerprint")]


@dataclass
class Chunk:
    records: pd.DataFrame  # BUILT_COLUMNS
    folders: pd.DataFrame  # FOLDER_ROW_COLUMNS, rec relative to the chunk
    items: pd.DataFrame  # ITEM_ROW_COLUMNS, rec relative to the chunk


def typed_records(frame: pd.DataFrame) -> pd.DataFrame:
    for column in BUILT_COLUMNS:
        dtype = RECORD_COLUMNS[column]
        if dtype.startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
        else:
            frame[column] = frame[column].astype(dtype)  # type: ignore[call-overload]
    return frame


@dataclass
class Intake:
    rows: list[dict[str, Any]] = field(default_factory=list)
    folder_rows: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    item_rows: list[tuple[int, str | None, str, str, int | None]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    read: int = 0

    def add(self, item: RawRecord | Quarantined) -> Quarantined | None:
        """Take one reader output; returns the Quarantined value when the record could not be used."""
        self.read += 1
        result: Normalised | Quarantined
        if isinstance(item, Quarantined):
            result = item
        else:
            try:
                result = normalise(item)
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
                result = Quarantined(item.source, item.line, f"record could not be normalised: {exc}", item.raw)
        if isinstance(result, Quarantined):
            self.quarantined.append(result)
            return result
        rec = len(self.rows)
        self.rows.append(result.row)
        for folder in result.folders:
            self.folder_rows.append((rec, folder.path, folder.folder_id))
            for raw_id, mid, size in folder.items:
                self.item_rows.append((rec, folder.path, mid, raw_id, size))
        return None

    def extend(self, items: Iterable[RawRecord | Quarantined]) -> list[Quarantined]:
        return [q for q in (self.add(item) for item in items) if q is not None]

    def add_chunk(self, chunk: Chunk) -> None:
        """Take a whole vectorised chunk (every record in it parsed)."""
        self._flush()
        self.read += len(chunk.records)
        self.chunks.append(chunk)

    def _flush(self) -> None:
        if not self.rows:
            return
        records = typed_records(pd.DataFrame(self.rows, columns=BUILT_COLUMNS))
        folders = pd.DataFrame(self.folder_rows, columns=FOLDER_ROW_COLUMNS)
        items = pd.DataFrame(self.item_rows, columns=ITEM_ROW_COLUMNS)
        items["size_in_bytes"] = items["size_in_bytes"].astype("Int64")
        self.chunks.append(Chunk(records, folders, items))
        self.rows, self.folder_rows, self.item_rows = [], [], []

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """``(records, folders, items)`` over every chunk, ``rec`` = position in ``records``; the intake hands
        them over (it keeps its counts and quarantined records, not the rows)."""
        self._flush()
        if not self.chunks:
            empty = Chunk(typed_records(pd.DataFrame(columns=BUILT_COLUMNS)),
                          pd.DataFrame(columns=FOLDER_ROW_COLUMNS), pd.DataFrame(columns=ITEM_ROW_COLUMNS))
            empty.items["size_in_bytes"] = empty.items["size_in_bytes"].astype("Int64")
            empty.folders["rec"] = empty.folders["rec"].astype("int64")
            empty.items["rec"] = empty.items["rec"].astype("int64")
            return empty.records, empty.folders, empty.items
        if len(self.chunks) == 1:
            only = self.chunks.pop()
            return only.records, only.folders, only.items
        offsets, total = [], 0
        for chunk in self.chunks:
            offsets.append(total)
            total += len(chunk.records)
        records = pd.concat([c.records for c in self.chunks], ignore_index=True)
        folders = pd.concat([c.folders.assign(rec=c.folders["rec"] + off) for c, off in zip(self.chunks, offsets,
                                                                                          strict=True)],
                            ignore_index=True)
        items = pd.concat([c.items.assign(rec=c.items["rec"] + off) for c, off in zip(self.chunks, offsets,
                                                                                    strict=True)],
                          ignore_index=True)
        # Handed over: kept here as well, the chunks' columns would cost ≈200 MB per million records.
        self.chunks = []
        return records, folders, items

    def quarantine_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(q.source, q.line, q.reason, q.raw) for q in self.quarantined], columns=QUARANTINE_COLUMNS
        ).astype({"line": "Int64"})


def join_chunks(chunks: list[Chunk]) -> Chunk:
    """Consecutive chunks as one (``rec`` renumbered)."""
    intake = Intake()
    for chunk in chunks:
        intake.add_chunk(chunk)
    return Chunk(*intake.tables())
