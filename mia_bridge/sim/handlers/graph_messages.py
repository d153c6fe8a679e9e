"""Get-MgUserMessage (Microsoft Graph PowerShell, after Connect-MgGraph): a mailbox's messages by
internetMessageId, for messages beyond message trace's reach.

Interface chosen (and what the product sends): ``-UserId <mailbox> -Filter "internetMessageId eq '<id>'"
-Property id,internetMessageId,from,...`` -- Graph's own filter on the property (quotes doubled, as OData
escapes them), one id per call. ``-Property`` is Graph's ``$select``: only the properties named are
returned; without it Graph's default set comes back, body included, so callers must always select.
Any age is found (the mailbox keeps what transport's 90-day trace has forgotten), including mail that
never passed through transport.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from mia_bridge.sim.handlers._params import Params, binding_error
from mia_bridge.sim.handlers.graph import _graph_error
from mia_bridge.sim.mailflow import MailMessage, mailflow_of, normalise_id
from mia_bridge.sim.registry import SimObject, cmdlet

NAME = "Get-MgUserMessage"
_FILTER = re.compile(r"^\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_DEFAULT = ("id", "createdDateTime", "receivedDateTime", "sentDateTime", "hasAttachments", "internetMessageId",
            "subject", "bodyPreview", "body", "parentFolderId", "from", "sender", "toRecipients", "ccRecipients",
            "bccRecipients", "replyTo", "isRead")


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
        "parentFolderId": "AQMkAD" + hashlib.sha256(message.folder.encode()).hexdigest()[:24],
        "from": _recipient(message.sender),
        "sender": _recipient(message.sender),
        "toRecipients": [_recipient(a) for a in message.to],
        "ccRecipients": [_recipient(a) for a in message.cc],
        "bccRecipients": [_recipient(a) for a in message.bcc],
        "replyTo": [],
        "isRead": True,
    }


@cmdlet(NAME)
def get_mg_user_message(session: Any, params: dict[str, Any]) -> list[SimObject]:
    p = Params(NAME, params, ("UserId", "MessageId", "Filter", "Property", "Top", "All", "Search", "Sort",
                              "ExpandProperty", "Skip", "PageSize"))
    p.require("UserId")
    user = (p.text("UserId") or "").lower()
    tenant = session.tenant
    known = {str(m.get("UserPrincipalName") or "").lower() for m in tenant.directory.mailboxes}
    if user not in known:
        raise _graph_error("ErrorInvalidUser", f"The requested user '{user}' is invalid.", NAME)
    expression = p.text("Filter")
    wanted: str | None = None
    if expression:
        match = _FILTER.match(expression)
        if match is None:
            raise binding_error(NAME, f"[BadRequest] : Invalid filter clause: {expression}", "BadRequest")
        wanted = normalise_id(match.group(1).replace("''", "'"))
    flow = mailflow_of(tenant)
    messages = [m for m in flow.in_mailbox(user) if wanted is None or m.key == wanted]
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
                             {k[0].upper() + k[1:]: v for k, v in chosen.items()}))
    return out
