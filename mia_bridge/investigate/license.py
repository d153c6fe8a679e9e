"""Licence detection and the four licence policies (exchange-platform-facts.md §2.2, §2.3, §7).

Detection reads two signals: the tenant's SKUs (service plan ``M365_ADVANCED_AUDITING`` = Audit
Premium) and the mailboxes' audit settings (``AuditOwner`` contains ``MailItemsAccessed``).

Policies:
- ``sparrow`` reproduces Sparrow: every MailItemsAccessed search is skipped without E5/G5 (Premium).
- ``detect`` (default) follows today's service: MailItemsAccessed is in Audit (Standard) since 2024, so
  it is searched whenever the mailboxes audit it (or their settings cannot be read); only the
  Premium-only searches are skipped without Premium.
- ``assume-premium`` / ``assume-standard`` skip detection's verdict and take the stated licence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.errors import BridgeError, CommandNotFoundError

ADVANCED_AUDITING_PLAN = "M365_ADVANCED_AUDITING"
ADVANCED_AUDITING_PLAN_ID = "2f442157-a11c-46b9-ae5b-6e39ff4e5849"
MAILITEMSACCESSED = "MailItemsAccessed"
STANDARD_RETENTION_DAYS = 180
PREMIUM_RETENTION_DAYS = 365


class LicensePolicy(StrEnum):
    DETECT = "detect"
    SPARROW = "sparrow"
    ASSUME_PREMIUM = "assume-premium"
    ASSUME_STANDARD = "assume-standard"


@dataclass
class LicenseFacts:
    """What the tenant told us; None where a signal could not be read."""

    premium: bool | None = None
    premium_skus: list[str] = field(default_factory=list)
    sku_error: str = ""
    mailbox_audit: dict[str, bool] = field(default_factory=dict)  # mailbox -> AuditOwner has MailItemsAccessed
    mailbox_error: str = ""

    @property
    def any_mailbox_audits_mia(self) -> bool | None:
        if not self.mailbox_audit:
            return None
        return any(self.mailbox_audit.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "premium": self.premium,
            "premium_skus": self.premium_skus,
            "sku_error": self.sku_error,
            "mailbox_audit": self.mailbox_audit,
            "mailbox_error": self.mailbox_error,
        }


@dataclass
class LicenseDecision:
    """What to search, and why not when not."""

    policy: LicensePolicy
    premium: bool
    search_mail_items: bool
    search_premium_only: bool
    mail_items_reason: str = ""
    premium_reason: str = ""
    retention_days: int = STANDARD_RETENTION_DAYS
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.value,
            "premium": self.premium,
            "search_mail_items": self.search_mail_items,
            "search_premium_only": self.search_premium_only,
            "mail_items_reason": self.mail_items_reason,
            "premium_reason": self.premium_reason,
            "retention_days": self.retention_days,
            "warnings": self.warnings,
        }


def premium_skus(skus: Iterable[Mapping[str, Any]]) -> list[str]:
    """Part numbers of enabled SKUs carrying the Audit Premium service plan."""
    found: list[str] = []
    for sku in skus:
        status = str(sku.get("CapabilityStatus") or "Enabled")
        if status.lower() not in {"enabled", "warning"}:
            continue
        plans = sku.get("ServicePlans") or []
        for plan in plans if isinstance(plans, list) else []:
            if not isinstance(plan, Mapping):
                continue
            name = str(plan.get("ServicePlanName") or "")
            plan_id = str(plan.get("ServicePlanId") or "").lower()
            if name == ADVANCED_AUDITING_PLAN or plan_id == ADVANCED_AUDITING_PLAN_ID:
                found.append(str(sku.get("SkuPartNumber") or sku.get("SkuId") or "?"))
                break
    return found


def mailbox_audits_mail_items(mailbox: Mapping[str, Any]) -> bool:
    owner = mailbox.get("AuditOwner") or []
    if isinstance(owner, str):
        owner = [part.strip() for part in owner.split(",")]
    return any(str(action).strip().lower() == MAILITEMSACCESSED.lower() for action in owner)


def mailbox_name(mailbox: Mapping[str, Any]) -> str:
    for key in ("UserPrincipalName", "PrimarySmtpAddress", "Identity", "Name"):
        if mailbox.get(key):
            return str(mailbox[key]).lower()
    return "?"


def _mailbox_calls(backend: ExoBackend, users: Sequence[str]) -> list[CmdletCall]:
    """Get-EXOMailbox over PowerShell; Get-Mailbox over REST, where client-side cmdlets do not exist."""
    rest = backend.describe().get("backend") == "rest"
    name = "Get-Mailbox" if rest else "Get-EXOMailbox"
    extra: dict[str, Any] = {} if rest else {"Properties": ["AuditOwner", "AuditEnabled"]}
    if users:
        return [CmdletCall(name, {"Identity": user, **extra}) for user in users]
    return [CmdletCall(name, {"ResultSize": "Unlimited", **extra})]


def detect_license(backend: ExoBackend, users: Sequence[str]) -> LicenseFacts:
    """Read SKUs and mailbox audit settings. A failure of either is recorded, not raised."""
    facts = LicenseFacts()
    try:
        result = backend.invoke(CmdletCall("Get-MgSubscribedSku"))
        facts.premium_skus = premium_skus(result.output)
        facts.premium = bool(facts.premium_skus)
    except BridgeError as exc:
        facts.sku_error = exc.message
    try:
        mailboxes: list[dict[str, Any]] = []
        for call in _mailbox_calls(backend, users):
            try:
                mailboxes.extend(backend.invoke(call).output)
            except CommandNotFoundError:
                # Get-EXOMailbox is a client-side cmdlet of the module: an endpoint without it (the admin
                # API's InvokeCommand) serves Get-Mailbox, which returns every property.
                server_side = {k: v for k, v in call.parameters.items() if k != "Properties"}
                mailboxes.extend(backend.invoke(CmdletCall("Get-Mailbox", server_side)).output)
        facts.mailbox_audit = {mailbox_name(m): mailbox_audits_mail_items(m) for m in mailboxes}
    except BridgeError as exc:
        facts.mailbox_error = exc.message
    return facts


def retention_days(policy: LicensePolicy, facts: LicenseFacts) -> int:
    """How far back the audit log reaches under this policy's view of the licence."""
    if policy is LicensePolicy.ASSUME_PREMIUM or (policy is not LicensePolicy.ASSUME_STANDARD and facts.premium):
        return PREMIUM_RETENTION_DAYS
    return STANDARD_RETENTION_DAYS


