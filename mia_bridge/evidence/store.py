"""The evidence store: raw AuditData lines, deduplicated by ``Id`` and content, written and flushed on receipt.

One file per query, ``evidence/<query>.jsonl`` (or ``.jsonl.gz``): each line is the AuditData
string exactly as the service sent it. Rows are committed a fetch at a time: the new lines are
appended (one gzip member per commit when compressed), flushed and fsynced, and only then does the
caller journal the fetch. After a crash, bytes past the last journalled offset belong to a fetch
that was never journalled; they are cut off and that fetch is redone, so nothing is counted twice.
AuditData that is not a JSON object is kept verbatim in ``<query>.unparsed.jsonl`` (one JSON
string per line) and counted; it never disappears.

A row is a duplicate only when a row with its ``Id`` was stored with the very same text. The same Id with
other text is kept as well and counted as an Id conflict (``mia analyze`` then compares the two whole
records: the same record spelled differently is one record there, different content is reported).
Comparing text, not parsed content, keeps this at a hash per row; it can only keep too much, never drop.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mia_bridge.errors import EvidenceError
from mia_bridge.evidence.layout import EVIDENCE_DIR, STATE_DIR
from mia_bridge.records.timestamps import epoch_seconds
from mia_bridge.safe_files import make_dir, open_private

_RESTART = "start a new case with a fresh --out (keep this folder for examination)"


@dataclass(frozen=True)
class Expected:
    """What the resume journal says the evidence files hold, checked before a rerun trusts it: the records
    (lines) and SHA-256 of each file up to its journalled size, and what the manifest registered of them
    (relative path -> (bytes, sha256)) when an earlier run ended."""

    journalled: bool
    records: int
    sha256: str
    unparsed_records: int
    unparsed_sha256: str
    registered: dict[str, tuple[int, str]]


@dataclass(frozen=True)
class AuditRow:
    """One row as received: the AuditData text, its dedup key and its CreationTime (epoch s)."""

    key: str
    text: str
    time: int | None
    parsed: bool


def parse_row(audit_data: Any, fallback_time: Any = None, identity: Any = None) -> AuditRow:
    """Build an ``AuditRow`` from the AuditData property of one Search-UnifiedAuditLog row."""
    if isinstance(audit_data, dict | list):  # a backend already parsed it: store canonical JSON
        text = json.dumps(audit_data, separators=(",", ":"), ensure_ascii=False)
    else:
        text = "" if audit_data is None else str(audit_data)
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("Id"):
        created = obj.get("CreationTime")
        ts = epoch_seconds(created)
        if ts is None:
            ts = epoch_seconds(fallback_time)
        return AuditRow(key=str(obj["Id"]).lower(), text=text, time=ts, parsed=True)
    basis = str(identity) if identity else text
    key = "sha256:" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()
    return AuditRow(key=key, text=text, time=epoch_seconds(fallback_time), parsed=False)


@dataclass
class CommitCounts:
    rows: int = 0
    new: int = 0
    duplicates: int = 0
    duplicates_of_superseded: int = 0  # the earlier copy came from a fetch that was later redone
    unparseable: int = 0
    out_of_window: int = 0  # new records whose CreationTime is outside the query period (kept)
    id_conflicts: int = 0  # new records whose Id was already stored with other text (both kept)


def _text_hash(line: str) -> int:
    """60 bits of the stored line's hash: a small int per key (no false duplicate in 2**60)."""
    digest = hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 4


