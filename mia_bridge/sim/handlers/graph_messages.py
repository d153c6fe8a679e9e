"""Get-MgUserMessage (Microsoft Graph PowerShell, after Connect-MgGraph): a mailbox's messages by
internetMessageId, for messages beyond message trace's reach.

Interface chosen (and what the product sends): ``-UserId <mailbox> -Filter "internetMessageId eq '<id>'"
-Property id,internetMessageId,from,...`` -- Graph's own filter on the property (quotes doubled, as OData
escapes them), one id per call. ``-Property`` is Graph's ``$select``: only the properties named are
returned; without it Graph's default set comes back, body included, so callers must always select.
Any age is found (the mailbox keeps what transport's 90-day trace has forgotten), including mail that
never passed through transport.

Get-MgUserMailFolder lists the top-level folders only, as Graph's ``/mailFolders`` does, each with its
``ChildFolderCount``; Get-MgUserMailFolderChildFolder (``-MailFolderId``) lists one folder's children, so
a client must walk the tree to name the folder of nested mail (``\\Inbox\\Projects``).
"""

from __future__ import annotations

import hashlib
import operator
import re
from datetime import datetime
from typing import Any

from mia_bridge.sim.handlers._params import Params, binding_error
from mia_bridge.sim.handlers.graph import _graph_error, model
from mia_bridge.sim.mailflow import MailMessage, mailflow_of, normalise_id
from mia_bridge.sim.registry import SimObject, cmdlet

