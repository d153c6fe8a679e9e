"""What makes a record look like attacker tradecraft: forwarding outside the organisation, hiding rules,
consent/credential/app-role events and the apps they concern, SAML-token anomalies, PowerShell sign-ins.

Operation names compare case-insensitively without the trailing period Entra adds ("Consent to
application."), as the service's own -Operations filter does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mia_bridge.investigate.plan import AAD_POWERSHELL_APP_ID, EXO_POWERSHELL_APP_ID, INBOX_RULE_OPERATIONS
from mia_bridge.records import fields as af
from mia_bridge.records.fields import operation_of

Record = Mapping[str, Any]

FORWARD_KEYS = ("ForwardTo", "ForwardAsAttachmentTo", "RedirectTo")
MAILBOX_FORWARD_KEYS = ("ForwardingSmtpAddress", "ForwardingAddress")
HIDING_FOLDERS = ("rss", "conversation history", "archive", "junk", "deleted items")
CONSENT_OPS = {"consent to application", "add oauth2permissiongrant", "add delegated permission grant"}
CREDENTIAL_OPS = {
    "add service principal credentials", "update application – certificates and secrets management",
    "update application - certificates and secrets management",
}  # fmt: skip
APP_ROLE_OPS = {"add app role assignment", "add app role assignment to service principal"}
APP_CHANGE_OPS = {"update application", "update service principal"}
FEDERATION_OPS = {"set domain authentication", "set federation settings on domain"}
LOGIN_OPS = {"userloggedin", "userloginfailed", "mailboxlogin"}
INBOX_RULE_OPS = {o.lower() for o in INBOX_RULE_OPERATIONS}


def is_external(address: str, tenant_domains: set[str]) -> bool:
    text = address.strip().lower()
    if text.startswith("smtp:"):
        text = text[5:]
    if "@" not in text:
        return False  # a mailbox name or alias inside the organisation
    domain = text.rsplit("@", 1)[1].strip(" >]\"'")
    return not any(domain == d or domain.endswith("." + d) for d in tenant_domains)


_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def addresses(value: str) -> list[str]:
    """SMTP addresses anywhere in a value (lists, "Name <a@b>", "smtp:a@b", rule-action JSON), in order, once.

    Recipients given as a mailbox name or alias (no ``@``) are inside the organisation.
    """
    return list(dict.fromkeys(_EMAIL.findall(value)))


def inbox_rule_forwarding(record: Record, tenant_domains: set[str]) -> tuple[list[str], list[str]]:
    """(external forward targets, hiding actions) of an inbox-rule record."""
    params = af.parameters(record)
    external: list[str] = []
    for key in FORWARD_KEYS:
        for address in addresses(params.get(key, "")):
            if is_external(address, tenant_domains):
                external.append(address)
    hiding = []
    if params.get("DeleteMessage", "").lower() == "true":
        hiding.append("deletes messages")
    if params.get("MarkAsRead", "").lower() == "true":
        hiding.append("marks as read")
    folder = params.get("MoveToFolder", "")
    if folder and any(word in folder.lower() for word in HIDING_FOLDERS):
        hiding.append(f"moves to {folder}")
    if operation_of(record) == "updateinboxrules":  # Outlook's own rule edits: actions in OperationProperties
        actions = " ".join(params.values())
        if "forward" in actions.lower() or "redirect" in actions.lower():
            external.extend(a for a in addresses(actions) if is_external(a, tenant_domains))
        if "delete" in actions.lower() and "deletes messages" not in hiding:
            hiding.append("deletes messages")
    return list(dict.fromkeys(external)), hiding


def mailbox_forwarding(record: Record) -> list[str]:
    params = af.parameters(record)
    targets = [params[k] for k in MAILBOX_FORWARD_KEYS if params.get(k)]
    return [t for t in targets if t.strip() and t.strip().lower() not in {"$null", "null"}]


def app_ids_of(record: Record, known_apps: Mapping[str, str]) -> set[str]:
    """AppIds a directory record is about (Target/ModifiedProperties GUIDs mapped through the SP list)."""
    found = set()
    for guid in af.guids_in([record.get("Target"), record.get("ModifiedProperties"), record.get("ObjectId")]):
        if guid in known_apps:
            found.add(known_apps[guid])
    return found


def app_index(service_principals: Sequence[Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """(any id -> AppId, AppId -> display name) from service principal objects."""
    to_app: dict[str, str] = {}
    names: dict[str, str] = {}
    for sp in service_principals:
        app_id = str(sp.get("AppId") or "").lower()
        if not app_id:
            continue
        to_app[app_id] = app_id
        if sp.get("Id"):
            to_app[str(sp["Id"]).lower()] = app_id
        names[app_id] = str(sp.get("DisplayName") or app_id)
    return to_app, names


def saml_flagged(record: Record, flagged: set[str]) -> bool:
    user = af.user_of(record)
    if "@" not in user or user.rsplit("@", 1)[1] not in flagged:
        return False
    extended = af.name_values(record.get("ExtendedProperties"))
    return extended.get("UserAuthenticationMethod") == "16457" or "16457" in str(record.get("ExtendedProperties"))


def is_powershell(record: Record) -> bool:
    text = " ".join(str(record.get(k) or "") for k in ("ClientInfoString", "ApplicationId", "AppId", "UserAgent"))
    text += " " + str(record.get("ExtendedProperties") or "")
    lowered = text.lower()
    return any(m in lowered for m in ("powershell", "winrm", EXO_POWERSHELL_APP_ID, AAD_POWERSHELL_APP_ID))
