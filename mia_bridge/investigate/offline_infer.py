"""What the tenant would have said, inferred from the exports' records (and said so): the organisation's
domains, the federated domains, the applications; and the period the exports cover.

Without the directory (``Get-MgDomain``, ``Get-MgServicePrincipal``) these are what the records show; the
investigation records how each was obtained (``inferred`` in investigation.json) and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mia_bridge.investigate.indicators import FEDERATION_OPS
from mia_bridge.investigate.offline import ExportSet
from mia_bridge.investigate.plan import GUID_RE
from mia_bridge.records import fields as af
from mia_bridge.records.fields import operation_of


def infer_tenant_domains(exports: ExportSet) -> list[str]:
    """The organisation's domains as the mailbox owners show them (``MailboxOwnerUPN``, else the user of a
    mailbox access or login), most common first."""
    return [domain for domain, _ in exports.owner_domains.most_common()]


def federated_domains(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Domains the records show as federated: the targets of federation and domain-authentication changes.

    Without the tenant's domain list (``Get-MgDomain``) their MFA setting is unknown; Sparrow's row 6
    keeps SAML logins of federated domains without MFA, so these are treated as such (and the report says so).
    """
    out: dict[str, None] = {}
    for record in records:
        if operation_of(record) not in FEDERATION_OPS:
            continue
        for target in af.as_list(record.get("Target")):
            name = str(target.get("ID") or "") if isinstance(target, Mapping) else ""
            if "." in name and "@" not in name and " " not in name:
                out[name.lower()] = None
        obj = str(record.get("ObjectId") or "")
        if "." in obj and "@" not in obj and " " not in obj:
            out[obj.lower()] = None
    return list(out)


def infer_service_principals(records: Iterable[Mapping[str, Any]], acting: set[str]) -> list[dict[str, Any]]:
    """Applications as the records show them: every app acting in a record (AppId, ClientAppId, ...), with
    the display name and service-principal object ids that directory events list next to its AppId.

    A directory event's ``Target`` names the object (an id), its display name (Type 1) and, for consent and
    app-role events, the AppId too; an object id listed beside a known AppId is taken as that app's service
    principal. Only ``AppId``, ``Id`` and ``DisplayName`` are filled, in the shape of ``Get-MgServicePrincipal``.
    """
    names: dict[str, str] = {}
    objects: dict[str, str] = {}
    for record in records:
        targets = [t for t in af.as_list(record.get("Target")) if isinstance(t, Mapping)]
        ids = [str(t.get("ID") or "").lower() for t in targets]
        apps = [i for i in ids if i in acting]
        if len(set(apps)) != 1:
            continue
        app = apps[0]
        label = next((str(t.get("ID")) for t in targets if t.get("Type") == 1 and t.get("ID")), "")
        if label and app not in names:
            names[app] = label
        for other in af.guids_in(ids):
            if other != app and other not in acting:
                objects.setdefault(other, app)
    principals = []
    for app in sorted(acting):
        if not GUID_RE.match(app):
            continue  # not an application id
        principals.append({"AppId": app, "DisplayName": names.get(app, ""), "ServicePrincipalType": "Application"})
    for obj, app in sorted(objects.items()):
        principals.append({"AppId": app, "Id": obj, "DisplayName": names.get(app, ""), "ServicePrincipalType": ""})
    return principals


def default_period(exports: ExportSet) -> tuple[datetime, datetime] | None:
    """Whole days covering the exports' records (as the demo's period covers the simulated tenant's)."""
    first, last = exports.first, exports.last
    if first is None or last is None:
        return None
    begin = first.replace(hour=0, minute=0, second=0, microsecond=0)
    return begin, last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def period_limits(exports: ExportSet, start: datetime, end: datetime) -> list[str]:
    """What of the requested period the exports do not cover (they cannot tell what happened then)."""
    first, last = exports.first, exports.last
    if first is None or last is None:
        return ["The exports hold no dated record: no period can be answered from them."]
    out = []
    if start < first - timedelta(days=1):
        out.append(f"The exports begin at {first:%Y-%m-%d %H:%M} UTC: activity from {start:%Y-%m-%d %H:%M} until "
                   "then cannot be seen in them (not 'nothing happened').")
    if end > last + timedelta(days=1):
        out.append(f"The exports end at {last:%Y-%m-%d %H:%M} UTC: activity from then until {end:%Y-%m-%d %H:%M} "
                   "cannot be seen in them (not 'nothing happened').")
    return out
