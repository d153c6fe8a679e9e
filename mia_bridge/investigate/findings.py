"""Attacker-action findings, each with a severity and the evidence rows behind it.

How activity is attributed to the attacker (no ground truth is used, only the records):

1. Seeds: ``--suspicious-ip`` / ``--app-id`` / analysis leads, plus events that are malicious on
   their own — mail forwarded outside the organisation (inbox rule or mailbox forwarding), a
   federation change on a domain, a SAML-token (16457) login for a federated domain without MFA.
2. Pivot: the IPs those seed events came from are attacker IPs; an app granted consent,
   credentials or an app role from an attacker IP is an attacker app; users acting from attacker IPs
   are compromised accounts.
3. Every inbox-rule, forwarding, permission, consent/credential and PowerShell record is then a
   finding. In attacker context it is attacker activity (high/critical); otherwise it is listed as
   "for review" (low/info) and never counted as attacker activity. ``--known-good-ip`` addresses are
   never attacker context.
4. MailItemsAccessed in attacker context (IP or app) gives the messages read (bind) and folders synced
   (sync, whole folder assumed read); a throttled record means 24 hours of unaudited access.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mia_bridge.investigate import audit_fields as af
from mia_bridge.investigate.plan import INBOX_RULE_OPERATIONS, PERMISSION_OPERATIONS

Record = Mapping[str, Any]

_FORWARD_KEYS = ("ForwardTo", "ForwardAsAttachmentTo", "RedirectTo")
_MAILBOX_FORWARD_KEYS = ("ForwardingSmtpAddress", "ForwardingAddress")
_HIDING_FOLDERS = ("rss", "conversation history", "archive", "junk", "deleted items")
_CONSENT_OPS = {"consent to application", "add oauth2permissiongrant", "add delegated permission grant"}
_CREDENTIAL_OPS = {
    "add service principal credentials", "update application – certificates and secrets management",
    "update application - certificates and secrets management",
}  # fmt: skip
_APP_ROLE_OPS = {"add app role assignment", "add app role assignment to service principal"}
_APP_CHANGE_OPS = {"update application", "update service principal"}
_FEDERATION_OPS = {"set domain authentication", "set federation settings on domain"}
_LOGIN_OPS = {"userloggedin", "userloginfailed", "mailboxlogin"}
EVIDENCE_COLUMNS = ["CreationTime", "Operation", "UserId", "ClientIP", "Target", "Detail", "Id"]
MAIL_COLUMNS = ["CreationTime", "Mailbox", "Access", "Folder", "InternetMessageId", "ClientIP", "AppId", "Id"]
THROTTLE_WINDOW = timedelta(hours=24)


def _op(record: Record) -> str:
    return str(record.get("Operation") or "").strip().rstrip(".").strip().lower()


@dataclass
class AttackerContext:
    """Indicators the findings are attributed with."""

    ips: set[str] = field(default_factory=set)
    apps: set[str] = field(default_factory=set)
    known_good_ips: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)  # compromised accounts (acted from attacker IPs)
    reasons: dict[str, str] = field(default_factory=dict)  # indicator -> why

    def add_ip(self, ip: str, why: str) -> bool:
        ip = ip.lower()
        if not ip or ip in self.known_good_ips or ip in self.ips:
            return False
        self.ips.add(ip)
        self.reasons.setdefault(ip, why)
        return True

    def add_app(self, app: str, why: str) -> bool:
        app = app.lower()
        if not app or app in self.apps:
            return False
        self.apps.add(app)
        self.reasons.setdefault(app, why)
        return True

    def matches(self, record: Record) -> bool:
        ip = af.record_ip(record)
        if ip and ip in self.known_good_ips:
            return False
        return (bool(ip) and ip in self.ips) or bool(af.record_apps(record) & self.apps)


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

    @property
    def attacker_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.attacker]


@dataclass
class FindingInputs:
    """The collected records (all searches together) and directory data."""

    records: Sequence[Record]
    tenant_domains: set[str]
    service_principals: Sequence[Mapping[str, Any]] = ()
    flagged_saml_domains: set[str] = field(default_factory=set)
    suspicious_ips: Iterable[str] = ()
    suspicious_apps: Iterable[str] = ()
    known_good_ips: Iterable[str] = ()


def _is_external(address: str, tenant_domains: set[str]) -> bool:
    text = address.strip().lower()
    if text.startswith("smtp:"):
        text = text[5:]
    if "@" not in text:
        return False  # a mailbox name or alias inside the organisation
    domain = text.rsplit("@", 1)[1].strip(" >]\"'")
    return not any(domain == d or domain.endswith("." + d) for d in tenant_domains)


def _addresses(value: str) -> list[str]:
    parts = value.replace(";", ",").split(",")
    return [p.strip().strip("[]\"' ") for p in parts if p.strip().strip("[]\"' ")]


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


def _inbox_rule_forwarding(record: Record, tenant_domains: set[str]) -> tuple[list[str], list[str]]:
    """(external forward targets, hiding actions) of an inbox-rule record."""
    params = af.parameters(record)
    external: list[str] = []
    for key in _FORWARD_KEYS:
        for address in _addresses(params.get(key, "")):
            if _is_external(address, tenant_domains):
                external.append(address)
    hiding = []
    if params.get("DeleteMessage", "").lower() == "true":
        hiding.append("deletes messages")
    if params.get("MarkAsRead", "").lower() == "true":
        hiding.append("marks as read")
    folder = params.get("MoveToFolder", "")
    if folder and any(word in folder.lower() for word in _HIDING_FOLDERS):
        hiding.append(f"moves to {folder}")
    if _op(record) == "updateinboxrules":
        actions = " ".join(params.values()).lower()
        for word in ("forward", "redirect"):
            if word in actions:
                external.extend(a for a in _addresses_in(actions) if _is_external(a, tenant_domains))
        if "delete" in actions:
            hiding.append("deletes messages")
    return external, hiding


def _addresses_in(text: str) -> list[str]:
    return [w.strip("\"'[]{}(),;<>") for w in text.replace(",", " ").split() if "@" in w]


def _mailbox_forwarding(record: Record) -> list[str]:
    params = af.parameters(record)
    targets = [params[k] for k in _MAILBOX_FORWARD_KEYS if params.get(k)]
    return [t for t in targets if t.strip() and t.strip().lower() not in {"$null", "null"}]


def _app_ids_of(record: Record, known_apps: Mapping[str, str]) -> set[str]:
    """AppIds a directory record is about (Target/ModifiedProperties GUIDs mapped through the SP list)."""
    found = set()
    for guid in af.guids_in([record.get("Target"), record.get("ModifiedProperties"), record.get("ObjectId")]):
        if guid in known_apps:
            found.add(known_apps[guid])
    return found


def _app_index(service_principals: Sequence[Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
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


def build_findings(inputs: FindingInputs) -> FindingSet:
    """Attribute, then list findings; see the module docstring for the rules."""
    records = _unique(inputs.records)
    domains = {d.lower() for d in inputs.tenant_domains}
    context = AttackerContext(known_good_ips={ip.lower() for ip in inputs.known_good_ips})
    for ip in inputs.suspicious_ips:
        context.add_ip(ip, "given with --suspicious-ip")
    for app in inputs.suspicious_apps:
        context.add_app(app, "given as suspicious (--app-id or analysis lead)")
    to_app, app_names = _app_index(inputs.service_principals)

    # 1. self-evidently malicious events seed the attacker's IPs
    for record in records:
        op = _op(record)
        ip = af.record_ip(record)
        why = ""
        if op in {o.lower() for o in INBOX_RULE_OPERATIONS}:
            external, _ = _inbox_rule_forwarding(record, domains)
            if external:
                why = f"inbox rule forwarding to {', '.join(external)}"
        elif op == "set-mailbox" and any(_is_external(t, domains) for t in _mailbox_forwarding(record)):
            why = "mailbox forwarding outside the organisation"
        elif op in _FEDERATION_OPS:
            why = "domain federation change"
        elif op in {"userloggedin", "userloginfailed"} and _saml_flagged(record, inputs.flagged_saml_domains):
            why = "SAML token login (16457) for a federated domain without MFA"
        if why and ip:
            context.add_ip(ip, why)
    # 2. pivot: apps touched from attacker IPs, users acting from attacker IPs; then new IPs on the
    #    mailboxes and accounts the attacker is known to be in; then pivot again from those
    _pivot(records, context, to_app, rounds=2)
    if _new_ips_on_compromised(records, context):
        _pivot(records, context, to_app, rounds=1)

    findings: list[Finding] = []
    findings += _rule_and_forwarding_findings(records, domains, context)
    findings += _permission_findings(records, context)
    findings += _app_findings(records, context, to_app, app_names)
    findings += _login_findings(records, context, inputs.flagged_saml_domains)
    mail_findings, exposed, synced, throttled = _mail_findings(records, context, app_names)
    findings += mail_findings
    findings += _other_attacker_activity(records, context, findings)
    return FindingSet(findings, context, exposed, synced, throttled)


def _pivot(records: Sequence[Record], context: AttackerContext, to_app: Mapping[str, str], *, rounds: int) -> None:
    for _ in range(rounds):
        for record in records:
            if not context.matches(record):
                continue
            if _op(record) in _CONSENT_OPS | _CREDENTIAL_OPS | _APP_ROLE_OPS | _APP_CHANGE_OPS:
                for app in _app_ids_of(record, to_app):
                    context.add_app(app, f"{record.get('Operation')} from attacker IP {af.record_ip(record)}")
            user = af.user_of(record)
            if user and "@" in user and af.record_ip(record) in context.ips:
                context.users.add(user)


def _subjects(record: Record) -> set[str]:
    """Accounts/mailboxes a record is about: the mailbox owner, or the actor of a sign-in."""
    subjects = {af.mailbox_of(record)}
    params = af.parameters(record)
    for key in ("Identity", "Mailbox"):
        if "@" in params.get(key, ""):
            subjects.add(params[key].lower())
    return {s for s in subjects if "@" in s}


def _new_ips_on_compromised(records: Sequence[Record], context: AttackerContext) -> bool:
    """IPs first seen on a compromised mailbox or account after the compromise began are the attacker's.

    "Compromised" = an account acting from an attacker IP, or a mailbox the attacker read or changed.
    The baseline is every address the mailbox/account used before the first attacker record; an
    address that only appears afterwards, on those mailboxes only, is attributed (with that reason).
    """
    attacker_records = [r for r in records if context.matches(r)]
    times = [t for t in (af.record_time(r) for r in attacker_records) if t]
    if not times:
        return False
    began = min(times)
    compromised = set(context.users)
    for record in attacker_records:
        compromised |= _subjects(record)
    baseline: dict[str, set[str]] = defaultdict(set)
    later: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # ip -> subject -> ops
    for record in records:
        ip = af.record_ip(record)
        when = af.record_time(record)
        if not ip or when is None:
            continue
        for subject in _subjects(record):
            if when < began:
                baseline[subject].add(ip)
            elif subject in compromised:
                later[ip][subject].add(str(record.get("Operation") or ""))
    added = False
    for ip, subjects in later.items():
        if ip in context.ips or ip in context.known_good_ips:
            continue
        for subject, ops in sorted(subjects.items()):
            if ip not in baseline[subject] and baseline[subject]:
                why = (f"first seen on compromised {subject} after the compromise began "
                       f"({began:%Y-%m-%d %H:%M} UTC): {', '.join(sorted(ops))}")  # fmt: skip
                added |= context.add_ip(ip, why)
                break
    return added


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


def _unique(records: Iterable[Record]) -> list[Record]:
    seen: set[str] = set()
    out = []
    for record in records:
        rid = af.record_id(record)
        if rid and rid in seen:
            continue
        seen.add(rid)
        out.append(record)
    return out


def _saml_flagged(record: Record, flagged: set[str]) -> bool:
    user = af.user_of(record)
    if "@" not in user or user.rsplit("@", 1)[1] not in flagged:
        return False
    extended = af.name_values(record.get("ExtendedProperties"))
    return extended.get("UserAuthenticationMethod") == "16457" or "16457" in str(record.get("ExtendedProperties"))


def _finish(finding: Finding, records: Sequence[Record]) -> Finding:
    finding.record_ids = [af.record_id(r) for r in records]
    times = [t for t in (af.record_time(r) for r in records) if t]
    finding.first_seen = min(times) if times else None
    return finding


def _rule_and_forwarding_findings(records: Sequence[Record], domains: set[str], ctx: AttackerContext) -> list[Finding]:
    out = []
    rule_ops = {o.lower() for o in INBOX_RULE_OPERATIONS}
    for record in records:
        op = _op(record)
        attacker = ctx.matches(record)
        if op in rule_ops:
            external, hiding = _inbox_rule_forwarding(record, domains)
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
            targets = _mailbox_forwarding(record)
            if not targets:
                continue
            external = [t for t in targets if _is_external(t, domains)]
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
        if _op(record) not in ops:
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
    records: Sequence[Record], ctx: AttackerContext, to_app: Mapping[str, str], names: Mapping[str, str]
) -> list[Finding]:
    """Consent, credential, app-role and registration events per app, joined to the mail the app read later."""
    mail_reads: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if _op(record) == "mailitemsaccessed":
            for app in af.record_apps(record):
                mail_reads[app].append(record)
    kinds = (
        (_CONSENT_OPS, "app-consent", "consent granted"),
        (_CREDENTIAL_OPS, "app-credential", "credentials added"),
        (_APP_ROLE_OPS, "app-role", "application permission (app role) assigned"),
        (_APP_CHANGE_OPS, "app-change", "registration or service principal changed"),
    )
    groups: dict[tuple[str, str, bool], list[Record]] = defaultdict(list)
    for record in records:
        op = _op(record)
        for ops, category, _ in kinds:
            if op in ops:
                for app in sorted(_app_ids_of(record, to_app) or {"?"}):
                    attacker = ctx.matches(record) or app in ctx.apps
                    groups[(category, app, attacker)].append(record)
    verbs = {category: verb for _, category, verb in kinds}
    out = []
    for (category, app, attacker), group in sorted(groups.items()):
        times = [t for t in (af.record_time(r) for r in group) if t]
        first = min(times) if times else None
        later = [r for r in mail_reads.get(app, []) if first is None or (af.record_time(r) or first) >= first]
        mailboxes = sorted({af.mailbox_of(r) for r in later})
        name = names.get(app, app)
        verb = verbs[category]
        if attacker and later:
            severity, title = "critical", f"App '{name}': {verb}, then it read mail of {len(mailboxes)} mailbox(es)"
        elif attacker:
            severity, title = "high", f"App '{name}': {verb} from an attacker context"
        else:
            severity, title = "info", f"App '{name}': {verb} (for review)"
        actors = sorted({f"{r.get('UserId')} from {af.record_ip(r) or '?'}" for r in group})
        summary = f"{len(group)} event(s) by {'; '.join(actors[:3])}. AppId {app}; {len(later)} later MailItemsAccessed"
        summary += f" record(s){' on ' + ', '.join(mailboxes[:5]) if mailboxes else ''}."
        finding = Finding(f"{category}:{app}:{attacker}", severity, category, title, summary, attacker)
        finding.rows = [_evidence_row(r, _modified_summary(r), name) for r in group]
        out.append(_finish(finding, group))
    return out


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
        op = _op(record)
        attacker = ctx.matches(record)
        if op in _FEDERATION_OPS:
            groups[("federation", True)].append(record)
        elif op in {"userloggedin", "userloginfailed"} and _saml_flagged(record, flagged):
            groups[("saml", True)].append(record)
        elif op in _LOGIN_OPS and _is_powershell(record):
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


def _is_powershell(record: Record) -> bool:
    from mia_bridge.investigate.plan import AAD_POWERSHELL_APP_ID, EXO_POWERSHELL_APP_ID

    text = " ".join(str(record.get(k) or "") for k in ("ClientInfoString", "ApplicationId", "AppId", "UserAgent"))
    text += " " + str(record.get("ExtendedProperties") or "")
    lowered = text.lower()
    return any(m in lowered for m in ("powershell", "winrm", EXO_POWERSHELL_APP_ID, AAD_POWERSHELL_APP_ID))


def _acting_app(record: Record, ctx: AttackerContext) -> str:
    """The application that read: an attacker app if one acted, else the client app, else the resource."""
    attacker_apps = sorted(af.record_apps(record) & ctx.apps)
    if attacker_apps:
        return attacker_apps[0]
    return str(record.get("ClientAppId") or record.get("AppId") or "").lower()


def _mail_findings(
    records: Sequence[Record], ctx: AttackerContext, names: Mapping[str, str]
) -> tuple[list[Finding], list[ExposedMessage], dict[str, set[str]], dict[str, list[datetime]]]:
    """Messages read and folders synced in attacker context, per mailbox; throttled mailboxes."""
    exposed: dict[tuple[str, str], ExposedMessage] = {}
    synced: dict[str, set[str]] = defaultdict(set)
    throttled: dict[str, list[datetime]] = defaultdict(list)
    per_mailbox: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if _op(record) != "mailitemsaccessed":
            continue
        mailbox = af.mailbox_of(record)
        when = af.record_time(record)
        if af.is_throttled(record) and when:
            throttled[mailbox].append(when)
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
        for record in group:
            access = af.mail_access_type(record) or "?"
            items = list(af.accessed_messages(record))
            base = {"CreationTime": str(record.get("CreationTime") or ""), "Mailbox": mailbox, "Access": access,
                    "ClientIP": af.record_ip(record), "AppId": ",".join(sorted(af.record_apps(record))),
                    "Id": af.record_id(record)}  # fmt: skip
            if items:
                for folder, message_id in items:
                    finding.rows.append({**base, "Folder": folder, "InternetMessageId": message_id})
            else:
                finding.rows.append({**base, "Folder": ", ".join(af.synced_folders(record)), "InternetMessageId": ""})
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
        group = [r for r in records if _op(r) == "mailitemsaccessed" and af.is_throttled(r)
                 and af.mailbox_of(r) == mailbox]  # fmt: skip
        finding.rows = [_evidence_row(r, "IsThrottled=True", mailbox) for r in group]
        out.append(_finish(finding, group))
    listed = sorted(exposed.values(), key=lambda m: (m.mailbox, m.internet_message_id))
    return out, listed, dict(synced), dict(throttled)
