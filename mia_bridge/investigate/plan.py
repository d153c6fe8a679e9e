"""What ``mia investigate`` searches: Sparrow's searches (peer-tools.md §1.4, rows 1–10) and ours.

Each search is a ``SearchSpec``: the Search-UnifiedAuditLog filter exactly as Sparrow wrote it, the
Sparrow CSV it feeds and that CSV's column set. Sparrow's one client-side filter (row 6: SAML token
logins, kept only for users of the flagged federated domains) is ``saml_domain_filter``. Searches are
turned into the collector's ``AuditQuery`` with ``to_audit_query``; collection is complete (paged,
windowed, deduplicated), unlike Sparrow's single 5,000-record call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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
    "sparrow-06-saml", "SAML token logins (16457) for federated domains not accepting the IdP MFA", _LOGIN_OPS,
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


# federatedIdpMfaBehavior (learn.microsoft.com/graph/api/resources/internaldomainfederation,
# "federatedIdpMfaBehavior values"): accept = Entra ID accepts MFA done by the federated IdP;
# enforce = it accepts it and sends the user back to the IdP for MFA; reject = it always performs MFA
# itself and rejects the IdP's. Only with accept/enforce is an MFA claim from the IdP expected, so only
# they clear a domain; reject, unknownFutureValue or anything else is flagged. "When
# federatedIdpMfaBehavior is set, Azure AD ignores the SupportsMfa setting"; when it was never set the
# legacy SupportsMfa is honoured (Sparrow's rule: flagged unless SupportsMfa is $True). Graph does not
# return SupportsMfa, so a configuration without either cannot show that the IdP's MFA is accepted
# (the "neither set: accept" default cannot be told apart from SupportsMfa $False): flagged, as Sparrow.
MFA_ACCEPTED_BEHAVIOURS = frozenset({"acceptifmfadonebyfederatedidp", "enforcemfabyfederatedidp"})


def federation_flags(configs: Sequence[Mapping[str, Any]] | None) -> tuple[bool, str]:
    """Whether a federated root domain is flagged, and why, from its federation configuration(s)."""
    if configs is None:
        return True, "federation configuration could not be read"
    if not configs:
        return True, "no federation configuration returned for a federated domain"
    reasons = []
    flagged = False
    for config in configs:
        behaviour = _value(config, "federatedIdpMfaBehavior")
        supports = _value(config, "SupportsMfa")
        if behaviour not in (None, ""):
            bad = str(behaviour).lower() not in MFA_ACCEPTED_BEHAVIOURS
            reasons.append(f"federatedIdpMfaBehavior {behaviour}")
        elif supports is not None:
            bad = supports is not True and str(supports).lower() != "true"
            reasons.append(f"SupportsMfa {supports}")
        else:
            bad = True
            reasons.append("federatedIdpMfaBehavior not set (Entra ID honours the legacy SupportsMfa, not readable)")
        flagged = flagged or bad
    return flagged, "; ".join(reasons)


def _value(config: Mapping[str, Any], name: str) -> Any:
    for key, value in config.items():
        if key.lower() == name.lower():
            return value
    return None


def flagged_federated_domains(
    domains: Iterable[Mapping[str, Any]], federation: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
) -> list[str]:
    """Sparrow's ``$domainsToFlag``: federated root domains whose IdP's MFA is not accepted (see
    ``federation_flags``), then the federated child domains of those roots, in the listing's order.

    ``federation`` maps a root domain (lower case) to its Get-MgDomainFederationConfiguration output; a
    federated root missing from it (not read) is flagged, as the harsher reading.
    """
    federation = federation or {}
    listed = [d for d in domains if str(d.get("Id") or d.get("Name") or "")]
    federated = [d for d in listed if str(d.get("AuthenticationType") or "").lower() == "federated"]
    roots = [d for d in federated if d.get("IsRoot") is not False]
    flagged_roots: list[str] = []
    for domain in roots:
        name = str(domain.get("Id") or domain.get("Name")).lower()
        if federation_flags(federation.get(name))[0]:
            flagged_roots.append(name)
    all_roots = [str(d.get("Id") or d.get("Name")).lower() for d in listed if d.get("IsRoot") is not False]
    children: list[str] = []
    for domain in federated:
        if domain.get("IsRoot") is not False:
            continue
        name = str(domain.get("Id") or domain.get("Name")).lower()
        root = _root_of(name, all_roots)  # Graph has no RootDomain property: the longest listed parent
        if root in flagged_roots:
            children.append(name)
    return flagged_roots + children


def _root_of(name: str, roots: Sequence[str]) -> str | None:
    parents = [r for r in roots if name.endswith("." + r)]
    return max(parents, key=len) if parents else None


def saml_domain_filter(records: Iterable[Mapping[str, Any]], domains: Iterable[str]) -> list[Mapping[str, Any]]:
    """Sparrow's row-6 client-side filter ``$_.UserId.Split('@')[1] -in $domainsToFlag`` (the text after
    the first ``@`` up to the next one; ``-in`` compares case-insensitively)."""
    wanted = {d.lower() for d in domains}
    kept = []
    for record in records:
        parts = str(record.get("UserId") or "").split("@")
        if len(parts) > 1 and parts[1].lower() in wanted:
            kept.append(record)
    return kept
