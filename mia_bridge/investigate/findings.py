"""Attacker-action findings, each with a severity and the evidence rows behind it.

Attribution (``attribution.py``) says which IPs, apps and accounts are the attacker's. Then every
inbox-rule, forwarding, permission, consent/credential/app-role, PowerShell, SAML and federation
record is a finding: in attacker context it is attacker activity (high/critical); otherwise it is
listed "for review" (info/low) and never counted as attacker activity. MailItemsAccessed in attacker
context gives the messages read (bind) and folders synced (sync: the whole folder is assumed read); a
throttled record means 24 hours of unaudited access. Attacker-context records no specific rule covers
become one finding per operation, so nothing the attacker did is left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mia_bridge.investigate.attribution import AttackerContext, attribute
from mia_bridge.investigate.indicators import (
    APP_CHANGE_OPS,
    APP_ROLE_OPS,
    CONSENT_OPS,
    CREDENTIAL_OPS,
    FEDERATION_OPS,
    INBOX_RULE_OPS,
    LOGIN_OPS,
    app_ids_of,
    app_index,
    inbox_rule_forwarding,
    is_external,
    is_powershell,
    mailbox_forwarding,
    saml_flagged,
)
from mia_bridge.investigate.plan import PERMISSION_OPERATIONS
from mia_bridge.investigate.record_views import UniqueRecords, is_streamed, without_mail_items
from mia_bridge.records import fields as af
from mia_bridge.records.fields import operation_of

Record = Mapping[str, Any]

EVIDENCE_COLUMNS = ["CreationTime", "Operation", "UserId", "ClientIP", "Target", "Detail", "Id"]
# One row per MailItemsAccessed record; the message ids themselves are listed once each in ``exposed``.
MAIL_COLUMNS = ["CreationTime", "Mailbox", "Access", "Folders", "Messages", "ClientIP", "App", "Id"]
THROTTLE_WINDOW = timedelta(hours=24)

__all__ = ["AttackerContext", "ExposedMessage", "Finding", "FindingInputs", "FindingSet", "build_findings"]


@dataclass
class Finding:
    key: str
    severity: str  # critical / high / medium / low / info
    category: str
    title: str
    summary: str
    attacker: bool  # attributed to the attacker (False: listed for review)
    record_ids: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=lambda: list(EVIDENCE_COLUMNS))
    rows: list[dict[str, str]] = field(default_factory=list)
    first_seen: datetime | None = None
    message_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "severity": self.severity,
            "category": self.category,
            "title": self.title,
            "summary": self.summary,
            "attacker": self.attacker,
            "record_ids": self.record_ids,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "message_ids": self.message_ids,
            "rows": self.rows,
        }


@dataclass
class ExposedMessage:
    mailbox: str
    internet_message_id: str
    folder: str
    first_read: datetime | None
    client_ip: str
    app_id: str
    record_id: str
    app_name: str = ""


@dataclass
class FindingSet:
    findings: list[Finding]
    context: AttackerContext
    exposed: list[ExposedMessage]
    synced_folders: dict[str, set[str]]  # mailbox -> folders synced in attacker context
    throttled: dict[str, list[datetime]]  # mailbox -> throttled record times
    app_names: dict[str, str] = field(default_factory=dict)  # AppId -> service principal display name

    def app_label(self, app_id: str) -> str:
        name = self.app_names.get(app_id)
        return f"{name} ({app_id})" if name else app_id

    @property
    def attacker_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.attacker]


@dataclass
class FindingInputs:
    """The collected records (all searches together) and directory data."""

    records: Iterable[Record]  # a list, or a view read from the evidence files on each pass (record_views)
    tenant_domains: set[str]
    service_principals: Sequence[Mapping[str, Any]] = ()
    flagged_saml_domains: set[str] = field(default_factory=set)
    suspicious_ips: Iterable[str] = ()
    suspicious_apps: Iterable[str] = ()
    known_good_ips: Iterable[str] = ()


def _evidence_row(record: Record, detail: str = "", target: str = "") -> dict[str, str]:
    return {
        "CreationTime": str(record.get("CreationTime") or ""),
        "Operation": str(record.get("Operation") or ""),
        "UserId": str(record.get("UserId") or ""),
        "ClientIP": af.record_ip(record),
        "Target": target or str(record.get("ObjectId") or ""),
        "Detail": detail,
        "Id": af.record_id(record),
    }


def build_findings(inputs: FindingInputs) -> FindingSet:
    """Attribute (see ``attribution``), then list the findings.

    MailItemsAccessed records (millions on a large case) are read in a few passes and never held whole when
    ``inputs.records`` streams them; the other records, a few thousand, are held for the findings that read
    only them. What is held of the mail: the attacker's own records, and the throttled records' rows."""
    records: Iterable[Record]
    if isinstance(inputs.records, UniqueRecords):
        records = inputs.records
    elif is_streamed(inputs.records):
        records = UniqueRecords([inputs.records])
    else:
        records = af.unique_by_id(inputs.records)
    other = without_mail_items(records)
    domains = {d.lower() for d in inputs.tenant_domains}
    to_app, app_names = app_index(inputs.service_principals)
    context = attribute(
        records,
        domains=domains,
        flagged_saml_domains=inputs.flagged_saml_domains,
        to_app=to_app,
        suspicious_ips=inputs.suspicious_ips,
        suspicious_apps=inputs.suspicious_apps,
        known_good_ips=inputs.known_good_ips,
        seeds=other,
    )

    findings: list[Finding] = []
    findings += _rule_and_forwarding_findings(other, domains, context)
    findings += _permission_findings(other, context)
    findings += _app_findings(other, records, context, to_app, app_names)
    findings += _login_findings(other, context, inputs.flagged_saml_domains)
    mail_findings, exposed, synced, throttled = _mail_findings(records, context, app_names)
    findings += mail_findings
    # every MailItemsAccessed record in attacker context is in its mailbox's finding: only the others can be left
    findings += _other_attacker_activity(other, context, findings)
    return FindingSet(findings, context, exposed, synced, throttled, dict(app_names))


def _other_attacker_activity(
    records: Sequence[Record], context: AttackerContext, findings: Sequence[Finding]
) -> list[Finding]:
    """Attacker-context records no other finding covers, one finding per operation (nothing is left out)."""
    covered = {rid for f in findings if f.attacker for rid in f.record_ids}
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if context.matches(record) and af.record_id(record) not in covered:
            groups[str(record.get("Operation") or "?")].append(record)
    out = []
    for operation, group in sorted(groups.items()):
        users = sorted({af.user_of(r) for r in group})
        ips = sorted({af.record_ip(r) for r in group} - {""})
        title = f"{operation} from an attacker context ({len(group)} record(s))"
        summary = f"By {', '.join(users[:5])} from {', '.join(ips[:5]) or '?'}."
        finding = Finding(f"other:{operation}", "high", "other", title, summary, True)
        detail_keys = ("ClientInfoString", "SourceFileName", "ApplicationId", "AppId")
        finding.rows = [_evidence_row(r, next((str(r[k]) for k in detail_keys if r.get(k)), "")) for r in group]
        out.append(_finish(finding, group))
    return out




def _finish(finding: Finding, records: Sequence[Record]) -> Finding:
    finding.record_ids = [af.record_id(r) for r in records]
    times = [t for t in (af.record_time(r) for r in records) if t]
    finding.first_seen = min(times) if times else None
    return finding


def _rule_and_forwarding_findings(records: Sequence[Record], domains: set[str], ctx: AttackerContext) -> list[Finding]:
    out = []
    rule_ops = INBOX_RULE_OPS
    for record in records:
        op = operation_of(record)
        attacker = ctx.matches(record)
        if op in rule_ops:
            external, hiding = inbox_rule_forwarding(record, domains)
            params = af.parameters(record)
            rule = params.get("Name") or params.get("RuleName") or params.get("Identity") or "(unnamed rule)"
            detail = "; ".join([*(f"forwards to {a}" for a in external), *hiding]) or "rule created/changed"
            if external:
                severity, title = "critical", f"Inbox rule '{rule}' forwards mail outside the organisation"
            elif attacker:
                severity, title = "high", f"Inbox rule '{rule}' created from an attacker context"
            else:
                severity, title = ("low" if hiding else "info"), f"Inbox rule '{rule}' changed (for review)"
            attacker = attacker or bool(external)
            who = f"{record.get('Operation')} by {record.get('UserId')} from {af.record_ip(record) or '?'}"
            summary = f"{who}: {detail}."
            finding = Finding(f"rule:{af.record_id(record)}", severity, "inbox-rule", title, summary, attacker)
            target = params.get("Mailbox") or params.get("Identity") or str(record.get("ObjectId") or rule)
            finding.rows.append(_evidence_row(record, detail, target))
            out.append(_finish(finding, [record]))
        elif op == "set-mailbox":
            targets = mailbox_forwarding(record)
            if not targets:
                continue
            external = [t for t in targets if is_external(t, domains)]
            mailbox = af.parameters(record).get("Identity") or str(record.get("ObjectId") or "")
            if external:
                severity, title = "critical", f"Mailbox {mailbox} forwards all mail outside the organisation"
            elif attacker:
                severity, title = "high", f"Mailbox {mailbox} forwarding set from an attacker context"
            else:
                severity, title = "info", f"Mailbox {mailbox} forwarding changed (for review)"
            attacker = attacker or bool(external)
            detail = "forwarding to " + ", ".join(targets)
            summary = f"Set-Mailbox by {record.get('UserId')} from {af.record_ip(record) or '?'}: {detail}."
            finding = Finding(f"fwd:{af.record_id(record)}", severity, "forwarding", title, summary, attacker)
            finding.rows.append(_evidence_row(record, detail, mailbox))
            out.append(_finish(finding, [record]))
    return out


def _permission_findings(records: Sequence[Record], ctx: AttackerContext) -> list[Finding]:
    out = []
    ops = {o.lower() for o in PERMISSION_OPERATIONS}
    for record in records:
        if operation_of(record) not in ops:
            continue
        params = af.parameters(record)
        mailbox = params.get("Identity") or str(record.get("ObjectId") or "")
        grantee = params.get("User") or params.get("Trustee") or "?"
        rights = params.get("AccessRights") or "?"
        attacker = ctx.matches(record)
        severity = "high" if attacker else "info"
        suffix = "" if attacker else " (for review)"
        title = f"{grantee} granted {rights} on {mailbox}{suffix}"
        summary = f"{record.get('Operation')} by {record.get('UserId')} from {af.record_ip(record) or '?'}."
        finding = Finding(f"perm:{af.record_id(record)}", severity, "mailbox-permission", title, summary, attacker)
        finding.rows.append(_evidence_row(record, f"{grantee}: {rights}", mailbox))
        out.append(_finish(finding, [record]))
    return out


def _app_findings(
    records: Sequence[Record], mail: Iterable[Record], ctx: AttackerContext, to_app: Mapping[str, str],
    names: Mapping[str, str],
) -> list[Finding]:
    """Consent, credential, app-role and registration events per app (``records``: no MailItemsAccessed),
    joined to the mail the app read later (counted in one pass over ``mail``, no record held)."""
    kinds = (
        (CONSENT_OPS, "app-consent", "consent granted"),
        (CREDENTIAL_OPS, "app-credential", "credentials added"),
        (APP_ROLE_OPS, "app-role", "application permission (app role) assigned"),
        (APP_CHANGE_OPS, "app-change", "registration or service principal changed"),
    )
    groups: dict[tuple[str, str, bool], list[Record]] = defaultdict(list)
    for record in records:
        op = operation_of(record)
        for ops, category, _ in kinds:
            if op in ops:
                for app in sorted(app_ids_of(record, to_app) or {"?"}):
                    attacker = ctx.matches(record) or app in ctx.apps
                    groups[(category, app, attacker)].append(record)
    verbs = {category: verb for _, category, verb in kinds}
    firsts: dict[tuple[str, str, bool], datetime | None] = {}
    for key, group in groups.items():
        times = [t for t in (af.record_time(r) for r in group) if t]
        firsts[key] = min(times) if times else None
    later_reads, later_mailboxes = _later_mail_reads(mail, firsts)
    out = []
    for (category, app, attacker), group in sorted(groups.items()):
        reads, mailboxes = later_reads[(category, app, attacker)], sorted(later_mailboxes[(category, app, attacker)])
        name = names.get(app, app)
        verb = verbs[category]
        if attacker and reads:
            severity, title = "critical", f"App '{name}': {verb}, then it read mail of {len(mailboxes)} mailbox(es)"
        elif attacker:
            severity, title = "high", f"App '{name}': {verb} from an attacker context"
        else:
            severity, title = "info", f"App '{name}': {verb} (for review)"
        actors = sorted({f"{r.get('UserId')} from {af.record_ip(r) or '?'}" for r in group})
        summary = f"{len(group)} event(s) by {'; '.join(actors[:3])}. AppId {app}; {reads} later MailItemsAccessed"
        summary += f" record(s){' on ' + ', '.join(mailboxes[:5]) if mailboxes else ''}."
        finding = Finding(f"{category}:{app}:{attacker}", severity, category, title, summary, attacker)
        finding.rows = [_evidence_row(r, _modified_summary(r), name) for r in group]
        out.append(_finish(finding, group))
    return out


def _later_mail_reads(
    mail: Iterable[Record], firsts: Mapping[tuple[str, str, bool], datetime | None]
) -> tuple[dict[tuple[str, str, bool], int], dict[tuple[str, str, bool], set[str]]]:
    """For each (category, app, attacker) group, the app's MailItemsAccessed records at or after the group's
    first event (a record without a time counts): how many, and their mailboxes. One pass over ``mail``."""
    reads: dict[tuple[str, str, bool], int] = dict.fromkeys(firsts, 0)
    mailboxes: dict[tuple[str, str, bool], set[str]] = {key: set() for key in firsts}
    by_app: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for key in firsts:
        by_app[key[1]].append(key)
    if not by_app:
        return reads, mailboxes
    for record in mail:
        if operation_of(record) != "mailitemsaccessed":
            continue
        apps = af.record_apps(record) & by_app.keys()
        if not apps:
            continue
        when = af.record_time(record)
        for app in apps:
            for key in by_app[app]:
                first = firsts[key]
                if first is None or (when or first) >= first:
                    reads[key] += 1
                    mailboxes[key].add(af.mailbox_of(record))
    return reads, mailboxes


def _modified_summary(record: Record) -> str:
    parts = []
    for item in af.as_list(record.get("ModifiedProperties")):
        if isinstance(item, Mapping) and item.get("Name"):
            parts.append(f"{item['Name']}={str(item.get('NewValue') or '')[:80]}")
    return "; ".join(parts)


def _login_findings(records: Sequence[Record], ctx: AttackerContext, flagged: set[str]) -> list[Finding]:
    """PowerShell, SAML-anomaly and federation events (Sparrow's indicators) grouped per kind and context."""
    groups: dict[tuple[str, bool], list[Record]] = defaultdict(list)
    for record in records:
        op = operation_of(record)
        attacker = ctx.matches(record)
        if op in FEDERATION_OPS:
            groups[("federation", True)].append(record)
        elif op in {"userloggedin", "userloginfailed"} and saml_flagged(record, flagged):
            groups[("saml", True)].append(record)
        elif op in LOGIN_OPS and is_powershell(record):
            groups[("powershell", attacker)].append(record)
    titles = {
        "federation": ("high", "Domain authentication or federation settings changed"),
        "saml": ("high", "SAML token logins (16457) for a federated domain without MFA"),
        "powershell": ("high", "PowerShell sign-ins from an attacker context"),
    }
    out = []
    for (kind, attacker), group in sorted(groups.items()):
        severity, title = titles[kind]
        if not attacker:
            severity, title = "info", "PowerShell sign-ins (for review)"
        users = sorted({af.user_of(r) for r in group})
        summary = f"{len(group)} record(s) by {', '.join(users[:5])}{' …' if len(users) > 5 else ''}."
        finding = Finding(f"{kind}:{'attacker' if attacker else 'review'}", severity, kind, title, summary, attacker)
        finding.rows = [_evidence_row(r, str(r.get("ClientInfoString") or r.get("ApplicationId") or "")) for r in group]
        out.append(_finish(finding, group))
    return out


def _acting_app(record: Record, ctx: AttackerContext) -> str:
    """The application that read: an attacker app if one acted, else the client app, else the resource."""
    attacker_apps = sorted(af.record_apps(record) & ctx.apps)
    if attacker_apps:
        return attacker_apps[0]
    return str(record.get("ClientAppId") or record.get("AppId") or "").lower()


def _mail_findings(
    records: Iterable[Record], ctx: AttackerContext, names: Mapping[str, str]
) -> tuple[list[Finding], list[ExposedMessage], dict[str, set[str]], dict[str, list[datetime]]]:
    """Messages read and folders synced in attacker context, per mailbox; throttled mailboxes. One pass over
    ``records``: what it keeps is the attacker's records and the throttled records' evidence rows."""
    exposed: dict[tuple[str, str], ExposedMessage] = {}
    synced: dict[str, set[str]] = defaultdict(set)
    throttled: dict[str, list[datetime]] = defaultdict(list)
    throttled_rows: dict[str, list[tuple[dict[str, str], str, datetime | None]]] = defaultdict(list)
    per_mailbox: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if operation_of(record) != "mailitemsaccessed":
            continue
        mailbox = af.mailbox_of(record)
        when = af.record_time(record)
        if af.is_throttled(record):
            if when:
                throttled[mailbox].append(when)
            throttled_rows[mailbox].append((_evidence_row(record, "IsThrottled=True", mailbox), af.record_id(record),
                                            when))  # fmt: skip
        if not ctx.matches(record):
            continue
        per_mailbox[mailbox].append(record)
        if af.mail_access_type(record).lower() == "sync":
            synced[mailbox].update(af.synced_folders(record))
        for folder, message_id in af.accessed_messages(record):
            key = (mailbox, message_id)
            if key not in exposed:
                app = _acting_app(record, ctx)
                exposed[key] = ExposedMessage(mailbox, message_id, folder, when, af.record_ip(record), app,
                                              af.record_id(record), names.get(app, ""))  # fmt: skip
            else:
                earlier = exposed[key].first_read
                if when is not None and earlier is not None and when < earlier:
                    exposed[key].first_read = when
    out = []
    for mailbox, group in sorted(per_mailbox.items()):
        messages = [m for m in exposed.values() if m.mailbox == mailbox]
        folders = sorted(synced.get(mailbox, set()))
        ips = sorted({af.record_ip(r) for r in group} - {""})
        apps = sorted({names.get(a, a) for r in group for a in af.record_apps(r)})
        parts = [f"{len(messages)} message(s) read (bind)"]
        if folders:
            parts.append(f"folders synced: {', '.join(folders)} (assume every item in them was read)")
        title = f"Attacker read mail of {mailbox}: " + "; ".join(parts)
        summary = f"From {', '.join(ips) or '?'} via {', '.join(apps) or '?'}; {len(group)} MailItemsAccessed records."
        finding = Finding(f"mail:{mailbox}", "critical", "mail-access", title, summary, True)
        finding.columns = list(MAIL_COLUMNS)
        finding.message_ids = sorted(m.internet_message_id for m in messages)
        for record in sorted(group, key=lambda r: str(r.get("CreationTime") or "")):
            items = list(af.accessed_messages(record))
            folders = sorted({folder for folder, _ in items}) or af.synced_folders(record)
            app = _acting_app(record, ctx)
            finding.rows.append({
                "CreationTime": str(record.get("CreationTime") or ""), "Mailbox": mailbox,
                "Access": af.mail_access_type(record) or "?", "Folders": ", ".join(folders),
                "Messages": str(len(items)) if items else "whole folder (sync)" if folders else "0",
                "ClientIP": af.record_ip(record), "App": names.get(app, app), "Id": af.record_id(record),
            })  # fmt: skip
        out.append(_finish(finding, group))
    for mailbox, times in sorted(throttled.items()):
        times.sort()
        title = f"MailItemsAccessed throttled for {mailbox}: access for 24 h afterwards was not audited"
        summary = (
            f"{len(times)} throttled record(s), first {times[0]:%Y-%m-%d %H:%M} UTC. Per Microsoft guidance "
            "(2020–2023), assume all mail in the mailbox was exposed for 24 hours after each."
        )
        attacker = mailbox in ctx.users or mailbox in per_mailbox
        finding = Finding(f"throttled:{mailbox}", "high" if attacker else "medium", "throttling", title, summary,
                          attacker)  # fmt: skip
        rows = throttled_rows[mailbox]  # as _finish: the records' ids, the first time among them
        finding.rows = [row for row, _, _ in rows]
        finding.record_ids = [rid for _, rid, _ in rows]
        finding.first_seen = min((when for _, _, when in rows if when), default=None)
        out.append(finding)
    listed = sorted(exposed.values(), key=lambda m: (m.mailbox, m.internet_message_id))
    return out, listed, dict(synced), dict(throttled)
