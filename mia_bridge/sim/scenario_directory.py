"""Directory objects of a scenario: mailboxes, domains, service principals, app role assignments and
Exchange management role assignments, as the Get-* cmdlets return them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mia_bridge.sim.scenario_records import APP_EXCHANGE, APP_GRAPH, User
from mia_bridge.sim.tenant import Directory, Tenant

if TYPE_CHECKING:
    from mia_bridge.sim.scenario import World

GRAPH_SP_ID = "b0a6c3f1-2d4e-4f5a-8b6c-7d8e9f0a1b2c"
EXCHANGE_SP_ID = "c1b7d4a2-3e5f-4a6b-9c7d-8e9f0a1b2c3d"
# Microsoft Graph / Exchange application roles (well-known ids).
ROLE_MAIL_READ = "810c84a8-4a9e-49e6-bf7d-12d183f40d01"
ROLE_FILES_READ_ALL = "01d4889c-1287-42c6-ac1f-5d1e02578ef6"
ROLE_ORG_READ_ALL = "498476ce-e0fe-48b0-b801-37ba7e2685c6"
ROLE_EXCHANGE_MANAGE_AS_APP = "dc50a0fb-09a3-484d-be87-e023b12c6440"
OWNER_AUDIT = [
    "Update",
    "MoveToDeletedItems",
    "SoftDelete",
    "HardDelete",
    "UpdateFolderPermissions",
    "UpdateInboxRules",
    "UpdateCalendarDelegation",
    "ApplyRecord",
    "MailItemsAccessed",
    "Send",
]
DELEGATE_AUDIT = [
    "Update",
    "MoveToDeletedItems",
    "SoftDelete",
    "HardDelete",
    "SendAs",
    "SendOnBehalf",
    "Create",
    "UpdateFolderPermissions",
    "UpdateInboxRules",
    "ApplyRecord",
    "MailItemsAccessed",
]
ADMIN_AUDIT = [
    "Update",
    "MoveToDeletedItems",
    "SoftDelete",
    "HardDelete",
    "SendAs",
    "SendOnBehalf",
    "Create",
    "UpdateFolderPermissions",
    "UpdateInboxRules",
    "UpdateCalendarDelegation",
    "ApplyRecord",
    "MailItemsAccessed",
    "Send",
]


def mailbox(user: User, *, shared: bool = False, forwarding: str | None = None) -> dict[str, Any]:
    alias = user.upn.split("@", 1)[0]
    return {
        "Name": alias,
        "Alias": alias,
        "DisplayName": user.display_name,
        "UserPrincipalName": user.upn,
        "PrimarySmtpAddress": user.upn,
        "Identity": alias,
        "ExchangeGuid": user.mailbox_guid,
        "ExternalDirectoryObjectId": user.object_id,
        "RecipientTypeDetails": "SharedMailbox" if shared else "UserMailbox",
        "AuditEnabled": True,
        "AuditLogAgeLimit": "90.00:00:00",
        "AuditOwner": list(OWNER_AUDIT),
        "AuditDelegate": list(DELEGATE_AUDIT),
        "AuditAdmin": list(ADMIN_AUDIT),
        "DefaultAuditSet": ["Admin", "Delegate", "Owner"],
        "ForwardingSmtpAddress": forwarding,
        "DeliverToMailboxAndForward": forwarding is not None,
    }


def _sp(
    sp_id: str,
    app_id: str,
    name: str,
    *,
    sp_type: str = "Application",
    owner_tenant: str = "",
    key_credentials: int = 0,
    password_credentials: int = 0,
) -> dict[str, Any]:
    return {
        "Id": sp_id,
        "AppId": app_id,
        "DisplayName": name,
        "ServicePrincipalType": sp_type,
        "AccountEnabled": True,
        "AppOwnerOrganizationId": owner_tenant,
        "KeyCredentials": [
            {"KeyId": f"key-{i}", "Type": "AsymmetricX509Cert", "Usage": "Verify"} for i in range(key_credentials)
        ],
        "PasswordCredentials": [{"KeyId": f"secret-{i}", "DisplayName": "secret"} for i in range(password_credentials)],
        "ServicePrincipalNames": [app_id],
        "AppRoles": [],
    }


def _app_role(role_id: str, value: str) -> dict[str, Any]:
    return {"Id": role_id, "Value": value, "DisplayName": value, "AllowedMemberTypes": ["Application"],
            "IsEnabled": True, "Origin": "Application"}


def _assignment(sp_id: str, sp_name: str, resource_id: str, resource_name: str, role_id: str) -> dict[str, Any]:
    return {
        "Id": f"{sp_id[:8]}{role_id[:8]}",
        "AppRoleId": role_id,
        "PrincipalId": sp_id,
        "PrincipalDisplayName": sp_name,
        "PrincipalType": "ServicePrincipal",
        "ResourceId": resource_id,
        "ResourceDisplayName": resource_name,
        "ServicePrincipalId": sp_id,
    }


def build_directory(world: World, scenario: str, tenant: Tenant) -> Directory:
    config = world.config
    microsoft = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # Microsoft's own tenant (first-party apps)
    compromised = scenario == "compromised"
    directory = Directory()
    for user in world.users:
        forwarding = None
        if compromised and user is world.victim:
            from mia_bridge.sim.scenario import FORWARD_TO

            forwarding = f"smtp:{FORWARD_TO}"
        directory.mailboxes.append(mailbox(user, forwarding=forwarding))
    directory.mailboxes.append(mailbox(world.shared_mailbox, shared=True))
    directory.domains = [
        {
            "Id": config.organization,
            "AuthenticationType": "Managed",
            "IsDefault": False,
            "IsInitial": True,
            "IsRoot": True,
            "IsVerified": True,
            "IsAdminManaged": True,
            "SupportedServices": ["Email", "OfficeCommunicationsOnline"],
            "PasswordValidityPeriodInDays": 2147483647,
            "AvailabilityStatus": None,
        },
        {
            "Id": world.domain,
            "AuthenticationType": "Managed",
            "IsDefault": True,
            "IsInitial": False,
            "IsRoot": True,
            "IsVerified": True,
            "IsAdminManaged": True,
            "SupportedServices": ["Email", "OfficeCommunicationsOnline"],
            "PasswordValidityPeriodInDays": 2147483647,
            "AvailabilityStatus": None,
        },
        {
            "Id": world.federated_domain,
            "AuthenticationType": "Federated",
            "IsDefault": False,
            "IsInitial": False,
            "IsRoot": True,
            "IsVerified": True,
            "IsAdminManaged": True,
            "SupportedServices": ["Email"],
            "PasswordValidityPeriodInDays": None,
            "AvailabilityStatus": None,
        },
        {  # a child of the federated domain: federated through its root (Sparrow flags it with its root)
            "Id": f"eu.{world.federated_domain}",
            "AuthenticationType": "Federated",
            "IsDefault": False,
            "IsInitial": False,
            "IsRoot": False,
            "IsVerified": True,
            "IsAdminManaged": True,
            "SupportedServices": [],
            "PasswordValidityPeriodInDays": None,
            "AvailabilityStatus": None,
        },
        {  # a second federated root whose IdP enforces MFA: not flagged
            "Id": world.partner_domain,
            "AuthenticationType": "Federated",
            "IsDefault": False,
            "IsInitial": False,
            "IsRoot": True,
            "IsVerified": True,
            "IsAdminManaged": True,
            "SupportedServices": ["Email", "Intune"],
            "PasswordValidityPeriodInDays": None,
            "AvailabilityStatus": None,
        },
    ]
    # The compromised federation rejects the IdP's MFA (a SAML token claiming MFA is then the anomaly
    # Sparrow's 16457 search looks for); the partner domain's IdP enforces it.
    directory.federation = {
        world.federated_domain: [federation_configuration(world.federated_domain, "rejectMfaByFederatedIdp")],
        world.partner_domain: [federation_configuration(world.partner_domain, "enforceMfaByFederatedIdp")],
    }
    from mia_bridge.sim.scenario import BENIGN_ARCHIVER_NAME, BENIGN_HR_APP_NAME

    graph_sp = _sp(GRAPH_SP_ID, APP_GRAPH, "Microsoft Graph", owner_tenant=microsoft)
    graph_sp["AppRoles"] = [_app_role(ROLE_MAIL_READ, "Mail.Read"), _app_role(ROLE_FILES_READ_ALL, "Files.Read.All"),
                            _app_role(ROLE_ORG_READ_ALL, "Organization.Read.All")]
    exchange_sp = _sp(EXCHANGE_SP_ID, APP_EXCHANGE, "Office 365 Exchange Online", owner_tenant=microsoft)
    exchange_sp["AppRoles"] = [_app_role(ROLE_EXCHANGE_MANAGE_AS_APP, "Exchange.ManageAsApp")]
    sps = [
        graph_sp,
        exchange_sp,
        _sp(world.mia_sp_id, config.app_id, "mia-bridge", owner_tenant=tenant.tenant_id, key_credentials=1),
        _sp(
            world.archiver_sp_id,
            world.archiver_app_id,
            BENIGN_ARCHIVER_NAME,
            owner_tenant=tenant.tenant_id,
            key_credentials=1,
        ),
        _sp(world.hr_sp_id, world.hr_app_id, BENIGN_HR_APP_NAME, owner_tenant=tenant.tenant_id, password_credentials=1),
    ]
    assignments = [
        _assignment(
            world.mia_sp_id, "mia-bridge", EXCHANGE_SP_ID, "Office 365 Exchange Online", ROLE_EXCHANGE_MANAGE_AS_APP
        ),
        _assignment(world.mia_sp_id, "mia-bridge", GRAPH_SP_ID, "Microsoft Graph", ROLE_ORG_READ_ALL),
        _assignment(world.archiver_sp_id, BENIGN_ARCHIVER_NAME, GRAPH_SP_ID, "Microsoft Graph", ROLE_MAIL_READ),
    ]
    if compromised:
        sps.append(
            _sp(
                world.attacker_sp_id,
                world.attacker_app_id,
                world.names.app,
                owner_tenant=tenant.tenant_id,
                key_credentials=1,
                password_credentials=1,
            )
        )
        for role in (ROLE_MAIL_READ, ROLE_FILES_READ_ALL):
            assignments.append(
                _assignment(world.attacker_sp_id, world.names.app, GRAPH_SP_ID, "Microsoft Graph", role)
            )
    directory.service_principals = sps
    directory.app_role_assignments = assignments
    directory.role_assignments = role_assignments(world.mia_sp_id)
    return directory


def federation_configuration(domain: str, mfa_behaviour: str | None) -> dict[str, Any]:
    """An internalDomainFederation as Get-MgDomainFederationConfiguration returns it (Graph v1.0 resource
    internalDomainFederation; ``SupportsMfa`` is MSOnline's and is not a Graph property)."""
    host = f"sts.{domain}"
    return {
        "Id": f"{domain}-idp",
        "DisplayName": f"{domain} AD FS",
        "IssuerUri": f"http://{host}/adfs/services/trust",
        "MetadataExchangeUri": f"https://{host}/adfs/services/trust/mex",
        "PassiveSignInUri": f"https://{host}/adfs/ls/",
        "ActiveSignInUri": f"https://{host}/adfs/services/trust/2005/usernamemixed",
        "SignOutUri": f"https://{host}/adfs/ls/?wa=wsignout1.0",
        "PreferredAuthenticationProtocol": "wsFed",
        "PromptLoginBehavior": "nativeSupport",
        "IsSignedAuthenticationRequestRequired": False,
        "SigningCertificate": "MIIC8DCCAdigAwIBAgIQ",
        "NextSigningCertificate": None,
        "FederatedIdpMfaBehavior": mfa_behaviour,
        "SigningCertificateUpdateStatus": {"CertificateUpdateResult": "success", "LastRunDateTime": None},
    }


def role_assignments(mia_sp_id: str) -> list[dict[str, Any]]:
    """Exchange RBAC: the app's service principal holds View-Only Audit Logs; the usual role groups."""
    rows = [
        ("View-Only Audit Logs-mia-bridge", "View-Only Audit Logs", mia_sp_id, "ServicePrincipal"),
        ("View-Only Recipients-mia-bridge", "View-Only Recipients", mia_sp_id, "ServicePrincipal"),
        # Audit Logs lets the tool turn ingestion on when the responder asks it to (optional in ps_scripts).
        ("Audit Logs-mia-bridge", "Audit Logs", mia_sp_id, "ServicePrincipal"),
        ("Audit Logs-Organization Management", "Audit Logs", "Organization Management", "RoleGroup"),
        (
            "View-Only Audit Logs-Organization Management",
            "View-Only Audit Logs",
            "Organization Management",
            "RoleGroup",
        ),
        ("Audit Logs-Compliance Management", "Audit Logs", "Compliance Management", "RoleGroup"),
        ("View-Only Audit Logs-Compliance Management", "View-Only Audit Logs", "Compliance Management", "RoleGroup"),
        ("Mail Recipients-Organization Management", "Mail Recipients", "Organization Management", "RoleGroup"),
        (
            "MyBaseOptions-Default Role Assignment Policy",
            "MyBaseOptions",
            "Default Role Assignment Policy",
            "RoleAssignmentPolicy",
        ),
    ]
    return [
        {
            "Name": name,
            "Identity": name,
            "Role": role,
            "RoleAssignee": assignee,
            "RoleAssigneeName": "mia-bridge" if assignee == mia_sp_id else assignee,
            "RoleAssigneeType": kind,
            "AssignmentMethod": "Direct",
            "Enabled": True,
            "RoleAssignmentDelegationType": "Regular",
            "CustomRecipientWriteScope": None,
            "RecipientWriteScope": "Organization",
            "ConfigWriteScope": "OrganizationConfig",
        }
        for name, role, assignee, kind in rows
    ]
