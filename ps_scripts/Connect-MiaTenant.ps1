<#
.SYNOPSIS
    Connects Exchange Online (and optionally Microsoft Graph) with app-only certificate authentication,
    the way mia-bridge's JEA functions do (the certificate OBJECT from Cert:\LocalMachine\My, so it works
    for an account without the certificate in its own store), to check an app registration by hand.

.EXAMPLE
    .\Connect-MiaTenant.ps1 -AppId 5e8c6f1a-2b3d-4c5e-9f70-81a2b3c4d5e6 -Organization contoso.onmicrosoft.com -CertificateThumbprint 3F2A9C4B8D1E7F60A5B4C3D2E1F0A9B8C7D6E5F4 -ConnectGraph

.EXAMPLE
    $password = Read-Host -AsSecureString 'Certificate password'
    .\Connect-MiaTenant.ps1 -AppId ... -Organization contoso.onmicrosoft.com -CertificateFilePath C:\certs\mia.pfx -CertificatePassword $password
#>
[CmdletBinding(DefaultParameterSetName = 'Thumbprint')]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$')]
    [string] $AppId,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[A-Za-z0-9-]+\.onmicrosoft\.(com|us|cn|de)$')]
    [string] $Organization,

    [Parameter(Mandatory = $true, ParameterSetName = 'Thumbprint')]
    [ValidatePattern('^[0-9a-fA-F]{40}$')]
    [string] $CertificateThumbprint,

    [Parameter(Mandatory = $true, ParameterSetName = 'File')]
    [ValidateScript({ Test-Path -LiteralPath $_ -PathType Leaf })]
    [string] $CertificateFilePath,

    [Parameter(Mandatory = $true, ParameterSetName = 'File')]
    [securestring] $CertificatePassword,

    [ValidateSet('O365Default', 'O365USGovGCCHigh', 'O365USGovDoD', 'O365China')]
    [string] $ExchangeEnvironmentName = 'O365Default',

    [switch] $ConnectGraph
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$exchange = @{
    AppId = $AppId
    Organization = $Organization
    ExchangeEnvironmentName = $ExchangeEnvironmentName
    ShowBanner = $false
}
if ($PSCmdlet.ParameterSetName -eq 'Thumbprint') {
    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $CertificateThumbprint)
}
else {
    $flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::EphemeralKeySet
    $certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new(
        $CertificateFilePath, $CertificatePassword, $flags)
}
if (-not $certificate.HasPrivateKey) {
    throw 'The certificate has no private key this account can read.'
}
$exchange.Certificate = $certificate
Connect-ExchangeOnline @exchange

if ($ConnectGraph) {
    $graph = @{ ClientId = $AppId; TenantId = $Organization; Certificate = $certificate; NoWelcome = $true }
    $environments = @{ O365USGovGCCHigh = 'USGov'; O365USGovDoD = 'USGovDoD'; O365China = 'China' }
    if ($environments.ContainsKey($ExchangeEnvironmentName)) {
        $graph.Environment = $environments[$ExchangeEnvironmentName]
    }
    Connect-MgGraph @graph
}

Get-ConnectionInformation | Select-Object -Property 'State', 'Organization', 'AppId', 'TokenStatus', 'ConnectionUri'
$config = Get-AdminAuditLogConfig
Write-Host "UnifiedAuditLogIngestionEnabled: $($config.UnifiedAuditLogIngestionEnabled)"
