<#
.SYNOPSIS
    Prepares a Windows jump host for mia-bridge: modules, JEA role capability, session configuration.

.DESCRIPTION
    1. Installs or updates ExchangeOnlineManagement and the Microsoft Graph modules the product uses
       (Authentication, Identity.DirectoryManagement for Get-MgSubscribedSku/Get-MgDomain, Applications for
       Get-MgServicePrincipal*).
    2. Installs MiaBridgeAudit.psrc as a role capability (module MiaBridgeJea) exposing only the cmdlets
       mia-bridge runs, with parameter limits.
    3. Generates and registers the JEA session configuration (from MiaBridge.pssc) for -AllowedPrincipal.
    4. Optionally creates a WinRM HTTPS listener with an existing certificate.

    Every value is passed as a typed parameter; nothing is built into script text.

.EXAMPLE
    .\Install-MiaJumpHost.ps1 -AllowedPrincipal 'CONTOSO\MIA-Responders' -HttpsCertificateThumbprint 3F2A...
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[^\\]+\\[^\\]+$')]
    [string] $AllowedPrincipal,

    [ValidatePattern('^[A-Za-z][A-Za-z0-9.]{0,63}$')]
    [string] $ConfigurationName = 'MiaBridge',

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
$generated = Join-Path $env:ProgramData 'MiaBridge\MiaBridge.generated.pssc'
New-Item -ItemType Directory -Path (Split-Path -Parent $generated) -Force | Out-Null
New-Item -ItemType Directory -Path $TranscriptDirectory -Force | Out-Null
New-PSSessionConfigurationFile -Path $generated @settings
if (-not (Test-PSSessionConfigurationFile -Path $generated)) {
    throw "The generated session configuration $generated is not valid."
}

if ($HttpsCertificateThumbprint) {
    $existing = Get-ChildItem -Path WSMan:\localhost\Listener | Where-Object { $_.Keys -contains 'Transport=HTTPS' }
    if ($null -eq $existing -and $PSCmdlet.ShouldProcess('WinRM', 'Create HTTPS listener on 5986')) {
        New-Item -Path WSMan:\localhost\Listener -Transport HTTPS -Address * -CertificateThumbPrint $HttpsCertificateThumbprint -Force | Out-Null
    }
}

if (-not $SkipRegistration -and $PSCmdlet.ShouldProcess($ConfigurationName, 'Register JEA session configuration')) {
    if (Get-PSSessionConfiguration -Name $ConfigurationName -ErrorAction SilentlyContinue) {
        Unregister-PSSessionConfiguration -Name $ConfigurationName -Force
    }
    Register-PSSessionConfiguration -Name $ConfigurationName -Path $generated -Force
    Write-Host "Registered JEA endpoint '$ConfigurationName' for $AllowedPrincipal."
    Write-Host "mia-bridge: --configuration-name $ConfigurationName"
}
