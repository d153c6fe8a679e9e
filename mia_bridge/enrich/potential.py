"""Potentially exposed mail: what was in a synced folder or a throttled mailbox at the time.

A sync downloads a folder without logging each message; a throttled mailbox stops logging binds for 24
hours. Message trace tells which mail a mailbox received (or sent) before that moment, not in which
folder it sat, so every message delivered before a sync of any received-mail folder is listed, and
every message sent before a sync of Sent Items; a throttled window covers both. Each message carries
the reasons (folder synced at T by context; mailbox throttled T..T+24h) and stays distinct from the
messages actually read (bind). Message trace reaches 90 days: older mail is not listed (the summary
says so).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from mia_bridge.enrich.message_trace import MessageTrace
from mia_bridge.enrich.model import POTENTIAL, ExposedMessage, normalise_id
from mia_bridge.enrich.scope import Scope

SENT_ITEMS = "\\sent items"


def potential_exposure(scope: Scope, trace: MessageTrace, accessed: set[str]) -> dict[str, ExposedMessage]:
    """Messages potentially exposed by the scope's syncs and throttled windows (accessed ones excluded)."""
    moments: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)  # (mailbox, role)
    for sync in scope.syncs:
        role = "sender" if sync.folder.strip().lower() == SENT_ITEMS else "recipient"
        verb = "sent from" if role == "sender" else "delivered to"
        moments[(sync.mailbox, role)].append((
            sync.time,
            f"folder {sync.folder} synced {sync.time:%Y-%m-%d %H:%M} UTC by {sync.context}: {verb} the mailbox "
            "before then" + ("" if role == "sender" else " (message trace does not tell the folder)"),
        ))
    for window in scope.throttled:
        reason = (f"mailbox throttled {window.start:%Y-%m-%d %H:%M}–{window.end:%Y-%m-%d %H:%M} UTC: mail in it "
                  "then may have been read without a record")
        for role in ("recipient", "sender"):
            moments[(window.mailbox, role)].append((window.end, reason))
    out: dict[str, ExposedMessage] = {}
    for (mailbox, role), marks in sorted(moments.items()):
        latest = max(t for t, _ in marks)
        for meta in trace.by_party(mailbox, role, latest):
            key = normalise_id(meta.internet_message_id)
            if key in accessed or meta.received is None:
                continue
            reasons = [r for t, r in sorted(marks) if meta.received < t]
            if not reasons:
                continue
            message = out.get(key)
            if message is None:
                message = out[key] = ExposedMessage(key, meta.internet_message_id, POTENTIAL, meta=meta)
            message.mailboxes.add(mailbox)
            first = min(t for t, _ in marks if meta.received < t)
            if message.first_access is None or first < message.first_access:
                message.first_access = first
            for reason in reasons:
                message.add_reason(reason)
    return out
