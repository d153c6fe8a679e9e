"""Get-Mailbox / Get-EXOMailbox with the audit settings (AuditEnabled, AuditOwner/Delegate/Admin)."""

from __future__ import annotations

from typing import Any

from mia_bridge.sim.handlers._params import Params, binding_error
from mia_bridge.sim.registry import SimCmdletError, SimObject, cmdlet
from mia_bridge.sim.tenant import TenantSession

MAILBOX_TYPE = ["Microsoft.Exchange.Data.Directory.Management.Mailbox", "System.Object"]
EXO_MAILBOX_TYPE = ["Microsoft.Exchange.Management.RestApiClient.ExoMailbox", "System.Object"]
# Get-EXOMailbox returns this minimum set unless -Properties / -PropertySets ask for more.
EXO_MINIMUM = ("ExternalDirectoryObjectId", "UserPrincipalName", "Alias", "DisplayName", "PrimarySmtpAddress",
               "RecipientTypeDetails", "Identity", "Name", "ExchangeGuid")
PROPERTY_SETS = {
    "minimum": EXO_MINIMUM,
    "audit": ("AuditEnabled", "AuditLogAgeLimit", "AuditOwner", "AuditDelegate", "AuditAdmin", "DefaultAuditSet"),
    "delivery": ("ForwardingSmtpAddress", "DeliverToMailboxAndForward"),
}
DEFAULT_RESULT_SIZE = 1000


def find_mailboxes(session: TenantSession, identity: str | None) -> list[dict[str, Any]]:
    """Mailboxes matching -Identity (UPN, SMTP address, alias, name or GUID); all when None."""
    boxes = session.tenant.directory.mailboxes
    if identity is None:
        return list(boxes)
    key = identity.lower()
    keys = ("UserPrincipalName", "PrimarySmtpAddress", "Alias", "Name", "Identity", "ExchangeGuid",
            "ExternalDirectoryObjectId", "DisplayName")
    return [m for m in boxes if any(str(m.get(k) or "").lower() == key for k in keys)]


def not_found(cmdlet_name: str, identity: str, organization: str) -> SimCmdletError:
    return SimCmdletError(
        f"The operation couldn't be performed because object '{identity}' couldn't be found on "
        f"'{organization.upper().split('.')[0]}.PROD.OUTLOOK.COM'.",
        category="NotSpecified",
        error_id=f"ManagementObjectNotFoundException,{cmdlet_name}",
        exception_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        target=identity,
    )


def _result_size(p: Params) -> int | None:
    raw = p.raw("ResultSize")
    if raw is None:
        return DEFAULT_RESULT_SIZE
    if isinstance(raw, str) and raw.strip().lower() == "unlimited":
        return None
    size = p.integer("ResultSize")
    if size is None or size < 1:
        raise binding_error(p.cmdlet, "Cannot bind parameter 'ResultSize': expected a positive number or 'Unlimited'.",
                            "CannotConvertArgument,ResultSize")
    return size


def _select(session: TenantSession, p: Params) -> list[dict[str, Any]]:
    identity = p.text("Identity")
    boxes = find_mailboxes(session, identity)
    if identity is not None and not boxes:
        raise not_found(p.cmdlet, identity, session.tenant.config.organization)
    kinds = [k.lower() for k in p.texts("RecipientTypeDetails") or []]
    if kinds:
        boxes = [m for m in boxes if str(m["RecipientTypeDetails"]).lower() in kinds]
    size = _result_size(p)
    return boxes if size is None else boxes[:size]


@cmdlet("Get-Mailbox")
def get_mailbox(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-Mailbox", params, ("Identity", "ResultSize", "RecipientTypeDetails", "IncludeInactiveMailbox",
                                       "SoftDeletedMailbox"))
    return [SimObject(list(MAILBOX_TYPE), dict(m)) for m in _select(session, p)]


@cmdlet("Get-EXOMailbox")
def get_exo_mailbox(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-EXOMailbox", params, ("Identity", "ResultSize", "RecipientTypeDetails", "Properties",
                                          "PropertySets", "UserPrincipalName", "PrimarySmtpAddress",
                                          "IncludeInactiveMailbox", "SoftDeletedMailbox"))
    wanted = list(EXO_MINIMUM)
    for name in p.texts("PropertySets") or []:
        if name.lower() == "all":
            wanted = []
            break
        wanted.extend(PROPERTY_SETS.get(name.lower(), ()))
    if wanted:
        wanted.extend(p.texts("Properties") or [])
    out = []
    for box in _select(session, p):
        props = dict(box) if not wanted else {k: box.get(k) for k in wanted if k in box}
        out.append(SimObject(list(EXO_MAILBOX_TYPE), props))
    return out
