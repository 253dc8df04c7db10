# rdsaudit collection script (schema rdsaudit.evidence/v1). STRICTLY READ-ONLY.
# Runs under Windows PowerShell 3.0+. Receives its parameters as ONE data argument
# (JSON object: keys, roles, max_issued) and writes ONE JSON document on stdout.
# Every section is guarded on its own; a failing section adds an entry to errors.
param([string]$ParamJson)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$P = ConvertFrom-Json $ParamJson
$Errs = New-Object Collections.ArrayList
function L { ,(New-Object Collections.ArrayList) }
function AddErr($s, $m) { [void]$Errs.Add([ordered]@{ section = $s; message = "$m" }) }
#region key-metadata
# (Also left out with collection.key_metadata false: the word Cryptography is on Windows
# PowerShell's suspicious list; rdsaudit then hashes and redacts binary values itself.)
function Hash([byte[]]$b) {
  $h = [Security.Cryptography.SHA256]::Create()
  ([BitConverter]::ToString($h.ComputeHash($b)) -replace '-', '').ToLowerInvariant()
}
#endregion key-metadata
function Wmi($cls, $ns) {
  if ($ns) { Get-WmiObject -Namespace $ns -Class $cls } else { Get-WmiObject -Class $cls }
}
function MR($call) {
  # Runs a read-only WMI method call; its outcome is evidence (MethodResult).
  # The raw result is left in $script:Out for the caller.
  $m = [ordered]@{ called = $true }; $script:Out = $null
  try { $script:Out = & $call; $m.return_value = [int64]$script:Out.ReturnValue }
  catch { $m.error = "$($_.Exception.Message)" }
  $m
}
function I64($v) { if ($null -eq $v) { $null } else { [int64]$v } }
function Absent($err, $codes) {
  # True only when WMI's own status code says the class or namespace does not exist
  # (ManagementException.ErrorCode: InvalidClass 0x80041010, InvalidNamespace
  # 0x8004100E, NotFound 0x80041002), among $codes. Anything else (access denied,
  # provider failure, ...) is a real error, whatever its message says.
  $x = $err.Exception
  while ($x) {
    if ($x.GetType().FullName -eq 'System.Management.ManagementException') {
      return @($codes) -contains "$($x.ErrorCode)"
    }
    $x = $x.InnerException
  }
  $false
}

# ---- registry -------------------------------------------------------------------
$RegQ = $null
#region key-metadata
# (collection.key_metadata: false sends the script without the lines of these regions:
# no Reflection.Emit, no P/Invoke; keys then carry no last_write_time.)
try {
  # RegQueryInfoKey (the key's LastWriteTime) through an in-memory P/Invoke stub built
  # with Reflection.Emit (AssemblyBuilderAccess Run: never saved). Compiling C# source
  # instead would run the C# compiler, which writes temporary files on the host.
  # The stub takes the open key's SafeRegistryHandle (RegistryKey.Handle, CLR 4 and later).
  $an = New-Object Reflection.AssemblyName('RdsAuditRegInfo')
  $ab = [AppDomain]::CurrentDomain.DefineDynamicAssembly($an, [Reflection.Emit.AssemblyBuilderAccess]::Run)
  $tb = $ab.DefineDynamicModule('RdsAuditRegInfo').DefineType('RdsAudit.RegInfo', [Reflection.TypeAttributes]'Public, Abstract, Sealed')
  $pt = [Type[]](@([Microsoft.Win32.SafeHandles.SafeRegistryHandle]) + @([IntPtr]) * 10 + @([long].MakeByRefType()))
  $pm = $tb.DefinePInvokeMethod('RegQueryInfoKey', 'advapi32.dll', [Reflection.MethodAttributes]'Public, Static, PinvokeImpl', [Reflection.CallingConventions]::Standard, [int], $pt, [Runtime.InteropServices.CallingConvention]::Winapi, [Runtime.InteropServices.CharSet]::Unicode)
  $pm.SetImplementationFlags([Reflection.MethodImplAttributes]::PreserveSig)
  try {
    # RegEnumKeyEx on the parent gives a subkey's LastWriteTime without any right on
    # the subkey itself (GracePeriod's ACL may refuse even KEY_QUERY_VALUE).
    $pt = [Type[]]@([Microsoft.Win32.SafeHandles.SafeRegistryHandle], [int], [Text.StringBuilder], [int].MakeByRefType(), [IntPtr], [IntPtr], [IntPtr], [long].MakeByRefType())
    $pm = $tb.DefinePInvokeMethod('RegEnumKeyEx', 'advapi32.dll', [Reflection.MethodAttributes]'Public, Static, PinvokeImpl', [Reflection.CallingConventions]::Standard, [int], $pt, [Runtime.InteropServices.CallingConvention]::Winapi, [Runtime.InteropServices.CharSet]::Unicode)
    $pm.SetImplementationFlags([Reflection.MethodImplAttributes]::PreserveSig)
  } catch { AddErr 'registry:RegEnumKeyEx' $_.Exception.Message }
  $RegQ = $tb.CreateType()
} catch { AddErr 'registry:RegQueryInfoKey' $_.Exception.Message }
#endregion key-metadata

