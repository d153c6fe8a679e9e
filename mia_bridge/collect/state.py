"""Resume state: a journal of committed fetches per query under ``CASE/state/``.

Every fetch whose rows reached the evidence file is journalled with the evidence file's size
after that commit (fsynced, one JSON line). Rerunning the same command reads the journal, cuts the
evidence file back to the last journalled size, skips finished windows and redoes the rest.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mia_bridge.errors import UsageError

STATE_DIR = "state"


@dataclass
class JournalEntry:
    stream: int
    start: int
    end: int
    mode: str
    status: str  # complete | capped | session_failed | gap
    rows: int
    new: int
    duplicates: int
    duplicates_of_superseded: int
    unparseable: int
    out_of_window: int
    in_window: int
    calls: int
    retries: int
    offset: int
    unparsed_offset: int
    seconds: float
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class QueryState:
    """What earlier runs of this query already committed."""

    entries: list[JournalEntry] = field(default_factory=list)

    @property
    def offset(self) -> int:
        return max((e.offset for e in self.entries), default=0)

    @property
    def unparsed_offset(self) -> int:
        return max((e.unparsed_offset for e in self.entries), default=0)


class Journal:
    """Append-only journal for one query; the header pins the query so a rerun asks the same thing."""

    def __init__(self, case_dir: Path, name: str) -> None:
        self.dir = case_dir / STATE_DIR
        self.header_path = self.dir / f"{name}.query.json"
        self.path = self.dir / f"{name}.journal.jsonl"
        self._lock = threading.Lock()

    def load(self, header: dict[str, Any]) -> QueryState:
        """Check the header against this run's query and read the committed entries."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.header_path.exists():
            old = json.loads(self.header_path.read_text(encoding="utf-8"))
            if old != header:
                raise UsageError(
                    f"{self.header_path.parent.parent}: this case folder already holds query "
                    f"{header.get('name')!r} with different parameters or options",
                    hint="rerun with exactly the same options to resume, or use a new --out folder",
                )
        else:
            tmp = self.header_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(header, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.header_path)
        state = QueryState()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    state.entries.append(JournalEntry(**json.loads(line)))
                except (ValueError, TypeError):
                    break  # a half-written last line from a crash: its fetch is redone
            # Rewrite without any torn tail so later appends start on a clean line.
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(e.to_json() + "\n" for e in state.entries), encoding="utf-8")
            os.replace(tmp, self.path)
        return state

    def append(self, entry: JournalEntry) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(entry.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
