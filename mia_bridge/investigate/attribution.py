"""Who is the attacker? Attribution from the records alone (no ground truth), in three moves.

1. Seeds: ``--suspicious-ip`` / ``--app-id``, plus events malicious on their own — mail forwarded
   outside the organisation (inbox rule or mailbox forwarding), a federation change on a domain, a
   SAML-token (16457) login for a federated domain without MFA.
2. Pivot: an app granted consent, credentials or an app role (or changed) from an attacker IP is an
   attacker app; accounts acting from attacker IPs are compromised.
3. New addresses: an IP first seen on a compromised mailbox or account after the compromise began
   (and never before it) is the attacker's; then pivot once more. ``--known-good-ip`` is never
   attributed. Every indicator keeps the reason it was attributed, for the report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mia_bridge.investigate.indicators import (
    APP_CHANGE_OPS,
    APP_ROLE_OPS,
    CONSENT_OPS,
    CREDENTIAL_OPS,
    FEDERATION_OPS,
    INBOX_RULE_OPS,
    app_ids_of,
    inbox_rule_forwarding,
    is_external,
    mailbox_forwarding,
    saml_flagged,
)
from mia_bridge.records import fields as af
from mia_bridge.records.fields import operation_of

Record = Mapping[str, Any]


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


def attribute(
    records: Iterable[Record],
    *,
    domains: set[str],
    flagged_saml_domains: set[str],
    to_app: Mapping[str, str],
    suspicious_ips: Iterable[str] = (),
    suspicious_apps: Iterable[str] = (),
    known_good_ips: Iterable[str] = (),
    seeds: Iterable[Record] | None = None,
) -> AttackerContext:
    """The attacker's IPs, apps and accounts, each with the reason it was attributed. ``records`` may be read
    from files on each pass (``record_views``): each move is one pass over them. ``seeds``: the records the
    first move reads (default ``records``; the caller may leave out MailItemsAccessed, which seeds nothing)."""
    context = AttackerContext(known_good_ips={ip.lower() for ip in known_good_ips})
    for ip in suspicious_ips:
        context.add_ip(ip, "given with --suspicious-ip")
    for app in suspicious_apps:
        context.add_app(app, "named with --app-id")

    # 1. self-evidently malicious events seed the attacker's IPs
    for record in records if seeds is None else seeds:
        op = operation_of(record)
        ip = af.record_ip(record)
        why = ""
        if op in INBOX_RULE_OPS:
            external, _ = inbox_rule_forwarding(record, domains)
            if external:
                why = f"inbox rule forwarding to {', '.join(external)}"
        elif op == "set-mailbox" and any(is_external(t, domains) for t in mailbox_forwarding(record)):
            why = "mailbox forwarding outside the organisation"
        elif op in FEDERATION_OPS:
            why = "domain federation change"
        elif op in {"userloggedin", "userloginfailed"} and saml_flagged(record, flagged_saml_domains):
            why = "SAML token login (16457) for a federated domain without MFA"
        if why and ip:
            context.add_ip(ip, why)
    # 2. pivot: apps touched from attacker IPs, users acting from attacker IPs; then new IPs on the
    #    mailboxes and accounts the attacker is known to be in; then pivot again from those
    pivot(records, context, to_app, rounds=2)
    if new_ips_on_compromised(records, context):
        pivot(records, context, to_app, rounds=1)
    return context


def pivot(records: Iterable[Record], context: AttackerContext, to_app: Mapping[str, str], *, rounds: int) -> None:
    """Apps consented/credentialed/changed from attacker IPs join the context; so do accounts acting from them."""
    for _ in range(rounds):
        for record in records:
            if not context.matches(record):
                continue
            if operation_of(record) in CONSENT_OPS | CREDENTIAL_OPS | APP_ROLE_OPS | APP_CHANGE_OPS:
                for app in app_ids_of(record, to_app):
                    context.add_app(app, f"{record.get('Operation')} from attacker IP {af.record_ip(record)}")
            user = af.user_of(record)
            if user and "@" in user and af.record_ip(record) in context.ips:
                context.users.add(user)


def subjects_of(record: Record) -> set[str]:
    """Accounts/mailboxes a record is about: the mailbox owner, or the actor of a sign-in."""
    subjects = {af.mailbox_of(record)}
    params = af.parameters(record)
    for key in ("Identity", "Mailbox"):
        if "@" in params.get(key, ""):
            subjects.add(params[key].lower())
    return {s for s in subjects if "@" in s}


def new_ips_on_compromised(records: Iterable[Record], context: AttackerContext) -> bool:
    """IPs first seen on a compromised mailbox or account after the compromise began are the attacker's.

    "Compromised" = an account acting from an attacker IP, or a mailbox the attacker read or changed.
    The baseline is every address the mailbox/account used before the first attacker record; an
    address that only appears afterwards, on those mailboxes only, is attributed (with that reason).
    """
    began: datetime | None = None
    compromised = set(context.users)
    for record in records:  # the attacker's records: when they began, which accounts they are about
        if not context.matches(record):
            continue
        when = af.record_time(record)
        if when is not None and (began is None or when < began):
            began = when
        compromised |= subjects_of(record)
    if began is None:
        return False
    baseline: dict[str, set[str]] = defaultdict(set)
    later: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # ip -> subject -> ops
    for record in records:
        ip = af.record_ip(record)
        when = af.record_time(record)
        if not ip or when is None:
            continue
        for subject in subjects_of(record):
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