function RegVal($k, $n, $redact) {
  $kind = $k.GetValueKind($n)
  $raw = $k.GetValue($n, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
  $v = [ordered]@{ name = $n; length = 0 }
  # By RegistryValueKind's value: 1 String, 2 ExpandString, 7 MultiString, 4 DWord,
  # 11 QWord (its name ExpandString is on Windows PowerShell's list of suspicious words).
  switch ([int]$kind) {
    1 { $v.type = 'REG_SZ'; $v.string = "$raw"; $v.length = ("$raw".Length + 1) * 2 }
    2 { $v.type = 'REG_EXPAND_SZ'; $v.string = "$raw"; $v.length = ("$raw".Length + 1) * 2 }
    7 {
      $v.type = 'REG_MULTI_SZ'; $s = L; $len = 2
      foreach ($x in $raw) { [void]$s.Add("$x"); $len += ("$x".Length + 1) * 2 }
      $v.strings = $s; $v.length = $len
    }
    4 { $v.type = 'REG_DWORD'; $v.number = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int32]$raw), 0); $v.length = 4 }
    11 { $v.type = 'REG_QWORD'; $v.number = [BitConverter]::ToUInt64([BitConverter]::GetBytes([int64]$raw), 0); $v.length = 8 }
    default {
      $v.type = if ("$kind" -eq 'Binary') { 'REG_BINARY' } elseif ("$kind" -eq 'None') { 'REG_NONE' } else { "REG_UNKNOWN($kind)" }
      if ($raw -is [byte[]]) {
        $v.length = $raw.Length
        #region key-metadata
        $v.sha256 = Hash $raw
        #endregion key-metadata
        if ($redact -and $v.sha256) { $v.redacted = $true } else { $v.hex = ([BitConverter]::ToString($raw) -replace '-', '').ToLowerInvariant() }
      }
    }
  }
  $v
}

