"""The contract between reading and analysing: the base tables, on disk.

Ingest (readers, normalisation, de-duplication) writes three Parquet datasets and the quarantine; every engine
(the embedded one, Spark) runs the same analysis over them. Kept on disk so that peak memory does not grow
with the input: an engine streams or spills them.

- ``records``: ``intake.BUILT_COLUMNS`` plus ``rec`` (int64: the record's position among all parsed records,
  0-based, in input order), ``fingerprint`` (UInt64, dedup.py's label; null where the record's Id occurs once)
  and ``duplicate`` (bool: removed as a copy of another record, which is kept).
- ``folders``: ``intake.FOLDER_ROW_COLUMNS`` (``rec`` as above).
- ``items``: ``intake.ITEM_ROW_COLUMNS`` (``rec`` as above).
- ``quarantine``: JSON lines, one object per unreadable record with ``intake.QUARANTINE_COLUMNS``.

Each dataset path is a Parquet file or a folder of Parquet files (read in name order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BaseTables:
    records: Path
    folders: Path
    items: Path
    quarantine: Path
    read: int  # records read = parsed + quarantined
    parsed: int
    quarantined: int
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # same Id, different content (dedup.py)
    inputs: list[Any] = field(default_factory=list)  # api.InputReport per input
