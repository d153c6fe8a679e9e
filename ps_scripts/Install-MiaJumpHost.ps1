<#
.SYNOPSIS
    Prepares a Windows jump host for mia-bridge: modules, JEA role capability, session configuration.

.DESCRIPTION
    1. Installs or updates ExchangeOnlineManagement and the Microsoft Graph modules the product uses
       (Authentication, Identity.DirectoryManagement for Get-MgSubscribedSku/Get-MgDomain, Applications for
       Get-MgServicePrincipal*, Mail for Get-MgUserMessage).
    2. -EndpointKind Jea (default): installs MiaBridgeAudit.psrc as a role capability (module MiaBridgeJea)
       whose functions are the only commands the endpoint exposes; generates and registers the JEA session
       configuration (from MiaBridge.pssc) for -AllowedPrincipal, running as a virtual account; makes the
       transcript folder readable by Administrators and SYSTEM only; with -AppCertificateThumbprint and
       -KeyReaderAccount, lets that account (gMSA or virtual account group) read the app certificate's key.
       -EndpointKind Plain: registers a standard endpoint (no role capability, full language) that only
       -AllowedPrincipal may use; the session runs as the connecting user, who needs the app certificate.
    3. Optionally creates a WinRM HTTPS listener with an existing certificate.

    Every value is passed as a typed parameter; nothing is built into script text.

.EXAMPLE
    .\Install-MiaJumpHost.ps1 -AllowedPrincipal 'CONTOSO\MIA-Responders' -HttpsCertificateThumbprint 3F2A...

.EXAMPLE
    .\Install-MiaJumpHost.ps1 -EndpointKind Plain -ConfigurationName MiaBridgePlain -AllowedPrincipal 'CONTOSO\MIA-Admins'
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[^\\]+\\[^\\]+$')]
    [string] $AllowedPrincipal,

    [ValidatePattern('^[A-Za-z][A-Za-z0-9.]{0,63}$')]
    [string] $ConfigurationName = 'MiaBridge',

    [ValidateSet('Jea', 'Plain')]
    [string] $EndpointKind = 'Jea',

    # The app certificate in Cert:\LocalMachine\My, and the account (a gMSA, or the group named in
    # RunAsVirtualAccountGroups) that may read its private key when the endpoint does not run as a
    # local administrator.
    [ValidatePattern('^[0-9a-fA-F]{40}$')]
    [string] $AppCertificateThumbprint,

    [ValidatePattern('^[^\\]+\\[^\\]+$')]
    [string] $KeyReaderAccount,

    [ValidateSet('CurrentUser', 'AllUsers')]
    [string] $ModuleScope = 'AllUsers',

    [ValidatePattern('^[0-9a-fA-F]{40}$')]
    [string] $HttpsCertificateThumbprint,

    [string] $TranscriptDirectory = (Join-Path $env:ProgramData 'MiaBridge\Transcripts'),

    [switch] $SkipModules,

    [switch] $SkipRegistration
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$RoleCapabilityName = 'MiaBridgeAudit'
$JeaModuleName = 'MiaBridgeJea'
$RequiredModules = @(
    @{ Name = 'ExchangeOnlineManagement'; MinimumVersion = '3.5.0' },
    @{ Name = 'Microsoft.Graph.Authentication'; MinimumVersion = '2.0.0' },
    @{ Name = 'Microsoft.Graph.Identity.DirectoryManagement'; MinimumVersion = '2.0.0' },
    @{ Name = 'Microsoft.Graph.Applications'; MinimumVersion = '2.0.0' },
    @{ Name = 'Microsoft.Graph.Mail'; MinimumVersion = '2.0.0' }  # Get-MgUserMessage (mia enrich, opt-in)
)

function Install-MiaModule {
    param(
        [Parameter(Mandatory = $true)] [string] $Name,
        [Parameter(Mandatory = $true)] [version] $MinimumVersion,
        [Parameter(Mandatory = $true)] [string] $Scope
    )
    $installed = Get-Module -ListAvailable -Name $Name | Sort-Object -Property Version -Descending | Select-Object -First 1
    if ($null -eq $installed) {
        Write-Host "Installing $Name"
        Install-Module -Name $Name -MinimumVersion $MinimumVersion -Scope $Scope -Repository PSGallery -Force -AllowClobber
    }
    else {
        Write-Host "Updating $Name (installed: $($installed.Version))"
        Update-Module -Name $Name -Force
    }
}

if ($PSVersionTable.PSVersion -lt [version]'7.4') {
    throw 'PowerShell 7.4 or later is required (ExchangeOnlineManagement 3.5+; 3.10+ needs 7.6).'
}
if ($PSVersionTable.PSVersion -lt [version]'7.6') {
    Write-Warning 'ExchangeOnlineManagement 3.10 and later need PowerShell 7.6; older module versions will be used.'
}

if (-not $SkipModules) {
    foreach ($module in $RequiredModules) {
        Install-MiaModule -Name $module.Name -MinimumVersion $module.MinimumVersion -Scope $ModuleScope
    }
}

# Transcripts: one file per session, readable only by Administrators and SYSTEM (they record every command
# and parameter, which include mailbox names and message ids of the investigation).
function Protect-MiaFolder {
    param([Parameter(Mandatory = $true)] [string] $Path)
    New-Item -ItemType Directory -Path $Path -Force | Out-Null
    $acl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)  # no inherited entries
    $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    $propagate = [System.Security.AccessControl.PropagationFlags]::None
    foreach ($sid in 'S-1-5-32-544', 'S-1-5-18') {  # BUILTIN\Administrators, NT AUTHORITY\SYSTEM
        $identity = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $sid
        $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
            $identity, 'FullControl', $inherit, $propagate, 'Allow')
        $acl.AddAccessRule($rule)
    }
    Set-Acl -LiteralPath $Path -AclObject $acl
}

