"""Potentially exposed mail: what was in a synced folder or a throttled mailbox at the time.

A sync downloads a folder without logging each message; a throttled mailbox stops logging binds for 24
hours. Message trace tells which mail a mailbox received (or sent) before that moment, not in which
folder it sat, so every message delivered before a sync of any received-mail folder is listed, and
every message sent before a sync of Sent Items; a throttled window covers both. Each message carries
the reasons (folder synced at T by context; mailbox throttled T..T+24h) and stays distinct from the
messages actually read (bind). Message trace reaches 90 days: older mail is not listed (the summary
says so) unless the mailbox may be asked (``--allow-mailbox-metadata``): then Graph lists the mail each
mailbox holds that was received before the moment, in every folder (child folders walked for their
paths), so a sync lists the mail of that folder only (as it is now: mail moved or deleted since is not
seen, mail moved in since is; each such row's note says so).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from mia_bridge.enrich.mailbox_metadata import MailboxMetadata
from mia_bridge.enrich.message_trace import MessageTrace
from mia_bridge.enrich.model import POTENTIAL, ExposedMessage, MessageMeta, normalise_id
from mia_bridge.enrich.scope import Scope

SENT_ITEMS = "\\sent items"
MAILBOX_AS_NOW = "listed from the mailbox as it is now: mail deleted (or moved away) since then is not listed"


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


def _path_key(path: str) -> str:
    """Folder paths compare without case and surrounding backslashes (``\\Inbox`` = ``inbox``)."""
    return path.strip().strip("\\").lower()


def potential_from_mailbox(
    scope: Scope, graph: MailboxMetadata, exclude: set[str], out: dict[str, ExposedMessage]
) -> None:
    """Add to ``out`` the mail each mailbox holds (Graph) that a sync or throttled window in scope exposed.

    The listing is the mailbox as it is now: mail deleted (or moved out of a synced folder) since the sync
    or the throttled window is not listed; each row's note says so.
    """
    syncs: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)  # mailbox -> (time, folder key, reason)
    for sync in scope.syncs:
        syncs[sync.mailbox].append((sync.time, _path_key(sync.folder),
                                    f"folder {sync.folder} synced {sync.time:%Y-%m-%d %H:%M} UTC by {sync.context}: "
                                    "in that folder, received before then"))
    windows: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for window in scope.throttled:
        windows[window.mailbox].append((window.end, f"mailbox throttled {window.start:%Y-%m-%d %H:%M}–"
                                        f"{window.end:%Y-%m-%d %H:%M} UTC: mail in it then may have been read "
                                        "without a record"))
    for mailbox in sorted(set(syncs) | set(windows)):
        latest = max([t for t, _, _ in syncs[mailbox]] + [t for t, _ in windows[mailbox]])
        paths = graph.folders(mailbox)  # every folder, child folders included
        for meta, folder_id in graph.messages_before(mailbox, latest):  # every folder of the mailbox
            _add(out, exclude, mailbox, meta, paths.get(folder_id, ""), syncs[mailbox], windows[mailbox])
        if graph.unavailable:
            return


def _add(out: dict[str, ExposedMessage], exclude: set[str], mailbox: str, meta: MessageMeta, folder: str,
         syncs: list[tuple[datetime, str, str]], windows: list[tuple[datetime, str]]) -> None:
    key = normalise_id(meta.internet_message_id)
    if key in exclude or meta.received is None:
        return
    received = meta.received
    # a sync covers its own folder only (each folder, subfolders too, is synced and audited on its own)
    reasons = [(t, r if folder else r.replace("in that folder", "folder not resolved")) for t, path, r in syncs
               if received < t and (not folder or path == _path_key(folder))]
    reasons += [(t, r) for t, r in windows if received < t]
    if not reasons:
        return
    message = out.get(key)
    if message is None:
        message = out[key] = ExposedMessage(key, meta.internet_message_id, POTENTIAL, meta=meta)
        message.note = MAILBOX_AS_NOW
    message.mailboxes.add(mailbox)
    if folder:
        message.folders.add(folder)
    first = min(t for t, _ in reasons)
    if message.first_access is None or first < message.first_access:
        message.first_access = first
    for _, reason in sorted(reasons):
        message.add_reason(reason)
