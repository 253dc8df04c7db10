package winrm

import (
	"errors"
	goflag "flag"
	"github.com/rdsaudit/rdsaudit/evidence"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The -update flag rewrites golden files. It is registered in init, after every
// package-level flag.Bool, and only if no other test file of the package declared it.
func init() {
	if goflag.Lookup("update") == nil {
		goflag.Bool("update", false, "rewrite golden files in testdata/")
	}
}

func updateGolden() bool {
	f := goflag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// writeVerbs returns the patterns the read-only collection script must never contain
// (domain.md: no Set-, New-Item, Remove-, reg add/delete, state-changing WMI methods,
// Generate*). Matched case-insensitively against the source, comments included.
func writeVerbs() []*regexp.Regexp {
	return []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b(Set|Remove|Clear|Rename|Move|Copy|Stop|Start|Restart|Suspend|Resume|Register|Unregister|Enable|Disable|Install|Uninstall|Grant|Revoke|Reset|Write|Export|Update|Invoke)-[A-Za-z]`),
		regexp.MustCompile(`(?i)\bNew-(Item|ItemProperty|PSDrive|Service|CimInstance|WmiObject|EventLog|ScheduledTask)`),
		regexp.MustCompile(`(?i)\b(Out-File|Tee-Object|Add-Content|Set-Content|Set-ItemProperty|Set-Acl|Set-WmiInstance|Invoke-WmiMethod|Invoke-CimMethod|Invoke-Expression|iex)\b`),
		regexp.MustCompile(`(?i)\breg(\.exe)?\s+(add|delete|import|restore|load|unload|copy|save)\b`),
		regexp.MustCompile(`(?i)\bGenerate(Report\w*|\w*\s*\()`),
		regexp.MustCompile(`(?i)\.(Put|Delete|DeleteValue|DeleteSubKey\w*|SetValue|CreateSubKey|SetAccessControl|Set\w*|Create\w*|Activate\w*|Install\w*|Uninstall\w*|Revoke\w*|Remove\w*|Flush)\s*\(`),
		regexp.MustCompile(`(?i)OpenSubKey\([^)]*\$true`), // writable registry handle
		// Registry handles opened with explicit rights (OpenWith) get read rights only.
		regexp.MustCompile(`(?i)'(SetValue|CreateSubKey|CreateLink|WriteKey|FullControl|ChangePermissions|TakeOwnership|Delete)'|RegistryRights\]::(SetValue|CreateSubKey|CreateLink|WriteKey|FullControl|ChangePermissions|TakeOwnership|Delete)|RegistryKeyPermissionCheck\]::ReadWriteSubTree`),
		regexp.MustCompile(`(?i)\b(sc|schtasks|net|wmic|bcdedit|takeown|icacls|shutdown)(\.exe)?\s`),
		regexp.MustCompile(`>\s*[^\s$&]`), // redirection to a file (only >$null and 2>&1 are fine)
		// No compilation on the target: Add-Type (and anything else that compiles source)
		// runs csc.exe, which writes the generated source, the assembly and its temporary
		// files to %TEMP% on the audited host. P/Invoke goes through an in-memory
		// Reflection.Emit stub instead (AssemblyBuilderAccess Run, never Save).
		regexp.MustCompile(`(?i)\bAdd-Type\b|-TypeDefinition\b|-MemberDefinition\b|-OutputAssembly\b|-ReferencedAssemblies\b`),
		regexp.MustCompile(`(?i)\b(csc|vbc|jsc|ilasm|cvtres|al)\.exe\b|\bcsc\b|CodeDomProvider|CSharpCodeProvider|VBCodeProvider|CompileAssemblyFrom\w*|CompilerParameters`),
		regexp.MustCompile(`(?i)AssemblyBuilderAccess\]::\w*Save|\.Save\s*\(`),
		// No file writes through .NET either.
		regexp.MustCompile(`(?i)\[(System\.)?IO\.(File|Directory|FileInfo|DirectoryInfo)\]::(Write|Append|Create|Copy|Move|Delete|Replace|Open|Encrypt|Decrypt|Set)\w*`),
		regexp.MustCompile(`(?i)\[(System\.)?IO\.Path\]::GetTemp(File)?Name|\b(System\.)?IO\.(StreamWriter|FileStream|BinaryWriter|FileInfo|DirectoryInfo)\b|\bStart-Transcript\b|\b(Export|ConvertTo)-(Csv|Clixml)\b.*-Path`),
	}
}

// allowed returns the exact substrings that match a pattern above but are read-only.
func allowed() []string {
	return []string{
		"[ScriptBlock]::Create(", // compiles the script in memory (bootstrap only)
		"SHA256]::Create(",       // hash object
		// The in-memory P/Invoke stub (Reflection.Emit, AssemblyBuilderAccess Run): these
		// build a type in the PowerShell process and touch nothing outside it.
		".SetImplementationFlags(", // marks the stub PreserveSig
		".CreateType()",            // bakes the in-memory type
	}
}

func lintReadOnly(src string) []string {
	var bad []string
	verbs, allow := writeVerbs(), allowed()
	for _, line := range strings.Split(src, "\n") {
		l := line
		for _, a := range allow {
			l = strings.ReplaceAll(l, a, "")
		}
		for _, re := range verbs {
			if m := re.FindString(l); m != "" {
				bad = append(bad, m+" in: "+strings.TrimSpace(line))
			}
		}
	}
	return bad
}

func TestScriptIsReadOnly(t *testing.T) {
	for name, src := range map[string]string{"collect.ps1": collectScriptSource, "bootstrap": Bootstrap} {
		for _, b := range lintReadOnly(src) {
			t.Errorf("%s: write verb %s", name, b)
		}
	}
}

func TestLintCatchesWriteVerbs(t *testing.T) {
	for _, src := range []string{
		`Set-ItemProperty -Path x -Name y -Value 1`,
		`New-ItemProperty HKLM:\x`,
		`New-Item -Path HKLM:\x`,
		`Remove-Item HKLM:\x`,
		`reg add HKLM\x /v y`,
		`reg.exe delete HKLM\x`,
		`Invoke-WmiMethod -Class Win32_TSLicenseReport -Name GenerateReportEx`,
		`$r.GenerateReportEx(0)`,
		`$k.SetValue('a', 1)`,
		`$k.DeleteValue('a')`,
		`[Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('x', $true)`,
		`$k = OpenWith $sub 'FullControl'`,
		`$k = OpenWith $sub 'SetValue'`,
		`OpenSubKey($s, [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree)`,
		`OpenSubKey($s, [Microsoft.Win32.RegistryKeyPermissionCheck]::Default, [Security.AccessControl.RegistryRights]::TakeOwnership)`,
		`$o | Out-File c:\x.txt`,
		`"a" > c:\x.txt`,
		`$ts.SetSpecifiedLicenseServerList(@('a'))`,
		`$ts.ChangeMode(4); $ts.Put()`,
		// Compilation writes temporary files on the target.
		`Add-Type -TypeDefinition $src`,
		`Add-Type -PassThru -Namespace X -Name Y -MemberDefinition $sig`,
		`add-type -AssemblyName System.Web`,
		`& "$env:windir\Microsoft.NET\Framework64\v4.0.30319\csc.exe" /out:x.dll x.cs`,
		`$p = New-Object Microsoft.CSharp.CSharpCodeProvider`,
		`$ab = [AppDomain]::CurrentDomain.DefineDynamicAssembly($n, [Reflection.Emit.AssemblyBuilderAccess]::RunAndSave)`,
		`$ab.Save('x.dll')`,
		`[System.IO.File]::WriteAllText('c:\x.txt', $s)`,
		`[IO.File]::AppendAllText('c:\x.txt', $s)`,
		`[IO.Directory]::CreateDirectory('c:\x')`,
		`$t = [IO.Path]::GetTempFileName()`,
		`$w = New-Object IO.StreamWriter('c:\x.txt')`,
		`$o | Export-Csv -Path c:\x.csv`,
		`$o | Export-Clixml c:\x.xml`,
		`Set-Content -Path c:\x.txt -Value 1`,
		`Start-Transcript -Path c:\x.txt`,
	} {
		if len(lintReadOnly(src)) == 0 {
			t.Errorf("lint missed %q", src)
		}
	}
	for _, src := range []string{
		`$x = 1 2>$null`, `$k = OpenSubKey('x', $false)`, `Get-WmiObject -Class Win32_TSIssuedLicense`,
		`[Console]::Out.Write($s)`, `$m.WriteByte(1)`, `New-Object IO.StreamReader($m)`, `New-Object IO.MemoryStream`,
		`$ab = [AppDomain]::CurrentDomain.DefineDynamicAssembly($an, [Reflection.Emit.AssemblyBuilderAccess]::Run)`,
		`$pm.SetImplementationFlags([Reflection.MethodImplAttributes]::PreserveSig); $RegQ = $tb.CreateType()`,
		`$q = OpenWith $sub 'QueryValues'`, `$o = OpenWith $sub 'ReadPermissions'`,
	} {
		if b := lintReadOnly(src); len(b) != 0 {
			t.Errorf("lint flags read-only %q: %v", src, b)
		}
	}
}

func TestScriptTargetsPowerShell3(t *testing.T) {
	// Features newer than PowerShell 3.0 that must not creep in.
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)\bclass\s+\w+\s*\{`), regexp.MustCompile(`\?\?`), regexp.MustCompile(`(?i)::new\(`),
		regexp.MustCompile(`(?i)-AsHashtable|Get-CimInstance|ConvertTo-Json\s[^\n]*-EnumsAsStrings`),
	} {
		if m := re.FindString(collectScriptSource); m != "" {
			t.Errorf("script uses %q (not in PowerShell 3.0)", m)
		}
	}
	for _, want := range []string{"$ProgressPreference = 'SilentlyContinue'", "ConvertTo-Json", "RegQueryInfoKey", "FromFileTimeUtc", "AssemblyBuilderAccess]::Run)"} {
		if !strings.Contains(collectScriptSource, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if !strings.HasPrefix(Bootstrap, "$ProgressPreference='SilentlyContinue';") {
		t.Error("bootstrap must silence progress records before anything else")
	}
}

func goldenParams() ScriptParams {
	return ParamsFor(evidence.HostRef{Name: "rdsh01", Roles: []string{evidence.RoleSessionHost, evidence.RoleLicenseServer}}, 5000)
}

// TestCommandGolden: the command line and the stdin of a collection, as sent. The golden
// is readable PowerShell: review its diff like code.
func TestCommandGolden(t *testing.T) {
	col, err := BuildCollection(goldenParams())
	if err != nil {
		t.Fatal(err)
	}
	got := col.CommandLine + "\n" + string(col.Stdin) + "\n"
	path := filepath.Join("testdata", "command.golden")
	if updateGolden() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./collect/winrm -run TestCommandGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("collection changed; review and regenerate with -update")
	}
}

// TestScriptTravelsInPlainText: the script on stdin is the embedded script, minified
// only (comment lines, blank lines and indentation dropped), ASCII with LF line ends,
// so the script block the host compiles from its stdin lines is the same text in every
// code page; the command line is fixed, readable and short.
func TestScriptTravelsInPlainText(t *testing.T) {
	for _, km := range []bool{true, false} {
		sc := Script(km)
		for i := 0; i < len(sc); i++ {
			if c := sc[i]; c >= 0x80 || c == '\r' || (c < 0x20 && c != '\n' && c != '\t') {
				t.Fatalf("key_metadata %t: byte %#x at %d: the script must be printable ASCII with LF line ends", km, c, i)
			}
		}
		if strings.HasSuffix(sc, "\n") || strings.Contains(sc, "\n\n") {
			t.Errorf("key_metadata %t: trailing or blank line (the bootstrap joins stdin lines with LF)", km)
		}
		col, err := BuildCollection(ScriptParams{Roles: []string{"session_host"}, NoKeyMetadata: !km, Keys: []evidence.KeyRequest{{Path: "HKLM\\SOFTWARE\\Caf\u00e9\U0001F600"}}})
		if err != nil {
			t.Fatal(err)
		}
		data, script, _ := strings.Cut(string(col.Stdin), "\n")
		if script != sc || strings.Contains(data, "\n") || strings.ContainsFunc(data, func(r rune) bool { return r >= 0x80 }) {
			t.Errorf("key_metadata %t: stdin is not one ASCII JSON line then the script", km)
		}
		if !strings.Contains(data, `Caf\u00e9\ud83d\ude00`) {
			t.Errorf("non-ASCII not escaped: %s", data)
		}
	}
	if !strings.Contains(Script(true), "Get-WmiObject -Namespace $ns -Class $cls") {
		t.Error("script not readable as sent")
	}
	if len(CommandLine) > MaxCommandLine || strings.Contains(Bootstrap, `"`) || strings.ContainsAny(CommandLine[:strings.IndexByte(CommandLine, '"')], "&|<>^%") {
		t.Errorf("command line: %d characters, or a quote or a cmd.exe special character where cmd.exe would act on it: %s", len(CommandLine), CommandLine)
	}
	t.Logf("command line: %d characters; script %d bytes (key_metadata true), %d (false)", len(CommandLine), len(Script(true)), len(Script(false)))
	if _, err := BuildCollection(ScriptParams{Keys: []evidence.KeyRequest{{Path: strings.Repeat("x", MaxStdin)}}}); err == nil {
		t.Error("oversized parameters accepted")
	}
}

// suspiciousWords is Windows PowerShell 5.1's list of strings that make a script block
// "suspicious": logged as a Warning event 4104 with its full text even when script
// block logging is not configured (System.Management.Automation, ScriptBlock, matched
// case-insensitively as substrings).
var suspiciousWords = []string{"Add-Type", "AddSecurityPackage", "AdjustTokenPrivileges", "AllocHGlobal",
	"BindingFlags", "Bypass", "CloseHandle", "CreateDecryptor", "CreateEncryptor", "CreateProcessWithToken",
	"CreateRemoteThread", "CreateThread", "CreateType", "CreateUserThread", "Cryptography", "CryptoServiceProvider",
	"CryptoStream", "DangerousGetHandle", "DeclaringMethod", "DeclaringType", "DefineConstructor",
	"DefineDynamicAssembly", "DefineDynamicModule", "DefineEnum", "DefineField", "DefineLiteral",
	"DefinePInvokeMethod", "DefineType", "DeflateStream", "DeviceIoControl", "DllImport", "DuplicateTokenEx",
	"Emit", "EncodedCommand", "EnumerateSecurityPackages", "ExpandString", "FreeHGlobal", "FreeLibrary",
	"FromBase64String", "GetAssemblies", "GetAsyncKeyState", "GetConstructor", "GetConstructors",
	"GetDefaultMembers", "GetDelegateForFunctionPointer", "GetEvent", "GetEvents", "GetField", "GetFields",
	"GetForegroundWindow", "GetInterface", "GetInterfaceMap", "GetInterfaces", "GetKeyboardState",
	"GetLogonSessionData", "GetMember", "GetMembers", "GetMethod", "GetMethods", "GetModuleHandle",
	"GetNestedType", "GetNestedTypes", "GetPowerShell", "GetProcAddress", "GetProcessHandle", "GetProperties",
	"GetProperty", "GetTokenInformation", "GetTypes", "ILGenerator", "ImpersonateLoggedOnUser",
	"InteropServices", "IntPtr", "InvokeMember", "kernel32", "LoadLibrary", "LogPipelineExecutionDetails",
	"MakeArrayType", "MakeByRefType", "MakeGenericType", "MakePointerType", "Marshal", "memcpy", "MemoryStream",
	"Methods", "MiniDumpWriteDump", "NonPublic", "OpenDesktop", "OpenProcess", "OpenProcessToken",
	"OpenThreadToken", "OpenWindowStation", "PasswordDeriveBytes", "Properties", "ProtectedEventLogging",
	"PtrToString", "PtrToStructure", "ReadProcessMemory", "ReflectedType", "RevertToSelf", "RijndaelManaged",
	"ScriptBlockLogging", "SetInformationProcess", "SetThreadToken", "SHA1Managed", "StructureToPtr",
	"ToBase64String", "TransformFinalBlock", "TypeHandle", "TypeInitializer", "UnderlyingSystemType",
	"UnverifiableCodeAttribute", "VirtualAlloc", "VirtualFree", "VirtualProtect", "WriteByte", "WriteInt32",
	"WriteProcessMemory", "ZeroFreeGlobalAllocUnicode"}

func suspicious(src string) []string {
	var found []string
	l := strings.ToLower(src)
	for _, w := range suspiciousWords {
		if strings.Contains(l, strings.ToLower(w)) {
			found = append(found, w)
		}
	}
	return found
}

// TestKeyMetadataOff: collection.key_metadata false sends a script without
// Reflection.Emit and P/Invoke (issue 18). What each script still holds of Windows
// PowerShell's suspicious words is pinned here (and in docs/security.md): the bootstrap
// and the script without key metadata none (it does not hash binary values either:
// "Cryptography" is on the list; the collector hashes and redacts them).
func TestKeyMetadataOff(t *testing.T) {
	off := Script(false)
	for _, w := range []string{"DefineDynamicAssembly", "DefinePInvokeMethod", "DeflateStream", "FromBase64String", "Reflection.Emit", "IntPtr", "RegQueryInfoKey"} {
		if strings.Contains(off, w) {
			t.Errorf("key_metadata false: script contains %s", w)
		}
	}
	if got := suspicious(off); len(got) != 0 {
		t.Errorf("key_metadata false: suspicious words %v, want none", got)
	}
	if got := suspicious(Bootstrap); len(got) != 0 {
		t.Errorf("bootstrap: suspicious words %v", got)
	}
	on := Script(true)
	for _, w := range []string{"DefineDynamicAssembly", "DefinePInvokeMethod", "RegQueryInfoKey", "RegEnumKeyEx"} {
		if !strings.Contains(on, w) {
			t.Errorf("key_metadata true: script lacks %s", w)
		}
	}
	t.Logf("key_metadata true: suspicious words %v", suspicious(on))
	for _, sc := range []string{on, off} {
		if strings.Contains(sc, "#region") || strings.Contains(sc, "#endregion") {
			t.Error("region marker sent")
		}
	}
	// Both variants still read everything else.
	for _, want := range []string{"function LastWrite($k, $e) {", "GetAccessControl(", "Win32_TSIssuedLicense", "ConvertTo-Json"} {
		if !strings.Contains(off, want) {
			t.Errorf("key_metadata false: script lacks %q", want)
		}
	}
}

func TestParseCollectionRejects(t *testing.T) {
	good, err := BuildCollection(goldenParams())
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := strings.Cut(string(good.Stdin), "\n")
	for name, c := range map[string]Collection{
		"whoami":          {CommandLine: "whoami", Stdin: good.Stdin},
		"other bootstrap": {CommandLine: strings.Replace(CommandLine, "SilentlyContinue", "Continue", 1), Stdin: good.Stdin},
		"other script":    {CommandLine: CommandLine, Stdin: []byte(data + "\nRemove-Item C:\\ -Recurse")},
		"script appended": {CommandLine: CommandLine, Stdin: append(append([]byte{}, good.Stdin...), "\nRemove-Item C:\\"...)},
		"no script":       {CommandLine: CommandLine, Stdin: []byte(data)},
		"code as data":    {CommandLine: CommandLine, Stdin: []byte("$(Remove-Item C:\\)\n" + Script(true))},
		"two objects":     {CommandLine: CommandLine, Stdin: []byte(data + data + "\n" + Script(true))},
		"unknown field":   {CommandLine: CommandLine, Stdin: []byte(`{"roles":[],"run":"x"}` + "\n" + Script(true))},
		"truncated":       {CommandLine: CommandLine, Stdin: good.Stdin[:len(good.Stdin)-40]},
	} {
		if _, err := ParseCollection(c.CommandLine, c.Stdin); !errors.Is(err, ErrNotCollectionScript) {
			t.Errorf("%s: err = %v, want ErrNotCollectionScript", name, err)
		}
	}
	p, err := ParseCollection(good.CommandLine, good.Stdin)
	if err != nil || !reflect.DeepEqual(p, goldenParams()) {
		t.Errorf("round trip: %+v, %v", p, err)
	}
	off := goldenParams()
	off.NoKeyMetadata = true
	col, _ := BuildCollection(off)
	if p, err := ParseCollection(col.CommandLine, col.Stdin); err != nil || !p.NoKeyMetadata {
		t.Errorf("key_metadata false: %+v, %v", p, err)
	}
}

func FuzzCollectionRoundTrip(f *testing.F) {
	f.Add("rdsh01", `HKLM\SOFTWARE\x`, "X509 Certificate", 100, true)
	f.Add("", "", "", 0, false)
	f.Add("a'b\"c$(x)`n", "HKLM\\\u2018quoted\u2019\u2019\x00\n", "\uffff\U0001F600", -5, true)
	f.Fuzz(func(t *testing.T, role, path, value string, max int, redact bool) {
		p := ScriptParams{Roles: []string{role}, Keys: []evidence.KeyRequest{{Path: path, Redact: redact, OnlyValues: []string{value}}}, MaxIssued: max, NoKeyMetadata: redact}
		col, err := BuildCollection(p)
		if err != nil {
			return // only the stdin bound may refuse
		}
		got, err := ParseCollection(col.CommandLine, col.Stdin)
		if err != nil {
			t.Fatal(err)
		}
		// JSON replaces invalid UTF-8; compare what JSON can carry.
		want := p
		want.Roles = []string{jsonString(role)}
		want.Keys[0].Path = jsonString(path)
		want.Keys[0].OnlyValues = []string{jsonString(value)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
		// Data stays one line: the parameters can never become script lines.
		if data, _, _ := strings.Cut(string(col.Stdin), "\n"); strings.ContainsAny(data, "\r\u2028\u2029") || strings.ContainsFunc(data, func(r rune) bool { return r >= 0x80 }) {
			t.Fatal("parameters not one ASCII line")
		}
	})
}

// jsonString is what encoding/json makes of s: each invalid UTF-8 byte becomes U+FFFD.
func jsonString(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // range yields U+FFFD per invalid byte
	}
	return b.String()
}

// TestScriptWMIAbsenceByStatusCode: a missing WMI class or namespace is not an error,
// every other WMI failure is (access denied, provider failure). The script must tell
// them apart by WMI's status code (ManagementException.ErrorCode), never by a word in
// the message: "-notmatch 'class'" swallowed any failure whose text mentioned a class.
func TestScriptWMIAbsenceByStatusCode(t *testing.T) {
	loose := regexp.MustCompile(`(?i)Exception\.Message[^\n]*-(not)?(i|c)?(match|like)\s+['"][^'"]*(class|namespace)`)
	if m := loose.FindString(collectScriptSource); m != "" {
		t.Errorf("WMI absence decided by message text: %s", m)
	}
	for _, want := range []string{
		"function Absent($err, $codes)",
		"'System.Management.ManagementException'",
		"$x.ErrorCode",
		"catch { if (-not (Absent $_ 'InvalidNamespace')) { throw } }",
		"catch { if (-not (Absent $_ @('InvalidClass', 'InvalidNamespace', 'NotFound'))) { AddErr 'wmi:Win32_TSDeploymentLicensing'",
	} {
		if !strings.Contains(collectScriptSource, want) {
			t.Errorf("script lacks %q", want)
		}
	}
}

// TestScriptKeyMetadataWhenValuesUnreadable: GracePeriod's ACL (domain.md §3) may
// refuse reading its values; its LastWriteTime and owner (RDS-GRACE-005/006) must
// still be collected, with exists true and error saying the values are unknown.
// Without a Windows host this checks the script's shape: the denied case is caught on
// its own, and the metadata come from handles with read rights only.
func TestScriptKeyMetadataWhenValuesUnreadable(t *testing.T) {
	for _, want := range []string{
		"if (-not (Denied $_)) { throw }",
		"$e.exists = $true\n$e.error = \"values not readable (access denied; the key exists): ",
		"Unreadable $sub $e",
		"[Security.AccessControl.RegistryRights]$rights",
		"OpenWith $sub 'QueryValues'", "OpenWith $sub 'ReadPermissions'", "'EnumerateSubKeys'",
		"DefinePInvokeMethod('RegEnumKeyEx'", "$RegQ::RegEnumKeyEx(",
		"GetAccessControl([Security.AccessControl.AccessControlSections]::Owner)",
	} {
		if !strings.Contains(Script(true), want) {
			t.Errorf("script lacks %q", want)
		}
	}
}

// cultureInvariantFormats are the .NET standard date formats whose output is the same
// in every culture (round-trip, RFC 1123, sortable, universal sortable).
var cultureInvariantFormats = map[string]bool{"o": true, "O": true, "r": true, "R": true, "s": true, "u": true}

var (
	toStringFormat = regexp.MustCompile(`(?i)\.ToString\(\s*(['"])([^'"]*)['"]\s*(,[^)]*)?\)`)
	invariantArg   = regexp.MustCompile(`(?i)^,\s*\[(System\.)?(Globalization\.)?CultureInfo\]::InvariantCulture\s*$`)
	// cultureBound are constructs that format or parse with the current culture, whatever
	// their arguments: PowerShell's -f operator (String.Format with CurrentCulture), Get-Date
	// -Format/-UFormat, [string]::Format and [DateTime]::Parse* without a provider.
	cultureBound = []*regexp.Regexp{
		regexp.MustCompile(`['")\]]\s*-f\s`),
		regexp.MustCompile(`(?i)\bGet-Date\b[^\n;|]*-U?Format\b`),
		regexp.MustCompile(`(?i)\[(System\.)?String\]::Format\(\s*['"$]`),
		regexp.MustCompile(`(?i)\[(System\.)?DateTime\]::(Try)?Parse(Exact)?\((?:[^()]|\([^()]*\))*\)`),
	}
)

// lintCulture returns every place in a PowerShell source that formats a date or a
// number by hand without the invariant culture: a custom format string in .ToString()
// (in a custom date format ':' is the culture's time separator, '/' its date separator,
// and the year is the culture's calendar's) unless the invariant culture is passed, and
// every construct of cultureBound. Numbers and dates that PowerShell itself turns into
// text ("$x", ConvertTo-Json) are invariant already.
func lintCulture(src string) []string {
	var bad []string
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") {
			continue
		}
		for _, m := range toStringFormat.FindAllStringSubmatch(t, -1) {
			if cultureInvariantFormats[m[2]] || invariantArg.MatchString(m[3]) {
				continue
			}
			bad = append(bad, m[0]+" in: "+t)
		}
		for _, re := range cultureBound {
			for _, m := range re.FindAllString(t, -1) {
				if strings.Contains(strings.ToLower(m), "invariantculture") {
					continue
				}
				bad = append(bad, m+" in: "+t)
			}
		}
	}
	return bad
}

// TestScriptCultureInvariant: every date and number the collection script prints is the
// same on a host of any culture (issue 18: 'yyyy-MM-ddTHH:mm:ss.fffffffZ' printed
// another time separator on some cultures, and rdsaudit rejected the host's output).
func TestScriptCultureInvariant(t *testing.T) {
	for _, b := range lintCulture(collectScriptSource) {
		t.Errorf("collect.ps1: culture-dependent format %s", b)
	}
}

func TestLintCatchesCultureFormats(t *testing.T) {
	for _, src := range []string{
		`[DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ss.fffffffZ')`,
		`$d.ToString("yyyy-MM-dd")`,
		`$n.ToString('N2')`,
		`$n.ToString('0.00', $c)`,
		`'{0:N2}' -f $n`,
		`"{0}" -f 1.5`,
		`Get-Date -Format o`,
		`Get-Date -UFormat %s`,
		`[string]::Format('{0}', $n)`,
		`[DateTime]::Parse($s)`,
		`[datetime]::ParseExact($s, 'yyyyMMdd', $null)`,
	} {
		if len(lintCulture(src)) == 0 {
			t.Errorf("culture lint missed %q", src)
		}
	}
	for _, src := range []string{
		`[DateTime]::FromFileTimeUtc($ft).ToString('o')`,
		`[DateTime]::UtcNow.ToString('o')`,
		`$d.ToString('yyyy-MM-dd', [Globalization.CultureInfo]::InvariantCulture)`,
		`$n.ToString('0.00', [System.Globalization.CultureInfo]::InvariantCulture)`,
		`[string]::Format([Globalization.CultureInfo]::InvariantCulture, '{0}', $n)`,
		`[DateTime]::ParseExact($s, 'yyyyMMdd', [Globalization.CultureInfo]::InvariantCulture)`,
		`$sb.ToString()`, `"$($os.Version)"`, `Get-WmiObject -Class $cls -Filter x`,
		`# a comment with .ToString('yyyy')`,
	} {
		if b := lintCulture(src); len(b) != 0 {
			t.Errorf("culture lint flags invariant %q: %v", src, b)
		}
	}
}

// TestCompleteRegistry: what the script without key metadata leaves to the collector —
// every binary value gets its SHA-256, the values of keys requested with Redact (by path,
// or as direct subkeys of a Subkeys request) are reduced to length and SHA-256; values
// already hashed or redacted stay as they are.
func TestCompleteRegistry(t *testing.T) {
	reqs := []evidence.KeyRequest{{Path: `HKLM\A`, Redact: true, Subkeys: true}, {Path: `HKLM\B`}}
	ev := &evidence.Evidence{Registry: []evidence.RegKey{
		{Path: `HKLM\A`, Values: []evidence.RegValue{{Name: "x", Type: evidence.RegBinary, Hex: "0102", Length: 2}}},
		{Path: `hklm\a\Sub`, Values: []evidence.RegValue{{Name: "y", Type: evidence.RegBinary, Hex: "ff", Length: 1}}},
		{Path: `HKLM\A\Sub\Deeper`, Values: []evidence.RegValue{{Name: "z", Type: evidence.RegBinary, Hex: "ff", Length: 1}}},
		{Path: `HKLM\B`, Values: []evidence.RegValue{{Name: "w", Type: evidence.RegBinary, Hex: "ff", Length: 1}, {Name: "h", Type: evidence.RegBinary, SHA256: "abc", Redacted: true, Length: 9}}},
	}}
	completeRegistry(ev, reqs)
	const ff = "a8100ae6aa1940d0b663bb31cd466142ebbdbd5187131b92d93818987832eb89"
	r := ev.Registry
	if v := r[0].Values[0]; !v.Redacted || v.Hex != "" || v.SHA256 != "a12871fee210fb8619291eaea194581cbd2531e4b23759d225f6806923f63222" {
		t.Errorf("redacted key: %+v", v)
	}
	if v := r[1].Values[0]; !v.Redacted || v.Hex != "" || v.SHA256 != ff {
		t.Errorf("direct subkey of a redacted Subkeys request: %+v", v)
	}
	if v := r[2].Values[0]; v.Redacted || v.Hex != "ff" || v.SHA256 != ff {
		t.Errorf("deeper key (not requested with Redact): %+v", v)
	}
	if v := r[3].Values[0]; v.Redacted || v.Hex != "ff" || v.SHA256 != ff {
		t.Errorf("plain key: %+v", v)
	}
	if v := r[3].Values[1]; v.SHA256 != "abc" || !v.Redacted || v.Length != 9 {
		t.Errorf("already redacted: %+v", v)
	}
}