# The endpoint connects with the certificate object from Cert:\LocalMachine\My and needs read access to its
# private key (CNG key file under ProgramData\Microsoft\Crypto\Keys). A JEA virtual account is a member of
# the local Administrators group by default and can read it; with RunAsVirtualAccountGroups (least
# privilege) or a gMSA, grant that group or account read access here.
function Grant-MiaPrivateKeyRead {
    param(
        [Parameter(Mandatory = $true)] [string] $Thumbprint,
        [Parameter(Mandatory = $true)] [string] $Account
    )
    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $Thumbprint)
    $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($certificate)
    if ($null -eq $key -or -not ($key -is [System.Security.Cryptography.RSACng])) {
        throw 'The app certificate needs a CNG RSA private key (New-SelfSignedCertificate -KeySpec Signature does).'
    }
    $keyFile = Join-Path $env:ProgramData (Join-Path 'Microsoft\Crypto\Keys' $key.Key.UniqueName)
    $acl = Get-Acl -LiteralPath $keyFile
    $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
        $Account, 'Read', 'Allow')
    $acl.AddAccessRule($rule)
    Set-Acl -LiteralPath $keyFile -AclObject $acl
}

$generated = Join-Path $env:ProgramData 'MiaBridge\MiaBridge.generated.pssc'
New-Item -ItemType Directory -Path (Split-Path -Parent $generated) -Force | Out-Null

if ($EndpointKind -eq 'Jea') {
    # Role capability: a module folder with a manifest and RoleCapabilities\<name>.psrc.
    $moduleRoot = Join-Path $env:ProgramFiles (Join-Path 'PowerShell\Modules' $JeaModuleName)
    $capabilityDir = Join-Path $moduleRoot 'RoleCapabilities'
    if ($PSCmdlet.ShouldProcess($capabilityDir, 'Install role capability')) {
        New-Item -ItemType Directory -Path $capabilityDir -Force | Out-Null
        New-ModuleManifest -Path (Join-Path $moduleRoot "$JeaModuleName.psd1") -RootModule '' -ModuleVersion '1.0.0' -Description 'mia-bridge JEA role capabilities'
        Copy-Item -LiteralPath (Join-Path $PSScriptRoot "$RoleCapabilityName.psrc") -Destination (Join-Path $capabilityDir "$RoleCapabilityName.psrc") -Force
    }

    # Session configuration: the shipped reference file, with the principal set as data (not text).
    $settings = Import-PowerShellDataFile -LiteralPath (Join-Path $PSScriptRoot 'MiaBridge.pssc')
    $settings.Remove('GUID')
    $settings.TranscriptDirectory = $TranscriptDirectory
    $settings.RoleDefinitions = @{ $AllowedPrincipal = @{ RoleCapabilities = $RoleCapabilityName } }
    Protect-MiaFolder -Path $TranscriptDirectory
    New-PSSessionConfigurationFile -Path $generated @settings
    if (-not (Test-PSSessionConfigurationFile -Path $generated)) {
        throw "The generated session configuration $generated is not valid."
    }
    if ($AppCertificateThumbprint -and $KeyReaderAccount -and
        $PSCmdlet.ShouldProcess($KeyReaderAccount, 'Grant read access to the app certificate private key')) {
        Grant-MiaPrivateKeyRead -Thumbprint $AppCertificateThumbprint -Account $KeyReaderAccount
    }
}

if ($HttpsCertificateThumbprint) {
    $existing = Get-ChildItem -Path WSMan:\localhost\Listener | Where-Object { $_.Keys -contains 'Transport=HTTPS' }
    if ($null -eq $existing -and $PSCmdlet.ShouldProcess('WinRM', 'Create HTTPS listener on 5986')) {
        New-Item -Path WSMan:\localhost\Listener -Transport HTTPS -Address * -CertificateThumbPrint $HttpsCertificateThumbprint -Force | Out-Null
    }
}

if (-not $SkipRegistration -and $PSCmdlet.ShouldProcess($ConfigurationName, "Register $EndpointKind session configuration")) {
    if (Get-PSSessionConfiguration -Name $ConfigurationName -ErrorAction SilentlyContinue) {
        Unregister-PSSessionConfiguration -Name $ConfigurationName -Force
    }
    if ($EndpointKind -eq 'Jea') {
        Register-PSSessionConfiguration -Name $ConfigurationName -Path $generated -Force
        Write-Host "Registered JEA endpoint '$ConfigurationName' for $AllowedPrincipal."
        Write-Host "mia-bridge: --configuration-name $ConfigurationName --endpoint-kind jea"
    }
    else {
        # A standard endpoint only -AllowedPrincipal may open (Execute + Read; GA = generic all for Administrators).
        $account = New-Object -TypeName System.Security.Principal.NTAccount -ArgumentList $AllowedPrincipal
        $sid = $account.Translate([System.Security.Principal.SecurityIdentifier]).Value
        $sddl = 'O:NSG:BAD:P(A;;GA;;;BA)(A;;GXGR;;;' + $sid + ')S:P(AU;FA;GA;;;WD)(AU;SA;GXGW;;;WD)'
        Register-PSSessionConfiguration -Name $ConfigurationName -SecurityDescriptorSddl $sddl -Force
        Write-Host "Registered standard endpoint '$ConfigurationName' for $AllowedPrincipal."
        Write-Host "mia-bridge: --configuration-name $ConfigurationName --endpoint-kind plain"
    }
}
