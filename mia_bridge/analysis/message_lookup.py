"""``--message-ids``: was each listed message accessed (bind), possibly exposed (sync/throttle), or not seen?
(The answer is ``sql/message_lookup.sql``; here the list is read and parsed.)

The file has one id per line, with or without angle brackets, any case; ``mailbox,message-id`` (or tab)
narrows the exposure check to that mailbox. Blank lines and ``#`` comments are ignored.
"""

from __future__ import annotations

from pathlib import Path

from mia_bridge.analysis.normalise import norm_message_id
from mia_bridge.errors import UsageError


def read_message_ids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the message-id list: {exc.strerror or exc}") from None
    entries = [line.strip() for line in text.splitlines()]
    entries = [line for line in entries if line and not line.startswith("#")]
    if not entries:
        raise UsageError(f"{path}: the message-id list is empty")
    return entries


def _split(entry: str) -> tuple[str | None, str]:
    for sep in ("\t", ","):
        if sep in entry:
            mailbox, _, mid = entry.partition(sep)
            return mailbox.strip().lower() or None, mid
    return None, entry


def lookup_requests(entries: list[str]) -> list[tuple[int, str, str | None, str]]:
    """The ``lookup_requests`` relation of ``sql/message_lookup.sql``: per entry, in the list's order, its
    number, the entry as given, the mailbox it names (or None) and the normalised message id ('' if none)."""
    rows = []
    for number, entry in enumerate(entries):
        mailbox, requested = _split(entry)
        rows.append((number, entry, mailbox, norm_message_id(requested) or ""))
    return rows
