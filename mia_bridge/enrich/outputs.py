"""``exposed_messages.csv`` and ``affected_parties.csv``, optionally redacted for third parties.

``--redact-subjects`` replaces every subject with ``[redacted]``. ``--hash-addresses`` replaces every
address with ``addr-<16 hex>`` and every external domain with ``domain-<16 hex>``: the first 64 bits
of HMAC-SHA256 over the lower-cased value, keyed with ``MIA_HASH_KEY`` when set (the same key gives the
same pseudonyms across cases, so a responder holding it can match a known address) and otherwise with
a random key used for this run only and kept nowhere. A plain hash would not do: anyone could hash a
guessed address and look for it (``mia_bridge.evidence.redaction``). Redaction covers every output file
enrichment writes; the raw tenant answers under ``enrich/raw/`` are evidence and stay as received (share the
outputs, not them). ``write_exposed`` is the one writer of ``exposed_messages.csv``: ``mia enrich``, and
``mia investigate`` whether or not the affected-parties step ran.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge.enrich.model import ExposedMessage
from mia_bridge.enrich.parties import EXTERNAL_DOMAIN, Party
from mia_bridge.errors import ExportError
from mia_bridge.evidence.case import write_csv
from mia_bridge.evidence.layout import EXPOSED_NAME, PARTIES_NAME
from mia_bridge.evidence.redaction import Redactor
from mia_bridge.safe_files import open_private

__all__ = ["EXPOSED_COLUMNS", "EXPOSED_NAME", "PARTIES_NAME", "PARTY_COLUMNS", "RawWriter", "message_row",
           "party_row", "write_exposed"]
EXPOSED_COLUMNS = [
    "internet_message_id", "exposure", "reasons", "mailboxes", "folders", "first_access", "contexts", "sender",
    "to", "cc", "bcc", "subject", "received", "size", "status", "direction", "has_attachments",
    "metadata_source", "metadata_note",
]
PARTY_COLUMNS = [
    "party", "party_type", "internal", "accessed_messages", "potentially_exposed_messages", "as_sender",
    "as_recipient", "earliest", "latest",
]
def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def message_row(message: ExposedMessage, redactor: Redactor) -> dict[str, Any]:
    meta = message.meta

    def addresses(values: Iterable[str]) -> str:
        return ";".join(redactor.address(v) for v in values)

    return {
        "internet_message_id": message.internet_message_id,
        "exposure": message.exposure,
        "reasons": " || ".join(redactor.text(r) for r in message.reasons),
        "mailboxes": addresses(sorted(message.mailboxes)),
        "folders": ";".join(sorted(message.folders)),
        "first_access": _iso(message.first_access),
        "contexts": ";".join(sorted(message.contexts)),
        "sender": redactor.address(meta.sender) if meta else "",
        "to": addresses(meta.to) if meta else "",
        "cc": addresses(meta.cc) if meta else "",
        "bcc": addresses(meta.bcc) if meta else "",
        "subject": redactor.subject(meta.subject) if meta else "",
        "received": _iso(meta.received) if meta else "",
        "size": meta.size if meta and meta.size is not None else "",
        "status": meta.status if meta else "",
        "direction": meta.direction if meta else "",
        "has_attachments": "" if meta is None or meta.has_attachments is None else str(meta.has_attachments),
        "metadata_source": meta.source if meta else "none",
        "metadata_note": redactor.text(message.note),
    }


def write_exposed(path: Path, messages: Iterable[ExposedMessage], redactor: Redactor) -> int:
    """``exposed_messages.csv``: its one writer and one schema (``EXPOSED_COLUMNS``), whether or not the
    enrichment found metadata (header only when no message was read); returns the rows written."""
    return write_csv(path, EXPOSED_COLUMNS, (message_row(m, redactor) for m in messages))


def party_row(party: Party, redactor: Redactor) -> dict[str, Any]:
    name = redactor.domain(party.party) if party.party_type == EXTERNAL_DOMAIN else redactor.address(party.party)
    return {
        "party": name, "party_type": party.party_type, "internal": str(party.internal),
        "accessed_messages": party.accessed_messages,
        "potentially_exposed_messages": party.potentially_exposed_messages,
        "as_sender": party.as_sender, "as_recipient": party.as_recipient,
        "earliest": _iso(party.earliest), "latest": _iso(party.latest),
    }


class RawWriter:
    """Tenant answers appended to ``enrich/raw/<name>.jsonl`` and flushed to disk before they are used."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: dict[str, Path] = {}
        self.lines: dict[str, int] = {}

    def sink(self, name: str) -> Any:
        def write(call: dict[str, Any], rows: list[dict[str, Any]]) -> None:
            path = self.paths.setdefault(name, self.folder / f"{name}.jsonl")
            if name not in self.lines:  # a rerun appends: earlier answers stay, and count
                self.lines[name] = _line_count(path)
            try:
                with open_private(path, "a") as handle:  # raw answers are evidence: never through a link
                    handle.write(json.dumps({"call": call, "output": rows}, ensure_ascii=False, default=str) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise ExportError(f"{path}: cannot write: {exc.strerror or exc}", path=str(path)) from None
            self.lines[name] = self.lines.get(name, 0) + 1

        return write


def _line_count(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)
