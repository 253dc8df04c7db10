#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Registers rdsaudit-task.xml (the monthly `rdsaudit run`) under a service account.
.DESCRIPTION
  -Account is a domain account (asked for its password) or a group Managed Service
  Account ending in '$' (no password: Windows fetches it). The account needs the
  "Log on as a batch job" right, read access to C:\ProgramData\rdsaudit and write access
  to the configured output_dir. The WinRM password file is restricted to the account.
.EXAMPLE
  .\register-task.ps1 -Account 'CONTOSO\gmsa-rdsaudit$'
#>
param(
    [Parameter(Mandatory)] [string] $Account,
    [string] $TaskName = 'rdsaudit monthly audit',
    [string] $TaskPath = '\rdsaudit\',
    [string] $PasswordFile = 'C:\ProgramData\rdsaudit\winrm.password'
)
$ErrorActionPreference = 'Stop'
$xml = [IO.File]::ReadAllText((Join-Path $PSScriptRoot 'rdsaudit-task.xml'))

if (Test-Path $PasswordFile) {
    # Only the service account (and administrators) may read the WinRM password.
    icacls $PasswordFile /inheritance:r /grant:r "${Account}:(R)" 'BUILTIN\Administrators:(F)' | Out-Null
}

if ($Account.EndsWith('$')) {
    Register-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath -Xml $xml -Force | Out-Null
    $principal = New-ScheduledTaskPrincipal -UserId $Account -LogonType Password -RunLevel Limited
    Set-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath -Principal $principal | Out-Null
} else {
    $cred = Get-Credential -UserName $Account -Message "Password of $Account (stored by Task Scheduler)"
    Register-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath -Xml $xml -Force `
        -User $Account -Password $cred.GetNetworkCredential().Password | Out-Null
}
Get-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath | Select-Object TaskPath, TaskName, State
Write-Host "Run it now with: Start-ScheduledTask -TaskPath '$TaskPath' -TaskName '$TaskName'"