class EvidenceFile:
    """Append-only, deduplicating writer for one query's evidence. Thread-safe."""

    def __init__(self, case_dir: Path, name: str, *, compress: bool = False) -> None:
        self.case_dir = case_dir
        self.name = name
        self.compress = compress
        suffix = ".jsonl.gz" if compress else ".jsonl"
        self.path = case_dir / EVIDENCE_DIR / f"{name}{suffix}"
        self.unparsed_path = case_dir / EVIDENCE_DIR / f"{name}.unparsed.jsonl"
        # key -> text hash << 1 | (first copy came from a superseded fetch); keys stored with several texts
        # (Id conflicts) also list every text hash in ``_versions``.
        self._seen: dict[str, int] = {}
        self._versions: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self.records = 0
        self.unparsed_records = 0
        self._digests = {self.path: hashlib.sha256(), self.unparsed_path: hashlib.sha256()}
        self.discarded: dict[str, int] = {}  # relative path -> bytes of an unjournalled tail cut on resume
        self.set_aside: list[Path] = []  # where those bytes were kept

    @property
    def relpath(self) -> str:
        return self.path.relative_to(self.case_dir).as_posix()

    @property
    def sha256(self) -> str:
        """SHA-256 of the evidence file as committed so far."""
        return self._digests[self.path].hexdigest()

    @property
    def unparsed_sha256(self) -> str:
        return self._digests[self.unparsed_path].hexdigest()

    def open(self, committed: int = 0, unparsed_committed: int = 0, expected: Expected | None = None) -> None:
        """Open for appending; keep exactly the committed bytes and reload their keys.

        With ``expected`` (a resume), the files are checked against the journal before anything is cut: the
        committed bytes must be there, hold the journalled number of records and hash to the journalled
        SHA-256, and cover at least what the manifest registered. Any disagreement stops the run.
        """
        make_dir(self.path.parent)
        files = ((self.path, committed, expected.records if expected else None, expected.sha256 if expected else ""),
                 (self.unparsed_path, unparsed_committed, expected.unparsed_records if expected else None,
                  expected.unparsed_sha256 if expected else ""))
        for path, size, records, sha in files:
            if path.is_symlink():
                raise EvidenceError(f"{path}: is a symbolic link; refusing to use it as evidence",
                                    hint="a case folder never holds links: someone planted it; " + _RESTART)
            if not path.exists():
                if size or (expected is not None and expected.journalled and path == self.path):
                    raise EvidenceError(
                        f"{path}: a journal without its evidence: the file is missing but the resume journal says "
                        f"{size} bytes ({records} records) were written",
                        hint="the case folder was altered; " + _RESTART,
                    )
                continue
            actual = path.stat().st_size
            if actual < size:
                raise EvidenceError(
                    f"{path}: evidence file was truncated: {actual} bytes, the resume state recorded {size}",
                    hint="records already collected are gone; " + _RESTART,
                )
            with path.open("rb") as fh:
                prefix = fh.read(size)
            if expected is not None:
                self._check(path, prefix, records, sha, expected.registered.get(self._rel(path)), actual)
            self._digests[path] = hashlib.sha256(prefix)
            if actual > size:
                # Bytes of a fetch that crashed before it was journalled: that fetch is redone. The bytes are
                # moved aside (state/, registered in the manifest), never destroyed: evidence is not deleted.
                self._set_aside(path, size)
                with open_private(path, "r+b") as fh:
                    fh.truncate(size)
                self.discarded[self._rel(path)] = actual - size
        if not self.path.exists():
            # an empty result is evidence too: registered and hashed like any other
            open_private(self.path, "ab").close()
        for line in self._read_lines(self.path):
            obj = json.loads(line)
            self._remember(str(obj["Id"]).lower(), _text_hash(line), False)
            self.records += 1
        if self.unparsed_path.exists():
            for line in self.unparsed_path.read_text(encoding="utf-8").splitlines():
                row = parse_row(json.loads(line))
                self._remember(row.key, _text_hash(line), False)
                self.unparsed_records += 1

    def _set_aside(self, path: Path, size: int) -> None:
        """Copy the bytes of ``path`` past ``size`` to ``state/<file>.tail-at-<size>[.n]``."""
        folder = self.case_dir / STATE_DIR
        target = folder / f"{path.name}.tail-at-{size}"
        number = 1
        while target.exists() or target.is_symlink():
            number += 1
            target = folder / f"{path.name}.tail-at-{size}.{number}"
        with path.open("rb") as src, open_private(target, "xb") as dst:
            src.seek(size)
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
        self.set_aside.append(target)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.case_dir).as_posix()

    def _check(self, path: Path, prefix: bytes, records: int | None, sha: str, registered: tuple[int, str] | None,
               actual: int) -> None:
        """The journal's claim about one file against the file (and the manifest), before anything is cut."""
        def fail(what: str) -> EvidenceError:
            return EvidenceError(f"{path}: the resume journal does not match the evidence: {what}",
                                 hint="the journal or the evidence was altered; nothing was changed; " + _RESTART)

        if sha and hashlib.sha256(prefix).hexdigest() != sha:
            raise fail(f"the first {len(prefix)} bytes do not hash to the journalled SHA-256 {sha}")
        data = gzip.decompress(prefix) if path == self.path and self.compress and prefix else prefix
        lines = data.count(b"\n")
        if records is not None and lines != records:
            raise fail(f"{lines} records in the first {len(prefix)} bytes, the journal counts {records}")
        if registered is not None:
            size, digest = registered
            if size > len(prefix):
                raise fail(f"the manifest registered {size} bytes of it when a run ended, the journal only "
                           f"{len(prefix)} (of {actual} on disk)")
            if size == len(prefix) and digest != hashlib.sha256(prefix).hexdigest():
                raise fail("its SHA-256 differs from the one the manifest registered")

    def _remember(self, key: str, text_hash: int, superseded: bool) -> None:
        earlier = self._seen.get(key)
        if earlier is None:
            self._seen[key] = text_hash << 1 | superseded
            return
        self._versions.setdefault(key, {earlier >> 1}).add(text_hash)

    def _stored_before(self, key: str, text_hash: int) -> int | None:
        """None when this key was never stored; else 1 when a copy with this text was stored, first by a
        superseded fetch, 0 when by another, -1 when only other texts were stored (an Id conflict)."""
        earlier = self._seen.get(key)
        if earlier is None:
            return None
        if earlier >> 1 == text_hash or text_hash in self._versions.get(key, ()):
            return earlier & 1
        return -1

    def _read_lines(self, path: Path) -> list[str]:
        if not path.exists():
            return []
        data = path.read_bytes()
        if self.compress and data:
            data = gzip.decompress(data)
        return data.decode("utf-8").splitlines()

    def commit(
        self, rows: list[AuditRow], *, superseded: bool = False, period: tuple[int, int] | None = None
    ) -> tuple[CommitCounts, int, int]:
        """Append the rows not seen before; returns counts and the committed sizes of both files.

        ``period`` is the query's ``[start, end)``: new records outside it are kept and counted.
        """
        counts = CommitCounts(rows=len(rows))
        with self._lock:
            lines: list[str] = []
            unparsed: list[str] = []
            for row in rows:
                if row.parsed and "\n" not in row.text and "\r" not in row.text:
                    line = row.text
                elif row.parsed:
                    # A line break inside the JSON would split the record; compact it (same data).
                    line = json.dumps(json.loads(row.text), separators=(",", ":"), ensure_ascii=False)
                else:
                    line = json.dumps(row.text, ensure_ascii=False)
                text_hash = _text_hash(line)
                earlier = self._stored_before(row.key, text_hash)
                if earlier is not None and earlier >= 0:
                    counts.duplicates += 1
                    counts.duplicates_of_superseded += earlier
                    continue
                if earlier is not None:
                    counts.id_conflicts += 1  # same Id, other content: kept, never dropped
                self._remember(row.key, text_hash, superseded)
                if period is not None and row.time is not None and not period[0] <= row.time < period[1]:
                    counts.out_of_window += 1
                if row.parsed:
                    lines.append(line)
                else:
                    unparsed.append(line)
                    counts.unparseable += 1
            counts.new = len(lines) + len(unparsed)
            if lines:
                self._append(self.path, "".join(line + "\n" for line in lines), self.compress)
                self.records += len(lines)
            if unparsed:
                self._append(self.unparsed_path, "".join(u + "\n" for u in unparsed), False)
                self.unparsed_records += len(unparsed)
            size = self.path.stat().st_size if self.path.exists() else 0
            usize = self.unparsed_path.stat().st_size if self.unparsed_path.exists() else 0
        return counts, size, usize

    def _append(self, path: Path, text: str, compress: bool) -> None:
        data = text.encode("utf-8")
        if compress:
            data = gzip.compress(data, mtime=0)  # one member per commit; gzip readers concatenate them
        with open_private(path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._digests[path].update(data)

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._seen)


def count_lines(path: Path) -> int:
    """Records in an evidence file (gzip handled)."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    count = 0
    with opener(path, "rb") as fh:
        for _ in fh:
            count += 1
    return count


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of an evidence file, parsed (for tests and consumers)."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
