"""Redaction of a case's shareable files: one keyed address hash and one subject list for a whole run.

``Redactor`` applies ``--redact-subjects`` and ``--hash-addresses`` to values on their way into a file:
``--redact-subjects`` replaces every subject with ``[redacted]``; ``--hash-addresses`` replaces every
address with ``addr-<16 hex>`` and every external domain with ``domain-<16 hex>``: the first 64 bits of
HMAC-SHA256 over the lower-cased value, keyed with ``MIA_HASH_KEY`` when set (the same key gives the same
pseudonyms across cases, so a responder holding it can match a known address) and otherwise with a random
key used for this run only and kept nowhere. A plain hash would not do: anyone could hash a guessed address
and look for it.

``Scrubber`` wraps the run's ``Redactor`` so that ``mia investigate`` can apply it to every file it derives:
every e-mail address in free text becomes the same ``addr-<16 hex>`` pseudonym everywhere (one HMAC key
per run, so hashed values join across files), and every exposed message's subject known to the
enrichment becomes ``[redacted]`` wherever it occurs. Message ids are kept (they are not parties; they
look like addresses only without their angle brackets, so fields that hold them are left alone).

What is redacted is decided by the case layout's labels (``mia_bridge.evidence.layout``): raw evidence and
the chain of custody are never passed through here; derived files are.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from mia_bridge.bridge.backend import Secret
from mia_bridge.csv_safety import write_rows
from mia_bridge.errors import ExportError
from mia_bridge.evidence.case import write_json
from mia_bridge.evidence.layout import CHAIN_OF_CUSTODY, RAW_EVIDENCE, SHAREABLE
from mia_bridge.safe_files import write_text

HASH_KEY_ENV = "MIA_HASH_KEY"
REDACTED = "[redacted]"
# An address in free text. Guest UPNs (``j_fabrikam.com#EXT#@contoso.onmicrosoft.com``) are one address; a
# message id is not (inside ``<>``; a domain cut short before ``>`` or ``.word`` does not end a match).
_ADDRESS = re.compile(r"(?<![<\w.+#-])\w[\w.+#'-]*@[\w-]+(?:\.[\w-]+)+(?![\w>-]|\.[\w-])")


class Redactor:
    """Applies --redact-subjects and --hash-addresses to values on their way into a file."""

    def __init__(self, *, redact_subjects: bool = False, hash_addresses: bool = False,
                 key: Secret | None = None) -> None:
        self.redact_subjects = redact_subjects
        self.hash_addresses = hash_addresses
        if key is None and hash_addresses:
            env = os.environ.get(HASH_KEY_ENV)
            key = Secret(env) if env else Secret(secrets.token_hex(32))
            self.key_source = HASH_KEY_ENV if env else "random, this run only"
        else:
            self.key_source = "given" if key is not None else ""
        self._key = key

    def _digest(self, value: str) -> str:
        assert self._key is not None
        mac = hmac.new(self._key.reveal().encode("utf-8"), value.strip().lower().encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:16]

    def subject(self, value: str) -> str:
        return REDACTED if self.redact_subjects and value else value

    def address(self, value: str) -> str:
        return f"addr-{self._digest(value)}" if self.hash_addresses and value else value

    def domain(self, value: str) -> str:
        return f"domain-{self._digest(value)}" if self.hash_addresses and value else value

    def text(self, value: str) -> str:
        """Free text (reasons, notes): addresses inside it are hashed too (message ids in <> are not)."""
        if not self.hash_addresses:
            return value
        return _ADDRESS.sub(lambda m: self.address(m.group(0)), value)

    def describe(self) -> dict[str, Any]:
        return {"redact_subjects": self.redact_subjects, "hash_addresses": self.hash_addresses,
                "hash": "HMAC-SHA256, first 64 bits" if self.hash_addresses else None,
                "hash_key": self.key_source or None}



MIN_SUBJECT = 4  # shorter subjects ("Hi") are redacted in subject fields only, not searched for in free text

T = TypeVar("T")


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


def redaction_record(redactor: Redactor) -> dict[str, Any]:
    """The run's redaction settings (never the key) and which files they cover, from the case layout's labels."""
    record = redactor.describe()
    active = redactor.redact_subjects or redactor.hash_addresses
    record["raw_evidence_not_redacted"] = list(RAW_EVIDENCE)
    record["chain_of_custody_not_redacted"] = list(CHAIN_OF_CUSTODY)
    record["redacted_files"] = (
        f"every other file of the case: {', '.join(SHAREABLE)} (and the manifest's investigation section)"
        if active else "none: every file names the parties and subjects as found"
    )
    return record
