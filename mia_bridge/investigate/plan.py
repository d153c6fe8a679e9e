"""What ``mia investigate`` searches: Sparrow's searches (peer-tools.md §1.4, rows 1–10) and ours.

Each search is a ``SearchSpec``: the Search-UnifiedAuditLog filter exactly as Sparrow wrote it, the
Sparrow CSV it feeds and that CSV's column set. Sparrow's one client-side filter (row 6: SAML token
logins, kept only for users of federated domains without MFA) is ``saml_domain_filter``. Searches are
turned into the collector's ``AuditQuery`` with ``to_audit_query``; collection is complete (paged,
windowed, deduplicated), unlike Sparrow's single 5,000-record call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mia_bridge.collect.query import AuditQuery
from mia_bridge.exports.sparrow import app_investigation_path

EXO_POWERSHELL_APP_ID = "a0c73c16-a7e3-4564-9a95-2bdf47383716"  # Exchange Online PowerShell client
AAD_POWERSHELL_APP_ID = "1b730954-1685-4b74-9bfd-dac224a7b894"  # Azure AD PowerShell
SAML_AUTH_VALUE = "16457"  # UserAuthenticationValue of the SAML-token anomaly Sparrow looks for
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Operations our beyond-Sparrow searches use (Exchange admin cmdlets and mailbox actions).
INBOX_RULE_OPERATIONS = ("New-InboxRule", "Set-InboxRule", "UpdateInboxRules")
FORWARDING_OPERATIONS = ("Set-Mailbox",)
PERMISSION_OPERATIONS = (
    "Add-MailboxPermission", "Add-RecipientPermission", "Add-MailboxFolderPermission",
    "Set-MailboxFolderPermission",
)  # fmt: skip
PREMIUM_ONLY_OPERATIONS = ("SearchQueryInitiatedExchange", "Send")  # Audit (Premium) "crucial events"


@dataclass(frozen=True)
class SearchSpec:
    """One audit search: its filter and where its rows go."""

    name: str  # stable key; the evidence file name
    title: str
    operations: tuple[str, ...] = ()
    record_types: tuple[str, ...] = ()
    free_text: str | None = None
    user_ids: tuple[str, ...] = ()
    sparrow_file: str | None = None  # CSV file name relative to the export folder
    workload: str | None = None  # Sparrow column set: AAD, EXO, EXO2, SharePoint
    sparrow_row: str = ""  # row of peer-tools.md §1.4 ("8a"), empty for our own searches
    mail_items: bool = False  # a MailItemsAccessed search (licence policy applies)
    premium_only: bool = False

    def to_audit_query(self, start: datetime, end: datetime) -> AuditQuery:
        return AuditQuery(
            name=self.name,
            start=start,
            end=end,
            operations=self.operations,
            record_types=self.record_types,
            user_ids=self.user_ids,
            free_text=self.free_text,
        )


_AAD = ("AzureActiveDirectory",)
_LOGIN_OPS = ("UserLoggedIn", "UserLoginFailed")

SPARROW_TENANT_SEARCHES: tuple[SearchSpec, ...] = (
    SearchSpec("sparrow-01-domain", "Domain authentication and federation changes",
               ("Set domain authentication", "Set federation settings on domain"), _AAD,
               sparrow_file="Domain_Operations_Export.csv", workload="AAD", sparrow_row="1"),
    SearchSpec("sparrow-02-app-update", "Application updates and credential changes",
               ("Update application", "Update application – Certificates and secrets management"), _AAD,
               sparrow_file="AppUpdate_Operations_Export.csv", workload="AAD", sparrow_row="2"),
    SearchSpec("sparrow-03-service-principal", "Service principal updates and credentials",
               ("Update service principal", "Add service principal credentials"), _AAD,
               sparrow_file="ServicePrincipal_Operations_Export.csv", workload="AAD", sparrow_row="3"),
    SearchSpec("sparrow-04-app-role", "App role assignments (application permissions)",
               ("Add app role assignment",), _AAD,
               sparrow_file="AppRoleAssignment_Operations_Export.csv", workload="AAD", sparrow_row="4"),
    SearchSpec("sparrow-05-consent", "OAuth permission grants and consent",
               ("Add OAuth2PermissionGrant", "Consent to application"), _AAD,
               sparrow_file="Consent_Operations_Export.csv", workload="AAD", sparrow_row="5"),
    SearchSpec("sparrow-07-ps-mailbox", "PowerShell logins to mailboxes", ("MailboxLogin",),
               free_text="Powershell", sparrow_file="PSMailbox_Operations_Export.csv", workload="EXO2",
               sparrow_row="7"),
    SearchSpec("sparrow-08a-ps-exo-app", "Logins by the Exchange Online PowerShell app",
               free_text=EXO_POWERSHELL_APP_ID, sparrow_file="PSLogin_Operations_Export.csv", workload="AAD",
               sparrow_row="8a"),
    SearchSpec("sparrow-08b-ps-aad-app", "Logins by the Azure AD PowerShell app",
               free_text=AAD_POWERSHELL_APP_ID, sparrow_file="PSLogin_Operations_Export.csv", workload="AAD",
               sparrow_row="8b"),
    SearchSpec("sparrow-08c-winrm", "Logins with the WinRM user agent", _LOGIN_OPS, free_text="WinRM",
               sparrow_file="PSLogin_Operations_Export.csv", workload="AAD", sparrow_row="8c"),
)  # fmt: skip

SAML_SEARCH = SearchSpec(
    "sparrow-06-saml", "SAML token logins (16457) for federated domains without MFA", _LOGIN_OPS,
    free_text=SAML_AUTH_VALUE, sparrow_file="SAMLToken_Operations_Export.csv", workload="AAD", sparrow_row="6",
)  # fmt: skip


def app_searches(app_id: str, display_name: str | None) -> tuple[SearchSpec, SearchSpec]:
    """Rows 9 and 10 for one application: mail read (MailItemsAccessed) and files read by it.

    ``display_name`` None is Sparrow's single-app ("One") layout; otherwise the all-apps layout.
    """
    key = app_id.lower()
    mail_file = app_investigation_path(Path(), "MailItems", app_id, display_name).as_posix()
    file_file = app_investigation_path(Path(), "FileItems", app_id, display_name).as_posix()
    return (
        SearchSpec(f"app-{key}-mailitems", f"Mail read by app {display_name or app_id}", ("MailItemsAccessed",),
                   free_text=app_id, sparrow_file=mail_file, workload="EXO", sparrow_row="9", mail_items=True),
        SearchSpec(f"app-{key}-fileitems", f"Files read by app {display_name or app_id}",
                   ("FileAccessed", "FileAccessedExtended"), free_text=app_id, sparrow_file=file_file,
                   workload="SharePoint", sparrow_row="10"),
    )  # fmt: skip


def mailbox_searches(users: Iterable[str]) -> tuple[SearchSpec, ...]:
    """Beyond Sparrow: MailItemsAccessed and mailbox logins (for the users, or everyone), inbox rules,
    forwarding and permission grants, Premium-only crucial events, and the users' sign-ins."""
    user_ids = tuple(users)
    who = ", ".join(user_ids) if user_ids else "all users"
    specs = [
        SearchSpec("mia-mailitemsaccessed", f"MailItemsAccessed for {who}", ("MailItemsAccessed",),
                   user_ids=user_ids, mail_items=True),
        SearchSpec("mia-mailbox-logins", f"Mailbox logins for {who}", ("MailboxLogin",), user_ids=user_ids),
        SearchSpec("mia-mailbox-changes", "Inbox rules, forwarding and mailbox permission grants",
                   (*INBOX_RULE_OPERATIONS, *FORWARDING_OPERATIONS, *PERMISSION_OPERATIONS)),
        SearchSpec("mia-premium-crucial", "Audit (Premium) crucial events: mailbox searches and sends",
                   PREMIUM_ONLY_OPERATIONS, user_ids=user_ids, premium_only=True),
    ]  # fmt: skip
    if user_ids:  # tenant-wide sign-ins would dwarf everything else; the users' own are the context needed
        specs.append(SearchSpec("mia-signins", f"Sign-ins of {who}", ("UserLoggedIn", "UserLoginFailed"),
                                user_ids=user_ids))  # fmt: skip
    return tuple(specs)


