"""Resume state: a journal of committed fetches per query under ``CASE/state/``.

Every fetch whose rows reached the evidence file is journalled with the evidence file's size and
SHA-256 after that commit (fsynced, one JSON line). Rerunning the same command reads the journal and
verifies it before trusting it: its windows lie in the query's period, its offsets only grow, and the
evidence on disk holds the journalled records and hashes to the journalled SHA-256 up to that size,
covering what the manifest registered (``QueryState.expected`` → ``EvidenceFile.open``). Only then is
the evidence cut back to the last journalled size, finished windows skipped and the rest redone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mia_bridge.errors import EvidenceError, UsageError
from mia_bridge.evidence.layout import STATE_DIR
from mia_bridge.evidence.store import Expected
from mia_bridge.safe_files import make_dir, open_private, write_text


@dataclass
class JournalEntry:
    stream: int
    start: int
    end: int
    mode: str
    status: str  # complete | capped | session_failed | unverified | gap
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
    rejected: int = 0  # rows of a failed page (not the query's, or beside such a row): not kept, refetched
    sha256: str = ""  # of the evidence file's first ``offset`` bytes ("" in journals of older versions)
    unparsed_sha256: str = ""
    id_conflicts: int = 0  # of ``new``: rows whose Id was already stored with other content
    mac: str = ""  # with a case key: HMAC-SHA256 chained over the journal so far (a planted line has none)

    def chained_mac(self, key: bytes, previous: str) -> str:
        body = replace(self, mac="").to_json()
        return hmac.new(key, (previous + body).encode("utf-8"), hashlib.sha256).hexdigest()

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

    def check(self, journal: Path, period: tuple[int, int], streams: int) -> None:
        """The journal's own consistency: windows inside the period, offsets that grow exactly when records
        were written. A planted or edited journal fails here or against the evidence (``expected``)."""
        offset = unparsed = 0
        for number, e in enumerate(self.entries, 1):
            where = f"{journal}: entry {number}"
            if not (0 <= e.stream < streams and period[0] <= e.start < e.end <= period[1]):
                raise _tampered(f"{where}: window {e.start}..{e.end} (stream {e.stream}) is outside the query")
            if min(e.rows, e.new, e.duplicates, e.unparseable) < 0 or e.rows != e.new + e.duplicates:
                raise _tampered(f"{where}: counts do not add up (rows {e.rows} != new {e.new} + duplicates "
                                f"{e.duplicates})")
            wrote, wrote_unparsed = e.new - e.unparseable > 0, e.unparseable > 0
            if (e.offset > offset) != wrote or (e.unparsed_offset > unparsed) != wrote_unparsed or (
                    e.offset < offset or e.unparsed_offset < unparsed):
                raise _tampered(f"{where}: offset {e.offset} (before: {offset}) does not match {e.new} new records")
            offset, unparsed = e.offset, e.unparsed_offset

    def expected(self, registered: dict[str, tuple[int, str]]) -> Expected:
        """What the evidence files must hold for this journal to be trusted."""
        last = self.entries[-1] if self.entries else None
        return Expected(
            journalled=bool(self.entries),
            records=sum(e.new - e.unparseable for e in self.entries),
            sha256=last.sha256 if last else "",
            unparsed_records=sum(e.unparseable for e in self.entries),
            unparsed_sha256=last.unparsed_sha256 if last and last.unparsed_offset else "",
            registered=registered,
        )


def _tampered(message: str) -> EvidenceError:
    return EvidenceError(message, hint="the resume journal was altered; nothing was changed; start a new case "
                         "with a fresh --out (keep this folder for examination)")


class Journal:
    """Append-only journal for one query; the header pins the query so a rerun asks the same thing."""

    def __init__(self, case_dir: Path, name: str, key: bytes | None = None) -> None:
        self.dir = case_dir / STATE_DIR
        self.header_path = self.dir / f"{name}.query.json"
        self.path = self.dir / f"{name}.journal.jsonl"
        self._lock = threading.Lock()
        self.key = key  # the case key (seal.case_key()): entries are chained with HMAC-SHA256 and checked
        self._last_mac = ""

    def load(self, header: dict[str, Any]) -> QueryState:
        """Check the header against this run's query and read the committed entries."""
        make_dir(self.dir)
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
            write_text(tmp, json.dumps(header, indent=2, sort_keys=True))
            os.replace(tmp, self.header_path)
        state = QueryState()
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    state.entries.append(JournalEntry(**json.loads(line)))
                except (ValueError, TypeError):
                    if number < len(lines):  # only the last line can be torn by a crash
                        raise _tampered(f"{self.path}: line {number} is not a journal entry") from None
                    # A half-written last line from a crash: its fetch is redone. Rewrite the journal without
                    # it so later appends start on a clean line (only then: a journal is otherwise left as found).
                    tmp = self.path.with_suffix(".tmp")
                    write_text(tmp, "".join(e.to_json() + "\n" for e in state.entries))
                    os.replace(tmp, self.path)
        if self.key is not None:
            self._check_macs(state.entries)
        return state

    def _check_macs(self, entries: list[JournalEntry]) -> None:
        """With a case key, every entry must carry the chained HMAC: a line written without the key (planted,
        edited, or by a run that was not given the key) stops the run."""
        previous = ""
        assert self.key is not None
        for number, entry in enumerate(entries, 1):
            if not hmac.compare_digest(entry.mac, entry.chained_mac(self.key, previous)):
                raise _tampered(f"{self.path}: entry {number} is not signed with this case key (planted or edited, "
                                "or written by a run without the key)")
            previous = entry.mac
        self._last_mac = previous

    def append(self, entry: JournalEntry) -> None:
        with self._lock, open_private(self.path, "a") as fh:
            if self.key is not None:
                entry.mac = self._last_mac = entry.chained_mac(self.key, self._last_mac)
            fh.write(entry.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