# Times: .ToString('o') of a UTC DateTime (yyyy-MM-ddTHH:mm:ss.fffffffZ in every culture;
# a custom format would use the culture's separators and calendar).
function FT($ft) { [DateTime]::FromFileTimeUtc($ft).ToString('o') }
function LastWrite($k, $e) {
  #region key-metadata
  if ($RegQ) {
    $ft = [long]0
    if ($RegQ::RegQueryInfoKey($k.Handle, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [ref]$ft) -eq 0) { $e.last_write_time = FT $ft }
  }
  #endregion key-metadata
}
function Owner($k, $e) {
  try { $e.owner = $k.GetAccessControl([Security.AccessControl.AccessControlSections]::Owner).GetOwner([Security.Principal.NTAccount]).Value } catch { }
}
function Denied($err) {
  $x = $err.Exception
  while ($x) {
    if ($x -is [Security.SecurityException] -or $x -is [UnauthorizedAccessException]) { return $true }
    $x = $x.InnerException
  }
  $false
}
function OpenWith($sub, $rights) {
  # A read-only handle with exactly $rights; $null when the ACL refuses them.
  try { [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($sub, [Microsoft.Win32.RegistryKeyPermissionCheck]::Default, [Security.AccessControl.RegistryRights]$rights) } catch { $null }
}
function Unreadable($sub, $e) {
  # The key exists but its ACL refuses reading its values (GracePeriod: owner NETWORK
  # SERVICE or SYSTEM). Keep the metadata the ACL allows: LastWriteTime from a
  # QueryValues handle, else from enumerating the parent; the owner from a
  # ReadPermissions handle. error says the values (and subkeys) are unknown.
  $q = OpenWith $sub 'QueryValues'
  if ($q) { LastWrite $q $e; $q.Close() }
  #region key-metadata
  $i = $sub.LastIndexOf('\')
  if (-not $e.last_write_time -and $RegQ -and $i -gt 0 -and $RegQ.GetMethod('RegEnumKeyEx')) {
    $leaf = $sub.Substring($i + 1); $par = OpenWith $sub.Substring(0, $i) 'EnumerateSubKeys'
    if ($par) {
      try {
        for ($ix = 0; $ix -lt 100000; $ix++) {
          $sb = New-Object Text.StringBuilder 256; $len = 256; $ft = [long]0
          if ($RegQ::RegEnumKeyEx($par.Handle, $ix, $sb, [ref]$len, [IntPtr]::Zero, [IntPtr]::Zero, [IntPtr]::Zero, [ref]$ft) -ne 0) { break }
          if ($sb.ToString() -eq $leaf) { $e.last_write_time = FT $ft; break }
        }
      } finally { $par.Close() }
    }
  }
  #endregion key-metadata
  $o = OpenWith $sub 'ReadPermissions'
  if ($o) { Owner $o $e; $o.Close() }
}

function ReadKey($path, $req, $acc) {
  $e = [ordered]@{ path = $path; exists = $false }
  [void]$acc.Add($e)
  $k = $null
  try {
    $sub = $path.Substring(5)
    try { $k = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($sub, $false) }
    catch {
      if (-not (Denied $_)) { throw }
      $e.exists = $true
      $e.error = "values not readable (access denied; the key exists): $($_.Exception.Message)"
      Unreadable $sub $e
      AddErr "registry:$path" $e.error
      return
    }
    if ($null -eq $k) { return }
    $e.exists = $true
    LastWrite $k $e
    Owner $k $e
    $subs = L
    foreach ($s in $k.GetSubKeyNames()) { [void]$subs.Add($s) }
    if ($subs.Count) { $e.subkeys = $subs }
    $vals = L
    foreach ($n in $k.GetValueNames()) {
      if ($req.only_values -and -not ($req.only_values -contains $n)) { continue }
      [void]$vals.Add((RegVal $k $n $req.redact))
    }
    if ($vals.Count) { $e.values = $vals }
    if ($req.subkeys) { foreach ($s in $subs) { ReadKey "$path\$s" $req $acc } }
  } catch {
    $e.error = "$($_.Exception.Message)"
    AddErr "registry:$path" $_.Exception.Message
  } finally { if ($k) { $k.Close() } }
}

$Doc = [ordered]@{
  schema       = 'rdsaudit.evidence/v1'
  host         = [ordered]@{ name = "$env:COMPUTERNAME" }
  collector    = 'winrm'
  collected_at = [DateTime]::UtcNow.ToString('o')
  status       = 'collected'
}

# ---- OS -------------------------------------------------------------------------
try {
  $os = Wmi Win32_OperatingSystem
  $cs = Wmi Win32_ComputerSystem
  $o = [ordered]@{
    computer_name = "$($cs.Name)"; caption = "$($os.Caption)"; version = "$($os.Version)"
    build_number = "$($os.BuildNumber)"; install_date = "$($os.InstallDate)"
    last_boot_up_time = "$($os.LastBootUpTime)"; domain = "$($cs.Domain)"
    part_of_domain = [bool]$cs.PartOfDomain; domain_role = I64 $cs.DomainRole
    ps_version = "$($PSVersionTable.PSVersion)"
  }
  try {
    $r = L
    Import-Module ServerManager
    foreach ($f in (Get-WindowsFeature -Name 'RDS-*')) { if ($f.Installed) { [void]$r.Add($f.Name) } }
    $o.roles = $r
  } catch { AddErr 'os:features' $_.Exception.Message }
  $Doc.os = $o
} catch { AddErr 'os' $_.Exception.Message }

# ---- registry keys (the list comes from the parameters, as data) ------------------
$Reg = L
foreach ($req in $P.keys) { ReadKey $req.path $req $Reg }
$Doc.registry = $Reg

# ---- Terminal Services WMI --------------------------------------------------------
$TSNS = 'root\cimv2\TerminalServices'
try {
  $t = [ordered]@{ namespace_present = $false }
  $Doc.terminal_services = $t
  $ts = $null
  try { $ts = Wmi Win32_TerminalServiceSetting $TSNS; $t.namespace_present = $true }
  catch { if (-not (Absent $_ 'InvalidNamespace')) { throw } }
  if ($ts) {
    $t.terminal_server_mode = I64 $ts.TerminalServerMode
    $t.licensing_type = I64 $ts.LicensingType
    $t.licensing_name = "$($ts.LicensingName)"
    $t.licensing_description = "$($ts.LicensingDescription)"
    $t.policy_source_licensing_type = I64 $ts.PolicySourceLicensingType
    $t.policy_source_configured_license_servers = I64 $ts.PolicySourceConfiguredLicenseServers
    $g = MR { $ts.GetGracePeriodDays() }
    if ($Out) { $g.days_left = I64 $Out.DaysLeft }
    $t.grace_period = $g
    $s = MR { $ts.GetSpecifiedLicenseServerList() }
    $servers = L
    if ($Out) { foreach ($x in $Out.SpecifiedLSList) { if ($x) { [void]$servers.Add("$x") } } }
    $s.servers = $servers
    $t.specified_license_servers = $s
    $conn = L
    foreach ($name in $servers) {
      $c = MR { $ts.GetTStoLSConnectivityStatus($name) }
      if ($Out) { $c.status = I64 $Out.TsToLsConnectivityStatus }
      $c.server = $name
      [void]$conn.Add($c)
    }
    $t.connectivity = $conn
  }
} catch { AddErr "wmi:Win32_TerminalServiceSetting" $_.Exception.Message }

try {
  if ($Doc.terminal_services.namespace_present) {
    $d = Wmi Win32_TSDeploymentLicensing $TSNS | Select-Object -First 1
    if ($d) {
      $ls = L; foreach ($x in $d.LicenseServers) { if ($x) { [void]$ls.Add("$x") } }
      $Doc.deployment_licensing = [ordered]@{
        use_central_licensing_settings = [bool]$d.UseCentralLicensingSettings
        license_servers = $ls; licensing_type = I64 $d.LicensingType
      }
    }
  }
} catch { if (-not (Absent $_ @('InvalidClass', 'InvalidNamespace', 'NotFound'))) { AddErr 'wmi:Win32_TSDeploymentLicensing' $_.Exception.Message } }

# ---- license server (only when the inventory says so) -----------------------------
if ($P.roles -contains 'license_server') {
  $lsd = [ordered]@{ issued_total = 0 }
  $Doc.license_server = $lsd
  try {
    $srv = Wmi Win32_TSLicenseServer | Select-Object -First 1
    $a = MR { $srv.GetActivationStatus() }
    if ($Out) { $a.status = I64 $Out.ActivationStatus }
    $lsd.activation_status = $a
  } catch { AddErr 'wmi:Win32_TSLicenseServer' $_.Exception.Message }
  try {
    $kp = L
    foreach ($k in (Wmi Win32_TSLicenseKeyPack)) {
      [void]$kp.Add([ordered]@{
        key_pack_id = [int64]$k.KeyPackId; description = "$($k.Description)"
        key_pack_type = I64 $k.KeyPackType; product_type = I64 $k.ProductType
        product_version = "$($k.ProductVersion)"; product_version_id = I64 $k.ProductVersionID
        total_licenses = I64 $k.TotalLicenses; issued_licenses = I64 $k.IssuedLicenses
        available_licenses = I64 $k.AvailableLicenses; expiration_date = "$($k.ExpirationDate)"
        type_and_model = "$($k.TypeAndModel)"
      })
    }
    $lsd.key_packs = $kp
  } catch { AddErr 'wmi:Win32_TSLicenseKeyPack' $_.Exception.Message }
  try {
    # Streamed through the pipeline: every instance is counted, at most max_issued kept.
    $il = L; $n = 0; $max = [int]$P.max_issued
    Wmi Win32_TSIssuedLicense | ForEach-Object {
      $n++
      if ($il.Count -lt $max) {
        [void]$il.Add([ordered]@{
          license_id = [int64]$_.LicenseId; key_pack_id = [int64]$_.KeyPackId
          issued_to_user = "$($_.sIssuedToUser)"; issued_to_computer = "$($_.sIssuedToComputer)"
          hardware_id = "$($_.sHardwareId)"; issue_date = "$($_.IssueDate)"
          expiration_date = "$($_.ExpirationDate)"; license_status = I64 $_.LicenseStatus
        })
      }
    }
    $lsd.issued_licenses = $il; $lsd.issued_total = $n; $lsd.issued_truncated = ($n -gt $il.Count)
  } catch { AddErr 'wmi:Win32_TSIssuedLicense' $_.Exception.Message }
  try {
    # Existing reports only: rdsaudit never generates one.
    $rl = L
    foreach ($r in (Wmi Win32_TSLicenseReport)) {
      $e = [ordered]@{ file_name = "$($r.FileName)"; generated_date = "$($r.GenerationDateTime)"; scope_type = I64 $r.ScopeType }
      $sm = L
      try {
        $f = $r.FetchReportSummaryEntries(0, 0)
        foreach ($x in $f.ReportSummaryEntries) {
          [void]$sm.Add([ordered]@{
            product_version_id = I64 $x.ProductVersionID; product_version = "$($x.ProductVersion)"
            installed_licenses = I64 $x.InstalledLicenses; issued_licenses = I64 $x.IssuedLicenses
            cal_type = I64 $x.TSCALType
          })
        }
      } catch { AddErr "wmi:Win32_TSLicenseReport:$($r.FileName)" $_.Exception.Message }
      $e.summary = $sm
      [void]$rl.Add($e)
    }
    $lsd.reports = $rl
  } catch { AddErr 'wmi:Win32_TSLicenseReport' $_.Exception.Message }
}

if ($Errs.Count) { $Doc.errors = $Errs }
[Console]::Out.Write((ConvertTo-Json -InputObject $Doc -Depth 12 -Compress))
