"""Connect-ExchangeOnline / Connect-MgGraph and friends: app-only certificate authentication as the
ExchangeOnlineManagement V3 and Microsoft.Graph.Authentication modules do it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mia_bridge.sim.handlers._params import Params, binding_error
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, cmdlet
from mia_bridge.sim.tenant import EXO_MODULE_VERSION, GRAPH_AUTH_MODULE_VERSION, TenantSession

_CONNECT_EXO_PARAMS = (
    "AppId", "Organization", "CertificateThumbprint", "CertificateFilePath", "CertificatePassword", "Certificate",
    "ExchangeEnvironmentName", "ConnectionUri", "AzureADAuthorizationEndpointUri", "ShowBanner", "ShowProgress",
    "SkipLoadingFormatData", "SkipLoadingCmdletHelp", "CommandName", "Prefix", "PageSize", "TrackPerformance",
    "UseMultithreading", "DisableWAM", "LoadCmdletHelp", "SigningCertificate", "UserPrincipalName",
    "DelegatedOrganization", "ManagedIdentity", "ManagedIdentityAccountId", "AccessToken", "Device",
)
_ENVIRONMENTS = {
    "o365default": "https://outlook.office365.com",
    "o365usgovgcchigh": "https://outlook.office365.us",
    "o365usgovdod": "https://webmail.apps.mil",
    "o365china": "https://partner.outlook.cn",
    "o365germanycloud": "https://outlook.office.de",
}


def _auth_error(message: str, cmdlet_name: str, error_id: str = "MsalServiceException") -> SimCmdletError:
    return SimCmdletError(
        message,
        category="AuthenticationError",
        error_id=f"{error_id},{cmdlet_name}",
        exception_type="Microsoft.Identity.Client.MsalServiceException",
    )


def _certificate_object(session: TenantSession, p: Params, cmdlet_name: str) -> bool:
    """-Certificate: an X509Certificate2 (from Cert:\\LocalMachine\\My or a file) with its private key."""
    cert = p.raw("Certificate")
    if cert is None:
        return False
    thumbprint = str(cert.properties.get("Thumbprint") or "") if isinstance(cert, SimObject) else ""
    if not thumbprint or not cert.properties.get("HasPrivateKey"):
        raise binding_error(
            cmdlet_name,
            "Cannot process argument transformation on parameter 'Certificate'. Cannot convert the value to type "
            '"System.Security.Cryptography.X509Certificates.X509Certificate2".',
            "ParameterArgumentTransformationError,Certificate",
        )
    if thumbprint.upper() != session.tenant.config.certificate_thumbprint.upper():
        raise _auth_error("AADSTS700027: The certificate with identifier used to sign the client assertion is not "
                          "registered on application.", cmdlet_name)
    return True


def _check_thumbprint_store(session: TenantSession, thumbprint: str, cmdlet_name: str) -> None:
    """-CertificateThumbprint reads the user's store: a JEA virtual account's throwaway profile has none."""
    if getattr(session, "virtual_account", False):
        raise SimCmdletError(
            f"No certificate found for the given CertificateThumbprint {thumbprint} in Cert:\\CurrentUser\\My "
            "(the session runs as a JEA virtual account with a temporary profile).",
            category="ObjectNotFound",
            error_id=f"CertificateNotFound,{cmdlet_name}",
            exception_type="System.ArgumentException",
        )


def _check_certificate(session: TenantSession, p: Params, cmdlet_name: str, app_id: str) -> None:
    config = session.tenant.config
    if _certificate_object(session, p, cmdlet_name):
        return
    thumbprint = p.text("CertificateThumbprint")
    path = p.text("CertificateFilePath")
    if thumbprint is None and path is None:
        raise binding_error(
            cmdlet_name,
            "App-only authentication needs -CertificateThumbprint, or -CertificateFilePath with -CertificatePassword.",
            "AmbiguousParameterSet",
        )
    if thumbprint is not None:
        _check_thumbprint_store(session, thumbprint, cmdlet_name)
        if thumbprint.replace(" ", "").upper() != config.certificate_thumbprint.upper():
            raise SimCmdletError(
                f"No certificate found for the given CertificateThumbprint {thumbprint} in "
                "Cert:\\CurrentUser\\My or Cert:\\LocalMachine\\My.",
                category="ObjectNotFound",
                error_id=f"CertificateNotFound,{cmdlet_name}",
                exception_type="System.ArgumentException",
            )
        return
    assert path is not None
    if path.lower() != config.certificate_path.lower():
        raise SimCmdletError(
            f"Could not find file '{path}'.",
            category="ObjectNotFound",
            error_id=f"System.IO.FileNotFoundException,{cmdlet_name}",
            exception_type="System.IO.FileNotFoundException",
        )
    password = p.raw("CertificatePassword")
    if password is None or not hasattr(password, "reveal"):
        # The real parameter is a SecureString: a plain string does not bind (and is never echoed).
        raise binding_error(
            cmdlet_name,
            "Cannot process argument transformation on parameter 'CertificatePassword'. Cannot convert the value "
            'of type "System.String" to type "System.Security.SecureString".'
            if password is not None
            else "-CertificateFilePath needs -CertificatePassword (SecureString).",
            "ParameterArgumentTransformationError,CertificatePassword",
        )
    if password.reveal() != config.certificate_password:
        raise SimCmdletError(
            "The specified network password is not correct.",
            category="AuthenticationError",
            error_id=f"System.Security.Cryptography.CryptographicException,{cmdlet_name}",
            exception_type="System.Security.Cryptography.CryptographicException",
        )


def _check_app_and_org(session: TenantSession, cmdlet_name: str, app_id: str, organization: str) -> None:
    config = session.tenant.config
    if organization.lower() not in (config.organization.lower(), session.tenant.tenant_id):
        raise _auth_error(
            f"AADSTS90002: Tenant '{organization}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud.",
            cmdlet_name,
        )
    if app_id.lower() != config.app_id.lower():
        raise _auth_error(
            f"AADSTS700016: Application with identifier '{app_id}' was not found in the directory "
            f"'{config.organization}'. This can happen if the application has not been installed by the administrator "
            "of the tenant or consented to by any user in the tenant.",
            cmdlet_name,
        )


@cmdlet("Connect-ExchangeOnline")
def connect_exchange_online(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    p = Params("Connect-ExchangeOnline", params, _CONNECT_EXO_PARAMS)
    for unsupported in ("UserPrincipalName", "Device", "ManagedIdentity", "AccessToken"):
        if p.has(unsupported):
            raise _auth_error(
                f"-{unsupported} is not available in this session: only app-only certificate authentication is "
                "configured on this endpoint.",
                "Connect-ExchangeOnline",
                "UnsupportedAuthentication",
            )
    p.require("AppId", "Organization")
    app_id = p.text("AppId") or ""
    organization = p.text("Organization") or ""
    environment = (p.text("ExchangeEnvironmentName") or "O365Default").lower()
    if environment not in _ENVIRONMENTS:
        raise binding_error(
            "Connect-ExchangeOnline",
            f"Cannot bind parameter 'ExchangeEnvironmentName'. Cannot convert value \"{environment}\" to type "
            '"Microsoft.Exchange.Management.RestApiClient.ExchangeEnvironment".',
            "CannotConvertArgumentNoMessage,ExchangeEnvironmentName",
        )
    _check_app_and_org(session, "Connect-ExchangeOnline", app_id, organization)
    _check_certificate(session, p, "Connect-ExchangeOnline", app_id)
    session.connected_exchange = True
    session.connected_at = datetime.now(UTC)
    session.connection_uri = _ENVIRONMENTS[environment]
    out = SimOutput()
    banner = p.raw("ShowBanner")
    if banner is None or p.switch("ShowBanner"):
        out.warnings.append(
            "This V3 EXO PowerShell module contains new REST API backed Exchange Online cmdlets which doesn't require "
            "WinRM for Client-Server communication."
        )
    return out


@cmdlet("Disconnect-ExchangeOnline")
def disconnect_exchange_online(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Disconnect-ExchangeOnline", params, ("Confirm", "ConnectionId", "ModulePrefix"))
    session.connected_exchange = False
    session.connected_at = None
    return []


@cmdlet("Get-ConnectionInformation")
def get_connection_information(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Get-ConnectionInformation", params, ("ConnectionId", "ModulePrefix"))
    if not session.connected_exchange or session.connected_at is None:
        return []
    config = session.tenant.config
    uri = session.connection_uri or _ENVIRONMENTS["o365default"]
    return [
        SimObject(
            ["Microsoft.Exchange.Management.ExoPowershellSnapin.ConnectionInformation", "System.Object"],
            {
                "ConnectionId": session.connection_id,
                "State": "Connected",
                "Id": 1,
                "Name": f"ExchangeOnline_{session.number}",
                "UserPrincipalName": None,
                "ConnectionUri": uri,
                "AzureAdAuthorizationEndpointUri": "https://login.microsoftonline.com/organizations",
                "TokenExpiryTimeUTC": session.connected_at + timedelta(hours=1),
                "CertificateAuthentication": True,
                "ModuleName": f"C:\\Users\\mia\\AppData\\Local\\Temp\\tmpEXO_{session.number}",
                "ModulePrefix": "",
                "Organization": config.organization,
                "DelegatedOrganization": "",
                "AppId": config.app_id,
                "PageSize": 1000,
                "TenantID": session.tenant.tenant_id,
                "TokenStatus": "Active",
                "ConnectionUsedForInbuiltCmdlets": True,
                "IsEopSession": False,
            },
        )
    ]


@cmdlet("Get-Module")
def get_module(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    p = Params("Get-Module", params, ("Name", "ListAvailable", "All", "FullyQualifiedName", "Refresh"))
    modules = [
        ("ExchangeOnlineManagement", EXO_MODULE_VERSION, "c7f2e1d5-a0d6-4b6f-a0f3-2d1c0e5b4a6f",
         session.connected_exchange),
        ("Microsoft.Graph.Authentication", GRAPH_AUTH_MODULE_VERSION, "883916f2-9184-46ee-b1f8-b6a2fb784cee",
         session.connected_graph),
    ]
    names = [n.lower() for n in p.texts("Name") or []]
    list_available = p.switch("ListAvailable")
    out = []
    for name, version, guid, imported in modules:
        if names and not any(_wildcard_match(pattern, name.lower()) for pattern in names):
            continue
        if not (list_available or imported):
            continue
        out.append(
            SimObject(
                ["System.Management.Automation.PSModuleInfo", "System.Object"],
                {
                    "Name": name,
                    "Version": version,
                    "Guid": guid,
                    "ModuleType": "Script",
                    "Path": f"C:\\Program Files\\PowerShell\\Modules\\{name}\\{version}\\{name}.psd1",
                    "ModuleBase": f"C:\\Program Files\\PowerShell\\Modules\\{name}\\{version}",
                },
            )
        )
    return out


def _wildcard_match(pattern: str, text: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(text, pattern)


# Get-MgEnvironment's built-in clouds.
_GRAPH_ENVIRONMENTS = {"global", "usgov", "usgovdod", "china", "germany"}
_CONNECT_MG_PARAMS = (
    "ClientId", "TenantId", "CertificateThumbprint", "CertificateName", "Certificate", "NoWelcome", "Environment",
    "ContextScope", "Scopes", "ClientSecretCredential", "Identity", "AccessToken", "UseDeviceCode",
)


@cmdlet("Connect-MgGraph")
def connect_mg_graph(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    p = Params("Connect-MgGraph", params, _CONNECT_MG_PARAMS)
    p.require("ClientId", "TenantId")
    if not p.has("Certificate"):
        p.require("CertificateThumbprint")
    config = session.tenant.config
    _check_app_and_org(session, "Connect-MgGraph", p.text("ClientId") or "", p.text("TenantId") or "")
    environment = p.text("Environment")
    if environment is not None and environment.lower() not in _GRAPH_ENVIRONMENTS:
        raise binding_error("Connect-MgGraph", f"Cannot bind parameter 'Environment': '{environment}' is not an "
                            "environment Get-MgEnvironment lists.", "InvalidEnvironment")
    thumbprint = p.text("CertificateThumbprint") or ""
    if _certificate_object(session, p, "Connect-MgGraph"):
        thumbprint = config.certificate_thumbprint
    else:
        _check_thumbprint_store(session, thumbprint, "Connect-MgGraph")
    if thumbprint.replace(" ", "").upper() != config.certificate_thumbprint.upper():
        raise SimCmdletError(
            f"Certificate '{thumbprint}' not found in Cert:\\CurrentUser\\My or Cert:\\LocalMachine\\My.",
            category="AuthenticationError",
            error_id="Microsoft.Graph.PowerShell.AuthenticationException,Connect-MgGraph",
            exception_type="System.Security.Authentication.AuthenticationException",
        )
    session.connected_graph = True
    out = SimOutput()
    if not p.switch("NoWelcome"):
        out.warnings.append("Welcome to Microsoft Graph!")
    return out


@cmdlet("Disconnect-MgGraph")
def disconnect_mg_graph(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Disconnect-MgGraph", params, ())
    session.connected_graph = False
    return []


@cmdlet("Get-MgContext")
def get_mg_context(session: TenantSession, params: dict[str, Any]) -> list[SimObject]:
    Params("Get-MgContext", params, ())
    if not session.connected_graph:
        return []
    config = session.tenant.config
    return [
        SimObject(
            ["Microsoft.Graph.PowerShell.Authentication.AuthContext", "System.Object"],
            {
                "ClientId": config.app_id,
                "TenantId": session.tenant.tenant_id,
                "AuthType": "AppOnly",
                "TokenCredentialType": "ClientCertificate",
                "CertificateThumbprint": config.certificate_thumbprint,
                "Scopes": ["Organization.Read.All", "Domain.Read.All", "Application.Read.All"],
                "AppName": "mia-bridge",
                "ContextScope": "Process",
                "Environment": "Global",
            },
        )
    ]
