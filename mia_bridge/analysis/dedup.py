"""De-duplication across inputs and formats, decided on the whole record; same-Id conflicts.

Only records sharing an ``Id`` are compared (records without an Id share the empty one). Two of them are
one record when their whole parsed AuditData is the same (``canonical``: every field, normalised only
where export paths are known to spell one value differently). A copy from an export that projects the
record onto its own columns (Sentinel OfficeActivity, Sparrow, Search-MailboxAuditLog, Defender rows
without RawEventData) is compared on the fields it carries; a value its export lost (``System.Object[]``)
matches anything. Of two copies of one record the more complete is kept. The same Id with different
content is a conflict: every version kept, listed with the fields that differ. Records without an Id are
duplicates only when their whole content is the same.

The vectorised readers keep no record text: for the few records that are compared it is read back from
line ``source_line`` of ``source_file``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mia_bridge.analysis.canonical import Content, content, digest
from mia_bridge.errors import MiaError
from mia_bridge.readers.auditdata_csv import record_of_row
from mia_bridge.readers.base import FLAG_NO_RAW_EVENT
from mia_bridge.readers.decoding import decode_input
from mia_bridge.readers.registry import prepare

# Exports that project the record onto a fixed set of columns: a field they lack may exist in the record.
PARTIAL_FORMATS = frozenset({"sentinel_officeactivity_csv", "sentinel_officeactivity_json", "sparrow_csv",
                             "mailbox_audit_log_csv"})
# Defender rows without RawEventData: these fields are guesses from other columns (Application, Account*).
_GUESSED = frozenset({"Workload", "UserId"})
_SHOWN_WHERE = 20
_SHOWN_FIELDS = 50


def _hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _read_back(path: str, fmt: str, lines: set[int], hashed: bool) -> dict[int, Any]:
    """The record text (AuditData JSON) at each of ``lines`` of a file read by a vectorised reader, or its
    128-bit hash (``hashed``: an export given twice is decided without holding its text)."""
    found: dict[int, Any] = {}
    try:
        src = decode_input(Path(path))
        csv_header: list[str] | None = None
        delimiter = ","
        if fmt != "raw_auditdata_json":
            _, _, sniffed = prepare(Path(path), fmt)
            delimiter = sniffed.delimiter or ","
            csv_header = list(sniffed.header)
        last = max(lines)
        with src.open_binary() as handle:
            for number, raw in enumerate(handle, start=1):
                if number > last:
                    break
                if number not in lines:
                    continue
                text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
                if csv_header is None:
                    found[number] = _hash(text) if hashed else text
                    continue
                fields = next(csv.reader([text], delimiter=delimiter), [])
                if len(fields) == len(csv_header):
                    record = record_of_row(dict(zip(csv_header, fields, strict=True)))
                    if isinstance(record, dict):
                        text = json.dumps(record, ensure_ascii=False)
                        found[number] = _hash(text) if hashed else text
    except (OSError, EOFError, ValueError, MiaError):
        pass  # the input changed since it was read: its records are compared with nothing (kept)
    return found


def _texts(records: pd.DataFrame, hashed: bool = False) -> list[Any]:
    """The record text of each row (``raw_json``, or read back from its input), or its hash; None when
    it cannot be had (such a record is compared with nothing)."""
    texts: list[Any] = [None if pd.isna(t) else str(t) for t in records["raw_json"]]
    wanted: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pos, (text, source, fmt, line) in enumerate(zip(texts, records["source_file"], records["source_format"],
                                                        records["source_line"], strict=True)):
        if text is None and not pd.isna(line):
            wanted[(str(source), str(fmt))][int(line)].append(pos)
        elif text is not None and hashed:
            texts[pos] = _hash(text)
    for (source, fmt), by_line in wanted.items():
        for line, text in _read_back(source, fmt, set(by_line), hashed).items():
            for pos in by_line[line]:
                texts[pos] = text
    return texts


def _content(text: str | None, fmt: str, flags: str) -> Content | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    guessed = FLAG_NO_RAW_EVENT in flags.split(";")
    return content(data, partial=fmt in PARTIAL_FORMATS or guessed, drop=_GUESSED if guessed else frozenset())


def _label(value: str) -> int:
    return int(value[:16], 16)


def _text_label(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def deduplicate(records: pd.DataFrame) -> tuple[pd.Series, list[dict[str, Any]], pd.Series]:
    """``(keep mask, id_conflicts, fingerprint)`` for the records table (index 0..n-1).

    ``fingerprint`` (UInt64) labels the content of each compared record: equal within an Id means one
    record; missing for records whose Id occurs once (compared with nothing).
    """
    n = len(records)
    keep = np.ones(n, dtype=bool)
    labels = np.zeros(n, dtype=np.uint64)
    rid = records["record_id"].fillna("").astype(str)
    need = rid.duplicated(keep=False).to_numpy(dtype=bool)
    conflicts: list[dict[str, Any]] = []
    if need.any():
        positions = np.flatnonzero(need)
        subset = records.iloc[positions]
        hashes = _texts(subset, hashed=True)
        ids = rid.iloc[positions].tolist()
        # The very same text under the same Id is the same record, whatever the reader: decided on a 128-bit
        # hash of the text, without parsing it (an export given twice costs a look-up per record).
        first: dict[tuple[str, bytes], int] = {}
        copies: list[tuple[int, int]] = []
        distinct: dict[str, list[int]] = defaultdict(list)
        for member, (record_id, key) in enumerate(zip(ids, hashes, strict=True)):
            if key is not None:
                earlier = first.setdefault((record_id, key), member)
                if earlier != member:
                    copies.append((member, earlier))
                    continue
            distinct[record_id].append(member)
        del first
        # Only Ids with more than one text are compared field by field: their texts are read.
        compared = [m for members in distinct.values() if len(members) > 1 for m in members]
        texts: list[str | None] = [None] * len(positions)
        for member, text in zip(compared, _texts(subset.iloc[compared]) if compared else [], strict=True):
            texts[member] = text
        kept = [True] * len(positions)
        marks = [0] * len(positions)
        meta = list(zip(subset["source_format"].fillna("").astype(str), subset["flags"].fillna("").astype(str),
                        subset["source_file"].astype(str), subset["source_line"], strict=True))
        for record_id, members in distinct.items():
            if len(members) == 1:  # every copy has one text: nothing to compare
                only = members[0]
                key = hashes[only]
                marks[only] = int.from_bytes(key[:8], "big") if key is not None else _text_label(f"#{only}")
                continue
            found = _group(record_id, members, texts, meta, kept, marks)
            if found is not None:
                conflicts.append(found)
        for member, earlier in copies:
            kept[member] = False
            marks[member] = marks[earlier]
        keep[positions] = kept
        labels[positions] = np.array(marks, dtype=np.uint64)
    conflicts.sort(key=lambda c: str(c["record_id"]))
    fingerprint = pd.Series(pd.arrays.IntegerArray(labels, ~need), index=records.index)
    return pd.Series(keep, index=records.index), conflicts, fingerprint


def _group(
    record_id: str, members: list[int], texts: list[str | None], meta: list[tuple[str, str, str, Any]],
    keep: list[bool], labels: list[int],
) -> dict[str, Any] | None:
    """Decide one Id's records of distinct texts (indices into ``texts``); returns its conflict entry when
    more than one version remains."""
    versions: list[tuple[int, Content | None, int]] = []  # (member, content, label)
    seen_labels: set[int] = set()  # records without an Id: whole-content equality only
    for member in members:
        text = texts[member]
        found = _content(text, meta[member][0], meta[member][1])
        if found is None:  # unreadable text: never taken for a copy of anything
            labels[member] = _text_label(text if text is not None else f"#{member}")
            versions.append((member, None, labels[member]))
            continue
        label = _label(digest(found.form))
        if not record_id:
            # Without an Id, a lost value could hide any difference: only complete copies are compared.
            if label in seen_labels and found.lost == 0:
                keep[member] = False
            seen_labels.add(label)
            labels[member] = label
            continue
        match = next((i for i, (_, other, _) in enumerate(versions)
                      if other is not None and not other.differs_from(found)), None)
        if match is None:
            versions.append((member, found, label))
            labels[member] = label
            continue
        kept_member, kept_content, kept_label = versions[match]
        labels[member] = kept_label
        if kept_content is not None and found.better_than(kept_content):
            keep[kept_member] = False
            versions[match] = (member, found, kept_label)
        else:
            keep[member] = False
    if not record_id or len(versions) < 2:
        return None
    fields: set[str] = set()
    base = versions[0][1]
    for _, other, _ in versions[1:]:
        if base is None or other is None:
            fields.add("(unreadable record)")
        else:
            fields.update(base.differs_from(other))
    kept_members = sorted(member for member, _, _ in versions)
    return {
        "record_id": record_id,
        "versions": len(versions),
        "fields": sorted(fields)[:_SHOWN_FIELDS],
        "where": [f"{meta[m][2]}:{meta[m][3]}" for m in kept_members[:_SHOWN_WHERE]],
    }
