"""Redaction of a case's shareable files: one keyed address hash and one subject list for a whole run.

``Scrubber`` wraps the enrichment's ``Redactor`` (``--redact-subjects``, ``--hash-addresses``) so that
``mia investigate`` can apply it to every file it derives, not only to the enrichment's own tables:
every e-mail address in free text becomes the same ``addr-<16 hex>`` pseudonym everywhere (one HMAC key
per run, so hashed values join across files), and every exposed message's subject known to the
enrichment becomes ``[redacted]`` wherever it occurs. Message ids are kept (they are not parties; they
look like addresses only without their angle brackets, so fields that hold them are left alone).

Raw evidence is never passed through here: the audit records under ``evidence/``, the tenant's directory
output under ``directory/`` and the enrichment's raw answers under ``enrich/raw/`` stay as received
(``RAW_EVIDENCE``); they name everyone and must not be shared.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from mia_bridge.csv_safety import write_rows
from mia_bridge.enrich.outputs import REDACTED, Redactor, write_json
from mia_bridge.errors import ExportError
from mia_bridge.safe_files import write_text

# Case folders holding raw evidence (relative to the case): never redacted, never to be shared.
RAW_EVIDENCE = ("evidence/", "directory/", "enrich/raw/")
# The chain of custody: the evidence index and the collector's resume journal record the queries as sent
# (with --user, those mailboxes) and the evidence file names; a resume compares them, so they are not
# rewritten. The investigation's own section of the manifest is redacted. Not to be shared either.
CHAIN_OF_CUSTODY = ("manifest.json", "state/")
MIN_SUBJECT = 4  # shorter subjects ("Hi") are redacted in subject fields only, not searched for in free text

T = TypeVar("T")


def is_raw_evidence(relative: str) -> bool:
    """Whether a case-relative path (``/`` separators) is raw evidence."""
    return relative.replace("\\", "/").startswith(RAW_EVIDENCE)


def _message_id_field(name: str) -> bool:
    """Fields holding message ids (normalised ids have no ``<>`` and would look like addresses)."""
    flat = name.lower().replace("_", "").replace(" ", "")
    return "messageid" in flat


def trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of ``words`` (longest first), as a trie: each position is rejected on its first
    character instead of being tried against every word (a plain alternation of thousands of subjects is
    that many times slower on every string of the case)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return build(root)


class Scrubber:
    """Applies one run's redaction settings to values and files."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._subjects: set[str] = set()
        self._subject_re: re.Pattern[str] | None = None

    @property
    def active(self) -> bool:
        return self.redactor.redact_subjects or self.redactor.hash_addresses

    def add_subjects(self, subjects: Iterable[str]) -> None:
        """Subjects of exposed messages, to be replaced wherever they appear (with --redact-subjects)."""
        if not self.redactor.redact_subjects:
            return
        fresh = {s.strip() for s in subjects if len(s.strip()) >= MIN_SUBJECT} - self._subjects
        if not fresh:
            return
        self._subjects |= fresh
        self._subject_re = re.compile(trie_pattern(s.lower() for s in self._subjects), re.IGNORECASE)

    def text(self, value: str) -> str:
        """Free text: addresses hashed, exposed subjects replaced."""
        if self._subject_re is not None:
            value = self._subject_re.sub(REDACTED, value)
        return self.redactor.text(value)

    def value(self, data: T, *, key: str = "") -> T:
        """A JSON-like value (dicts, lists, strings, dataclasses) with every string scrubbed; message ids kept."""
        if not self.active:
            return data
        return self._value(data, key)

    def _value(self, data: Any, key: str) -> Any:
        if isinstance(data, str):
            if key and _message_id_field(key):
                return data if self._subject_re is None else self._subject_re.sub(REDACTED, data)
            return self.text(data)
        if isinstance(data, dict):
            # keys too: summaries count by mailbox ({"user@contoso.com": 3})
            return {(self.text(k) if isinstance(k, str) and not _message_id_field(key) else k):
                    self._value(v, k if isinstance(k, str) else key) for k, v in data.items()}
        if isinstance(data, list):
            return [self._value(v, key) for v in data]
        if isinstance(data, tuple):
            return tuple(self._value(v, key) for v in data)
        if isinstance(data, set | frozenset):
            return {self._value(v, key) for v in data}
        if dataclasses.is_dataclass(data) and not isinstance(data, type):
            changes = {f.name: self._value(getattr(data, f.name), f.name) for f in dataclasses.fields(data)
                       if f.init}
            return dataclasses.replace(data, **changes)
        return data

    # --- files written earlier in the run, rewritten in place -------------------------------------

    def rewrite(self, path: Path) -> None:
        """Scrub one derived file in place (CSV, JSON, JSON lines, Parquet); other kinds are left as they are."""
        if not self.active or not path.exists():
            return
        suffix = path.suffix.lower()
        try:
            if suffix == ".json":
                write_json(path, self.value(json.loads(path.read_text(encoding="utf-8"))))
            elif suffix == ".jsonl":
                lines = path.read_text(encoding="utf-8").splitlines()
                out = [json.dumps(self.value(json.loads(line)), ensure_ascii=False, default=str) if line.strip()
                       else line for line in lines]
                write_text(path, "".join(f"{line}\n" for line in out))
            elif suffix == ".csv":
                self._rewrite_csv(path)
            elif suffix == ".parquet":
                self._rewrite_parquet(path)
        except (OSError, ValueError) as exc:
            raise ExportError(f"{path}: cannot redact: {exc}", path=str(path)) from None

    def _rewrite_csv(self, path: Path) -> None:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        header = rows[0]
        keep = {i for i, name in enumerate(header) if _message_id_field(name)}
        write_rows(path, header, ([cell if i in keep else self.text(cell) for i, cell in enumerate(row)]
                                  for row in rows[1:]), quoting=csv.QUOTE_ALL)

    def _rewrite_parquet(self, path: Path) -> None:
        import pandas as pd

        frame = pd.read_parquet(path)
        for column in frame.columns:
            if _message_id_field(str(column)) or not (
                pd.api.types.is_string_dtype(frame[column]) or frame[column].dtype == object
            ):
                continue
            frame[column] = frame[column].map(lambda v: self.text(v) if isinstance(v, str) else v)
        frame.to_parquet(path, index=False)