NAME = "Get-MgUserMessage"
_FILTER = re.compile(r"^\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_RECEIVED = re.compile(r"^\s*receivedDateTime\s+(lt|le|ge|gt)\s+(\d{4}-\d\d-\d\dT[\d:.]+Z)\s*$", re.IGNORECASE)
FOLDERS = "Get-MgUserMailFolder"
CHILD_FOLDERS = "Get-MgUserMailFolderChildFolder"
_COMPARE = {"lt": operator.lt, "le": operator.le, "ge": operator.ge, "gt": operator.gt}
_DEFAULT = ("id", "createdDateTime", "receivedDateTime", "sentDateTime", "hasAttachments", "internetMessageId",
            "subject", "bodyPreview", "body", "parentFolderId", "from", "sender", "toRecipients", "ccRecipients",
            "bccRecipients", "replyTo", "isRead")


def folder_id(path: str) -> str:
    return "AQMkAD" + hashlib.sha256(path.lower().encode()).hexdigest()[:24]


def _recipient(address: str) -> dict[str, Any]:
    return {"EmailAddress": {"Address": address, "Name": address.split("@", 1)[0]}}


def _properties(message: MailMessage) -> dict[str, Any]:
    return {
        "id": "AAMkAG" + message.message_trace_id.replace("-", ""),
        "createdDateTime": message.received,
        "receivedDateTime": message.received,
        "sentDateTime": message.received,
        "hasAttachments": message.has_attachments,
        "internetMessageId": message.internet_message_id,
        "subject": message.subject,
        "bodyPreview": f"(preview of {message.subject})",
        "body": {"ContentType": "html", "Content": f"<html><body>Body of {message.subject}</body></html>"},
        "parentFolderId": folder_id(message.folder),
        "from": _recipient(message.sender),
        "sender": _recipient(message.sender),
        "toRecipients": [_recipient(a) for a in message.to],
        "ccRecipients": [_recipient(a) for a in message.cc],
        "bccRecipients": [_recipient(a) for a in message.bcc],
        "replyTo": [],
        "isRead": True,
    }


def _filtered(messages: list[MailMessage], expression: str | None) -> list[MailMessage]:
    """``internetMessageId eq '<id>'`` or ``receivedDateTime lt|le|ge|gt <UTC>``, clauses joined by ``and``."""
    if not expression:
        return messages
    for clause in re.split(r"\s+and\s+", expression, flags=re.IGNORECASE):
        by_id, by_time = _FILTER.match(clause), _RECEIVED.match(clause)
        if by_id is not None:
            wanted = normalise_id(by_id.group(1).replace("''", "'"))
            messages = [m for m in messages if m.key == wanted]
        elif by_time is not None:
            op, when = by_time.group(1).lower(), datetime.fromisoformat(by_time.group(2).replace("Z", "+00:00"))
            compare = _COMPARE[op]
            messages = [m for m in messages if compare(m.received, when)]
        else:
            raise binding_error(NAME, f"[BadRequest] : Invalid filter clause: {clause}", "BadRequest")
    return messages


def _folder_paths(session: Any, user: str) -> set[str]:
    """Every folder of the mailbox that holds mail, with its ancestors (lower-level folders need them)."""
    paths: set[str] = set()
    for message in mailflow_of(session.tenant).in_mailbox(user):
        parts = message.folder.strip("\\").split("\\")
        paths |= {"\\" + "\\".join(parts[: i + 1]) for i in range(len(parts))}
    return paths


def _parent(path: str) -> str:
    return path.rsplit("\\", 1)[0] or "\\"


def _folders(session: Any, user: str, parent: str) -> list[SimObject]:
    """The direct children of ``parent`` ("\\" is the root, msgfolderroot), as Graph's mailFolder objects."""
    paths = _folder_paths(session, user)
    flow = mailflow_of(session.tenant)
    out = []
    for path in sorted(p for p in paths if _parent(p).lower() == parent.lower()):
        children = sum(1 for p in paths if _parent(p).lower() == path.lower())
        items = sum(1 for m in flow.in_mailbox(user) if m.folder.lower() == path.lower())
        out.append(SimObject(["Microsoft.Graph.PowerShell.Models.MicrosoftGraphMailFolder", "System.Object"],
                             {"Id": folder_id(path), "DisplayName": path.rsplit("\\", 1)[-1],
                              "ParentFolderId": folder_id(parent), "ChildFolderCount": children,
                              "TotalItemCount": items}))
    return out


@cmdlet(FOLDERS)
def get_mg_user_mail_folder(session: Any, params: dict[str, Any]) -> list[SimObject]:
    """The mailbox's top-level folders, as Graph lists /users/{id}/mailFolders (child folders are not in it)."""
    p = Params(FOLDERS, params, ("UserId", "MailFolderId", "All", "Top", "Filter", "Property", "IncludeHiddenFolders"))
    p.require("UserId")
    user = _known_user(session, p)
    return _folders(session, user, "\\")


@cmdlet(CHILD_FOLDERS)
def get_mg_user_mail_folder_child_folder(session: Any, params: dict[str, Any]) -> list[SimObject]:
    """The direct child folders of one folder (/users/{id}/mailFolders/{id}/childFolders)."""
    p = Params(CHILD_FOLDERS, params, ("UserId", "MailFolderId", "MailFolderId1", "All", "Top", "Filter", "Property",
                                       "IncludeHiddenFolders"))
    p.require("UserId")
    p.require("MailFolderId")
    user = _known_user(session, p)
    wanted = p.text("MailFolderId") or ""
    parent = next((path for path in _folder_paths(session, user) | {"\\"} if folder_id(path) == wanted), None)
    if parent is None:
        raise _graph_error("ErrorItemNotFound", "The specified object was not found in the store.", p.cmdlet)
    return _folders(session, user, parent)


def _known_user(session: Any, p: Params) -> str:
    user = (p.text("UserId") or "").lower()
    known = {str(m.get("UserPrincipalName") or "").lower() for m in session.tenant.directory.mailboxes}
    if user not in known:
        raise _graph_error("ErrorInvalidUser", f"The requested user '{user}' is invalid.", p.cmdlet)
    return user


@cmdlet(NAME)
def get_mg_user_message(session: Any, params: dict[str, Any]) -> list[SimObject]:
    p = Params(NAME, params, ("UserId", "MessageId", "Filter", "Property", "Top", "All", "Search", "Sort",
                              "ExpandProperty", "Skip", "PageSize"))
    p.require("UserId")
    user = _known_user(session, p)
    tenant = session.tenant
    messages = _filtered(mailflow_of(tenant).in_mailbox(user), p.text("Filter"))
    messages.sort(key=lambda m: m.received, reverse=True)  # Graph's default order for messages
    selected = [s.strip() for s in (p.texts("Property") or []) for s in s.split(",") if s.strip()]
    names = selected or list(_DEFAULT)
    top = p.integer("Top")
    if top is not None:
        messages = messages[:top]
    elif not p.switch("All"):
        messages = messages[:10]  # Graph's default page for messages
    out = []
    for message in messages:
        props = _properties(message)
        chosen = {"id": props["id"]}
        for name in names:
            key = next((k for k in props if k.lower() == name.lower()), None)
            if key is not None:
                chosen[key] = props[key]
        out.append(SimObject(["Microsoft.Graph.PowerShell.Models.MicrosoftGraphMessage", "System.Object"],
                             model({k[0].upper() + k[1:]: v for k, v in chosen.items()})))
    return out