def flagged_federated_domains(domains: Iterable[Mapping[str, Any]]) -> list[str]:
    """Federated domains whose federation does not claim MFA (Sparrow: ``SupportsMfa -ne $True``).

    Reads Sparrow's ``SupportsMfa`` where present, else Graph's ``FederatedIdpMfaBehavior``
    (``acceptIfMfaDoneByFederatedIdp`` / ``enforceMfaByFederatedIdp`` count as MFA).
    """
    flagged: list[str] = []
    for domain in domains:
        name = str(domain.get("Id") or domain.get("Name") or "").lower()
        if not name or str(domain.get("AuthenticationType", "")).lower() != "federated":
            continue
        supports = domain.get("SupportsMfa")
        if supports is None:
            behaviour = str(domain.get("FederatedIdpMfaBehavior") or "")
            supports = behaviour in {"acceptIfMfaDoneByFederatedIdp", "enforceMfaByFederatedIdp"}
        if supports is not True:
            flagged.append(name)
    return flagged


def saml_domain_filter(records: Iterable[Mapping[str, Any]], domains: Iterable[str]) -> list[Mapping[str, Any]]:
    """Sparrow's row-6 client-side filter: keep records whose UserId domain is flagged."""
    wanted = {d.lower() for d in domains}
    kept = []
    for record in records:
        user = str(record.get("UserId") or "")
        if "@" in user and user.rsplit("@", 1)[1].lower() in wanted:
            kept.append(record)
    return kept
