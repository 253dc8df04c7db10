package winrm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The collection script is parsed by an independent PowerShell grammar,
// tree-sitter-powershell (npm; its WASM grammar run by web-tree-sitter), which .ci/run installs with
// `npm ci` in testdata/treesitter (versions pinned by its package-lock.json). Locally the
// tests skip when node or the package is missing; under CI=true they fail instead.

// tsNode is a syntax tree node as testdata/treesitter/parse.mjs prints it.
type tsNode struct {
	Type    string    `json:"t"`
	Row     int       `json:"r"`
	Col     int       `json:"c"`
	Text    string    `json:"x"`
	Error   bool      `json:"e"`
	Missing bool      `json:"m"`
	Kids    []*tsNode `json:"k"`
}

func (n *tsNode) walk(f func(*tsNode)) {
	f(n)
	for _, k := range n.Kids {
		k.walk(f)
	}
}

// child returns the first child of one of the types, or nil.
func (n *tsNode) child(types ...string) *tsNode {
	for _, k := range n.Kids {
		for _, t := range types {
			if k.Type == t {
				return k
			}
		}
	}
	return nil
}

func (n *tsNode) at() string { return fmt.Sprintf("%d:%d", n.Row+1, n.Col+1) }

// parsePowerShell parses each source with tree-sitter-powershell and returns the trees
// in order.
func parsePowerShell(t *testing.T, sources ...string) []*tsNode {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "treesitter"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	for _, pkg := range []string{"tree-sitter-powershell", "web-tree-sitter"} {
		if err == nil {
			_, err = os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json"))
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tree-sitter-powershell not available under CI (.ci/run installs it: npm ci --ignore-scripts --prefix %s): %v", dir, err)
		}
		t.Skipf("tree-sitter-powershell not installed (npm ci --ignore-scripts --prefix %s): %v", dir, err)
	}
	tmp := t.TempDir()
	// --liftoff-only: V8's optimising tier recompiles the 1 MB grammar for a minute of
	// CPU (measured: 0.4 s with it, 51 s to 2.5 min without, for collect.ps1).
	args := []string{"--liftoff-only", filepath.Join(dir, "parse.mjs")}
	for i, src := range sources {
		p := filepath.Join(tmp, fmt.Sprintf("s%d.ps1", i))
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node parse.mjs: %v\n%s", err, stderr.Bytes())
	}
	var trees []*tsNode
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 256<<20)
	for sc.Scan() {
		var doc struct {
			Root *tsNode `json:"root"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil || doc.Root == nil {
			t.Fatalf("parse.mjs output: %v", err)
		}
		trees = append(trees, doc.Root)
	}
	if len(trees) != len(sources) {
		t.Fatalf("parse.mjs printed %d trees for %d sources\n%s", len(trees), len(sources), stderr.Bytes())
	}
	return trees
}

// shippedNames are the PowerShell texts a host runs, in the order shippedScripts
// returns them: the script as sent on stdin with and without key metadata
// (collection.key_metadata), and the command line's bootstrap that runs it.
var shippedNames = []string{"collect.ps1 (as sent)", "collect.ps1 (as sent, key_metadata false)", "bootstrap"}

func shippedScripts(t *testing.T) []string {
	t.Helper()
	if !strings.Contains(CommandLine, Bootstrap) {
		t.Fatal("the command line does not carry the bootstrap")
	}
	return []string{Script(true), Script(false), Bootstrap}
}

// TestScriptParsesAsPowerShell: the grammar finds no ERROR and no MISSING node in the
// shipped scripts, and finds commands in them (it parsed them as PowerShell, not as one
// opaque token).
func TestScriptParsesAsPowerShell(t *testing.T) {
	scripts, names := shippedScripts(t), shippedNames
	trees := parsePowerShell(t, scripts...)
	for i, tree := range trees {
		commands := 0
		tree.walk(func(n *tsNode) {
			switch {
			case n.Error:
				t.Errorf("%s:%s: syntax error: %.80q", names[i], n.at(), n.Text)
			case n.Missing:
				t.Errorf("%s:%s: missing %s", names[i], n.at(), n.Type)
			case n.Type == "command" || n.Type == "invokation_expression":
				commands++
			}
		})
		if commands == 0 {
			t.Errorf("%s: no command or invocation in the parse tree", names[i])
		}
	}
}

// TestScriptIsReadOnlyByParseTree runs the write-verb lint on the parse tree of the
// shipped scripts: command names from command nodes, methods from invocation nodes,
// redirections from redirection nodes; comments and strings cannot hide or fake a call.
func TestScriptIsReadOnlyByParseTree(t *testing.T) {
	for i, tree := range parsePowerShell(t, shippedScripts(t)...) {
		for _, b := range lintTree(tree) {
			t.Errorf("%s: %s", shippedNames[i], b)
		}
	}
}

// TestTreeLintCatchesWriteVerbs: the tree lint flags what the text lint's examples
// flag, and not the read-only ones, nor write verbs in comments and strings.
func TestTreeLintCatchesWriteVerbs(t *testing.T) {
	bad := []string{
		`Set-ItemProperty -Path x -Name y -Value 1`, `New-ItemProperty HKLM:\x`, `New-Item -Path HKLM:\x`,
		`Remove-Item HKLM:\x`, `reg add HKLM\x /v y`, `reg.exe delete HKLM\x`,
		`Invoke-WmiMethod -Class Win32_TSLicenseReport -Name GenerateReportEx`, `$r.GenerateReportEx(0)`,
		`$k.SetValue('a', 1)`, `$k.DeleteValue('a')`, `[Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('x', $true)`,
		`$k = OpenWith $sub 'FullControl'`, `$k = OpenWith $sub 'SetValue'`,
		`OpenSubKey($s, [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree)`,
		`OpenSubKey($s, [Microsoft.Win32.RegistryKeyPermissionCheck]::Default, [Security.AccessControl.RegistryRights]::TakeOwnership)`,
		`$o | Out-File c:\x.txt`, `"a" > c:\x.txt`, `$ts.SetSpecifiedLicenseServerList(@('a'))`, `$ts.ChangeMode(4); $ts.Put()`,
		`Add-Type -TypeDefinition $src`, `Add-Type -PassThru -Namespace X -Name Y -MemberDefinition $sig`, `add-type -AssemblyName System.Web`,
		`& "$env:windir\Microsoft.NET\Framework64\v4.0.30319\csc.exe" /out:x.dll x.cs`, `$p = New-Object Microsoft.CSharp.CSharpCodeProvider`,
		`$ab = [AppDomain]::CurrentDomain.DefineDynamicAssembly($n, [Reflection.Emit.AssemblyBuilderAccess]::RunAndSave)`,
		`$ab.Save('x.dll')`, `[System.IO.File]::WriteAllText('c:\x.txt', $s)`, `[IO.File]::AppendAllText('c:\x.txt', $s)`,
		`[IO.Directory]::CreateDirectory('c:\x')`, `$t = [IO.Path]::GetTempFileName()`, `$w = New-Object IO.StreamWriter('c:\x.txt')`,
		`$o | Export-Csv -Path c:\x.csv`, `$o | Export-Clixml c:\x.xml`, `Set-Content -Path c:\x.txt -Value 1`, `Start-Transcript -Path c:\x.txt`,
		`iex $s`, `Invoke-Expression $s`, `schtasks.exe /create /tn x`, `if ($x) { foreach ($h in $hs) { Stop-Service $h } }`,
		`$f = { param($p) Restart-Computer -Force }`, `sc.exe config x start= disabled`,
	}
	good := []string{
		`$x = 1 2>$null`, `$k = OpenSubKey('x', $false)`, `Get-WmiObject -Class Win32_TSIssuedLicense`,
		`[Console]::Out.Write($s)`, `$m.WriteByte(1)`, `New-Object IO.StreamReader($m)`, `New-Object IO.MemoryStream`,
		`$ab = [AppDomain]::CurrentDomain.DefineDynamicAssembly($an, [Reflection.Emit.AssemblyBuilderAccess]::Run)`,
		`$pm.SetImplementationFlags([Reflection.MethodImplAttributes]::PreserveSig); $RegQ = $tb.CreateType()`,
		`$q = OpenWith $sub 'QueryValues'`, `$o = OpenWith $sub 'ReadPermissions'`,
		`$sb = [ScriptBlock]::Create($s)`, `$h = [Security.Cryptography.SHA256]::Create()`, `$x 2>&1 | Out-Null`,
		"# Set-ItemProperty is never called here\nGet-Item HKLM:\\x", `Write-Verbose 'Remove-Item would write'`, `$s = "reg add HKLM\x"`,
	}
	trees := parsePowerShell(t, append(append([]string(nil), bad...), good...)...)
	for i, src := range bad {
		if len(lintTree(trees[i])) == 0 {
			t.Errorf("tree lint missed %q", src)
		}
	}
	for i, src := range good {
		if b := lintTree(trees[len(bad)+i]); len(b) != 0 {
			t.Errorf("tree lint flags read-only %q: %v", src, b)
		}
	}
}

// Write verbs as the parse tree shows them (see writeVerbs for the text patterns).
var (
	tsWriteCommand = regexp.MustCompile(`(?i)^((Set|Remove|Clear|Rename|Move|Copy|Stop|Start|Restart|Suspend|Resume|Register|Unregister|Enable|Disable|Install|Uninstall|Grant|Revoke|Reset|Update|Invoke|Export)-\w|New-(Item|ItemProperty|PSDrive|Service|CimInstance|WmiObject|EventLog|ScheduledTask)$|(Out-File|Tee-Object|Add-Content|Add-Type|iex)$|(Write)-(?i:(?:[^hvwdeiop]|h[^o]|v[^e]|w[^a]|d[^e]|e[^r]|i[^n]|o[^u]|p[^r])))`)
	// Write-Host, -Verbose, -Warning, -Debug, -Error, -Information, -Output and
	// -Progress write to PowerShell streams, not to the host's state.
	tsNative     = regexp.MustCompile(`(?i)^(sc|schtasks|net|net1|wmic|bcdedit|takeown|icacls|shutdown|csc|vbc|jsc|ilasm|cvtres|al)(\.exe)?$`)
	tsRegWrite   = regexp.MustCompile(`(?i)^(add|delete|import|restore|load|unload|copy|save)$`)
	tsParam      = regexp.MustCompile(`(?i)^-(TypeDefinition|MemberDefinition|OutputAssembly|ReferencedAssemblies)$`)
	tsMethod     = regexp.MustCompile(`(?i)^(Put|Delete\w*|SetValue|Set\w+|Create\w*|Activate\w*|Install\w*|Uninstall\w*|Revoke\w*|Remove\w*|Flush|Save|Generate\w*|Change\w*)$`)
	tsIOType     = regexp.MustCompile(`(?i)^(System\.)?IO\.(File|Directory|FileInfo|DirectoryInfo)$`)
	tsIOMethod   = regexp.MustCompile(`(?i)^(Write|Append|Create|Copy|Move|Delete|Replace|Open|Encrypt|Decrypt|Set)`)
	tsWriterType = regexp.MustCompile(`(?i)(^|\.)(StreamWriter|FileStream|BinaryWriter|FileInfo|DirectoryInfo|CSharpCodeProvider|VBCodeProvider|CodeDomProvider|CompilerParameters)\b`)
	tsRights     = regexp.MustCompile(`(?i)^(SetValue|CreateSubKey|CreateLink|WriteKey|FullControl|ChangePermissions|TakeOwnership|Delete|ReadWriteSubTree)$`)
	tsSaveAccess = regexp.MustCompile(`(?i)Save`)
)

// tsAllowedCalls are method calls that match tsMethod but build objects in memory: the
// type (or "" for any target) and the method.
var tsAllowedCalls = map[string]string{
	"scriptblock": "create", "sha256": "create", "security.cryptography.sha256": "create", "system.security.cryptography.sha256": "create",
	"*setimplementationflags": "", "*createtype": "",
}

// lintTree returns the write operations in a parse tree, each with its position.
func lintTree(root *tsNode) []string {
	var bad []string
	flag := func(n *tsNode, what string) { bad = append(bad, fmt.Sprintf("%s: %s", n.at(), what)) }
	root.walk(func(n *tsNode) {
		switch n.Type {
		case "command":
			name := commandName(n)
			base := name
			if i := strings.LastIndexAny(base, `\/`); i >= 0 {
				base = base[i+1:]
			}
			args := commandArgs(n)
			switch {
			case tsWriteCommand.MatchString(name):
				flag(n, "command "+name)
			case tsNative.MatchString(base):
				flag(n, "native command "+name)
			case strings.EqualFold(strings.TrimSuffix(strings.ToLower(base), ".exe"), "reg") && len(args) > 0 && tsRegWrite.MatchString(args[0]):
				flag(n, "reg "+args[0])
			case strings.EqualFold(name, "New-Object") && len(args) > 0 && tsWriterType.MatchString(args[0]):
				flag(n, "New-Object "+args[0])
			}
			for _, k := range n.Kids {
				k.walk(func(p *tsNode) {
					if p.Type == "command_parameter" && tsParam.MatchString(p.Text) {
						flag(p, "parameter "+p.Text)
					}
				})
			}
		case "invokation_expression":
			m := n.child("member_name")
			if m == nil || len(n.Kids) == 0 {
				return
			}
			method, target := m.Text, n.Kids[0]
			typ := ""
			if target.Type == "type_literal" {
				typ = strings.Trim(target.Text, "[] ")
			}
			switch {
			case typ != "" && tsIOType.MatchString(typ) && tsIOMethod.MatchString(method):
				flag(n, fmt.Sprintf("[%s]::%s", typ, method))
			case strings.EqualFold(typ, "IO.Path") || strings.EqualFold(typ, "System.IO.Path"):
				if strings.HasPrefix(strings.ToLower(method), "gettemp") {
					flag(n, fmt.Sprintf("[%s]::%s", typ, method))
				}
			case strings.EqualFold(method, "OpenSubKey") && strings.Contains(strings.ToLower(n.Text), "$true"):
				flag(n, "writable OpenSubKey")
			case tsMethod.MatchString(method) && !allowedCall(typ, method):
				flag(n, "method ."+method)
			}
		case "member_access":
			if m := n.child("member_name"); m != nil && len(n.Kids) > 0 && n.Kids[0].Type == "type_literal" {
				typ := strings.ToLower(n.Kids[0].Text)
				switch {
				case strings.Contains(typ, "assemblybuilderaccess") && tsSaveAccess.MatchString(m.Text):
					flag(n, "AssemblyBuilderAccess "+m.Text)
				case (strings.Contains(typ, "registryrights") || strings.Contains(typ, "registrykeypermissioncheck")) && tsRights.MatchString(m.Text):
					flag(n, "registry right "+m.Text)
				}
			}
		case "string_literal":
			if tsRights.MatchString(strings.Trim(n.Text, `'"`)) {
				flag(n, "registry right "+n.Text)
			}
		case "type_literal", "type_name":
			if n.Type == "type_literal" && tsWriterType.MatchString(strings.Trim(n.Text, "[] ")) {
				flag(n, "type "+n.Text)
			}
		case "redirection":
			if op := n.child("file_redirection_operator"); op != nil {
				if f := n.child("redirected_file_name"); f == nil || !strings.EqualFold(strings.TrimSpace(f.Text), "$null") {
					flag(n, "redirection to a file: "+n.Text)
				}
			}
		}
	})
	return bad
}

// allowedCall reports whether a method call on typ (a type literal, or "") is one of
// tsAllowedCalls.
func allowedCall(typ, method string) bool {
	m := strings.ToLower(method)
	if v, ok := tsAllowedCalls["*"+m]; ok && v == "" {
		return true
	}
	return typ != "" && tsAllowedCalls[strings.ToLower(typ)] == m
}

// commandName is the name a command node invokes: its command_name, or the string or
// expression after & (quotes removed).
func commandName(n *tsNode) string {
	if c := n.child("command_name", "path_command_name"); c != nil {
		return c.Text
	}
	if c := n.child("command_name_expr"); c != nil {
		return strings.Trim(c.Text, `'"`)
	}
	return ""
}

// commandArgs are a command's arguments as written (parameters included), in order.
func commandArgs(n *tsNode) []string {
	els := n.child("command_elements")
	if els == nil {
		return nil
	}
	var out []string
	for _, k := range els.Kids {
		if k.Type != "command_argument_sep" && strings.TrimSpace(k.Text) != "" {
			out = append(out, strings.TrimSpace(k.Text))
		}
	}
	return out
}
