"""Opt-in (``--allow-mailbox-metadata``): message metadata from the mailbox itself, through Microsoft
Graph's ``Get-MgUserMessage``, for messages message trace no longer (or never) knew.

One call per message: ``-UserId <mailbox> -Filter "internetMessageId eq '<id>'"`` (quotes doubled as
OData escapes them; the value travels as the typed -Filter parameter, never as script text) and
``-Property`` (Graph's ``$select``) naming only from, toRecipients, ccRecipients, bccRecipients, subject,
receivedDateTime, hasAttachments and internetMessageId: never a body or preview.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.collect.retry import RetryPolicy, call_with_retry
from mia_bridge.enrich.message_trace import direction
from mia_bridge.enrich.model import SOURCE_GRAPH, MessageMeta, bracketed, normalise_id
from mia_bridge.errors import AccessDeniedError, BridgeAuthError, CmdletError, CommandNotFoundError

log = logging.getLogger(__name__)

CMDLET = "Get-MgUserMessage"
FOLDERS_CMDLET = "Get-MgUserMailFolder"
CHILD_FOLDERS_CMDLET = "Get-MgUserMailFolderChildFolder"
FOLDER_SELECT = ("id", "displayName", "childFolderCount")
SELECT = ("internetMessageId", "from", "toRecipients", "ccRecipients", "bccRecipients", "subject",
          "receivedDateTime", "hasAttachments")


class MailboxMetadata:
    """Graph message metadata by internetMessageId; ``unavailable`` says why it could not be used."""

    def __init__(
        self,
        backend: ExoBackend,
        *,
        retry: RetryPolicy,
        internal_domains: Iterable[str] = (),
        raw_sink: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.backend = backend
        self.retry = retry
        self.internal_domains = {d.lower() for d in internal_domains}
        self.raw_sink = raw_sink
        self.unavailable: str | None = None
        self.calls = 0

    def lookup(self, message_id: str, mailboxes: Iterable[str]) -> MessageMeta | None:
        """The message as the first of ``mailboxes`` holding it describes it, or None."""
        key = normalise_id(message_id)
        literal = bracketed(message_id).replace("'", "''")  # OData doubles quotes inside a string literal
        for mailbox in sorted(mailboxes):
            rows = self._call(CmdletCall(CMDLET, {"UserId": mailbox, "Filter": f"internetMessageId eq '{literal}'",
                                                  "Property": list(SELECT)}))
            if rows is None:
                return None
            for row in rows:
                if normalise_id(str(_get(row, "internetMessageId") or "")) == key:
                    return self._meta(row, message_id)
        return None

    def _call(self, call: CmdletCall) -> list[dict[str, Any]] | None:
        """Run one Graph call; None (and ``unavailable`` set) when Graph cannot be used at all."""
        if self.unavailable:
            return None
        try:
            self.calls += 1
            result = call_with_retry(lambda: self.backend.invoke(call), self.retry)
        except (AccessDeniedError, CommandNotFoundError, BridgeAuthError) as exc:
            self.unavailable = f"{call.name}: {exc.message}"
            log.warning("mailbox metadata unavailable: %s", self.unavailable)
            return None
        except CmdletError as exc:  # this mailbox only (e.g. it no longer exists): the others go on
            log.info("%s for one mailbox failed: %s", call.name, exc.message)
            return []
        if self.raw_sink is not None:
            self.raw_sink(call.describe(), result.output)
        return result.output

    def folders(self, mailbox: str) -> dict[str, str]:
        """Folder id -> path as audit records spell it (``\\Inbox\\Projects``), child folders included.

        Graph lists the top-level folders only; each folder with children (``childFolderCount``, asked when
        the answer lacks it) is walked through ``Get-MgUserMailFolderChildFolder``, level by level.
        """
        paths: dict[str, str] = {}
        level = [("", row) for row in self._call(CmdletCall(FOLDERS_CMDLET, {
            "UserId": mailbox, "All": True, "Property": list(FOLDER_SELECT)})) or []]
        while level:
            below: list[tuple[str, Any]] = []
            for parent, row in level:
                folder = str(_get(row, "id") or "")
                if not folder or folder in paths:  # a folder listed twice is walked once
                    continue
                paths[folder] = f"{parent}\\{_get(row, 'displayName') or ''}"
                children = _get(row, "childFolderCount")
                if children is not None and int(children) == 0:
                    continue
                rows = self._call(CmdletCall(CHILD_FOLDERS_CMDLET, {
                    "UserId": mailbox, "MailFolderId": folder, "All": True, "Property": list(FOLDER_SELECT)}))
                below.extend((paths[folder], child) for child in rows or [])
            level = below
        return paths

    def messages_before(self, mailbox: str, before: datetime) -> list[tuple[MessageMeta, str]]:
        """Every message the mailbox holds that was received before ``before``, with its folder id."""
        when = before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = self._call(CmdletCall(CMDLET, {"UserId": mailbox, "Filter": f"receivedDateTime lt {when}",
                                              "Property": [*SELECT, "parentFolderId"], "All": True}))
        return [(self._meta(r, str(_get(r, "internetMessageId") or "")), str(_get(r, "parentFolderId") or ""))
                for r in rows or [] if _get(r, "internetMessageId")]

    def _meta(self, row: dict[str, Any], message_id: str) -> MessageMeta:
        sender = _address(_get(row, "from"))
        to = _addresses(_get(row, "toRecipients"))
        cc = _addresses(_get(row, "ccRecipients"))
        bcc = _addresses(_get(row, "bccRecipients"))
        received = _get(row, "receivedDateTime")
        attachments = _get(row, "hasAttachments")
        return MessageMeta(
            internet_message_id=str(_get(row, "internetMessageId") or message_id),
            sender=sender,
            to=to,
            cc=cc,
            bcc=bcc,
            subject=str(_get(row, "subject") or ""),
            received=received if isinstance(received, datetime) else None,
            direction=direction(sender, to + cc + bcc, self.internal_domains) if sender else "",
            has_attachments=bool(attachments) if attachments is not None else None,
            source=SOURCE_GRAPH,
        )


def _get(row: Any, name: str) -> Any:
    """A property, whatever its casing (the SDK's models are PascalCase, Graph's JSON camelCase)."""
    if not isinstance(row, dict):
        return None
    low = name.lower()
    return next((v for k, v in row.items() if str(k).lower() == low), None)


def _address(value: Any) -> str:
    email = _get(value, "emailAddress")
    return str(_get(email, "address") or "").lower()


def _addresses(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else []
    return tuple(a for a in (_address(v) for v in items) if a)
