"""Accumulates normalised records, folders, items and quarantined records into tables."""

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


@dataclass
class Intake:
    rows: list[dict[str, Any]] = field(default_factory=list)
    folder_rows: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    item_rows: list[tuple[int, str | None, str, str, int | None]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
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

    def records_frame(self) -> pd.DataFrame:
        columns = [c for c in RECORD_COLUMNS if c != "in_period"] + ["core_fingerprint"]
        frame = pd.DataFrame(self.rows, columns=columns)
        for column, dtype in RECORD_COLUMNS.items():
            if column not in frame.columns:
                continue
            if dtype.startswith("datetime64"):
                frame[column] = pd.to_datetime(frame[column], utc=True)
            else:
                frame[column] = frame[column].astype(dtype)  # type: ignore[call-overload]
        return frame

    def folders_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.folder_rows, columns=FOLDER_ROW_COLUMNS)

    def items_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.item_rows, columns=ITEM_ROW_COLUMNS)
        frame["size_in_bytes"] = frame["size_in_bytes"].astype("Int64")
        return frame

    def quarantine_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(q.source, q.line, q.reason, q.raw) for q in self.quarantined], columns=QUARANTINE_COLUMNS
        ).astype({"line": "Int64"})