def decide(
    policy: LicensePolicy, facts: LicenseFacts, *, start: datetime, now: datetime
) -> LicenseDecision:
    """Apply the policy to the facts; also warn when the period reaches past the licence's retention."""
    if policy is LicensePolicy.ASSUME_PREMIUM:
        premium = True
    elif policy is LicensePolicy.ASSUME_STANDARD:
        premium = False
    else:
        premium = bool(facts.premium)
    decision = LicenseDecision(policy, premium, search_mail_items=True, search_premium_only=premium)
    if not premium:
        decision.premium_reason = (
            "Audit (Premium) not present (no M365_ADVANCED_AUDITING service plan)"
            if policy is not LicensePolicy.ASSUME_STANDARD
            else "--license-policy assume-standard"
        )
        if facts.premium is None and policy in (LicensePolicy.DETECT, LicensePolicy.SPARROW):
            unread = facts.sku_error or "no SKU data"
            decision.premium_reason = f"licence could not be read ({unread}); treated as Standard"
        decision.premium_reason += ": Premium-only events (SearchQueryInitiatedExchange, Send) skipped"
    if policy is LicensePolicy.SPARROW and not premium:
        decision.search_mail_items = False
        decision.mail_items_reason = (
            "MailItemsAccessed query will be skipped as it is not present without an E5/G5 license "
            "(--license-policy sparrow reproduces Sparrow; today's service has MailItemsAccessed in Audit Standard)"
        )
    elif policy is LicensePolicy.DETECT and not premium and facts.any_mailbox_audits_mia is False:
        decision.search_mail_items = False
        decision.mail_items_reason = "no mailbox audits MailItemsAccessed (AuditOwner), so there is nothing to search"
    not_audited = sorted(name for name, audits in facts.mailbox_audit.items() if not audits)
    if not_audited and decision.search_mail_items:
        decision.warnings.append(
            f"{len(not_audited)} mailbox(es) do not audit MailItemsAccessed; their mail access is not recorded: "
            + ", ".join(not_audited[:10])
            + (" …" if len(not_audited) > 10 else "")
        )
    if facts.mailbox_error and policy is LicensePolicy.DETECT:
        decision.warnings.append(f"mailbox audit settings unreadable ({facts.mailbox_error}); searched anyway")
    decision.retention_days = PREMIUM_RETENTION_DAYS if premium else STANDARD_RETENTION_DAYS
    oldest = now - timedelta(days=decision.retention_days)
    if start < oldest:
        decision.warnings.append(
            f"the period starts {start:%Y-%m-%d}, before the {decision.retention_days}-day retention of "
            f"Audit ({'Premium' if premium else 'Standard'}) allows ({oldest:%Y-%m-%d}); older records are gone"
        )
    return decision
