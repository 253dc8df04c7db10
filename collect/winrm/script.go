package winrm

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// The collection script and how it travels (issue 18).
//
// The script travels in plain text on the command's stdin (WinRS Send, the last chunk
// with End="true"), never compressed, packed or encoded. The command line is fixed and
// readable: powershell.exe -NoProfile -NonInteractive -Command "<bootstrap>", where the
// bootstrap reads stdin ($input, one string per line), takes the first line as the
// parameters (JSON) and the rest, joined with LF as sent, as the script; it compiles
// the script with [ScriptBlock]::Create and invokes it with the parameters as its ONE
// argument. Host names, key paths and limits are therefore always data, never code:
// nothing from configuration or inventory is spliced into the script text, and the
// script block Windows PowerShell compiles (and logs, event 4104, when it logs) is the
// embedded script byte for byte, whatever the host: ScriptSHA256 identifies it.
//
// Stdin is read by powershell.exe in the console code page of the shell (WINRS_CODEPAGE);
// the script and the parameters are plain ASCII (non-ASCII in parameters is escaped as
// \uXXXX JSON), so every code page reads them alike.

//go:embed script/collect.ps1
var collectScriptSource string

// MaxCommandLine is the cmd.exe command-line limit the command line must respect.
const MaxCommandLine = 8191

// Bootstrap is the PowerShell on the command line: it runs the script read from stdin.
// It contains no double quote, and none of cmd.exe's special characters outside the
// double quotes that enclose it.
const Bootstrap = `$ProgressPreference='SilentlyContinue';$p,$s=@($input);& ([ScriptBlock]::Create($s -join [char]10)) $p`

// CommandLine is the command line of every collection, the same for every host.
const CommandLine = `powershell.exe -NoProfile -NonInteractive -Command "` + Bootstrap + `"`

// MaxStdin bounds the stdin of a collection (script and parameters).
const MaxStdin = 1 << 20

// keyMetadataRegion marks the lines of collect.ps1 that read key metadata through the
// in-memory P/Invoke stub; Script(false) leaves them out.
const keyMetadataRegion = "key-metadata"

// ErrNotCollectionScript is returned by ParseCollection for anything that is not exactly
// rdsaudit's collection: the fixed command line, then the parameters and one of the
// embedded scripts on stdin.
var ErrNotCollectionScript = errors.New("not the rdsaudit collection script")

// ScriptParams are the collection script's parameters. They travel as data (JSON).
type ScriptParams struct {
	// Roles are the host's inventory roles; license-server sections run only for
	// RoleLicenseServer.
	Roles []string `json:"roles"`
	// Keys are the registry keys to read (evidence.KeysFor(Roles) unless a test says otherwise).
	Keys []evidence.KeyRequest `json:"keys"`
	// MaxIssued bounds the issued-licence list; the total is always counted.
	MaxIssued int `json:"max_issued"`
	// NoKeyMetadata selects the script without key metadata (collection.key_metadata:
	// false): no Reflection.Emit, no P/Invoke, no key LastWriteTime. It chooses the
	// script, it is not a parameter of it.
	NoKeyMetadata bool `json:"-"`
}

// DefaultMaxIssued is the default bound of the issued-licence list per license server
// (config's default too). A license server may hold 100,000 issued CALs; the script
// streams them, and at about 300 bytes of JSON each they take about 30 MiB of output,
// within DefaultMaxOutputBytes (see BenchmarkCollectLicenseServer).
const DefaultMaxIssued = 100000

// ParamsFor returns the script parameters for a host.
func ParamsFor(host evidence.HostRef, maxIssued int) ScriptParams {
	if maxIssued <= 0 {
		maxIssued = DefaultMaxIssued
	}
	roles := append([]string{}, host.Roles...)
	return ScriptParams{Roles: roles, Keys: evidence.KeysFor(roles), MaxIssued: maxIssued}
}

// Script returns the script exactly as it is sent and compiled on the host: with key
// metadata (the default) or without (collection.key_metadata: false).
func Script(keyMetadata bool) string {
	s := scripts()
	if keyMetadata {
		return s[0]
	}
	return s[1]
}

// CollectionScript returns the script as it runs on the host with the default options.
func CollectionScript() string { return Script(true) }

// ScriptSHA256 is the hex SHA-256 of Script(keyMetadata), the text of the script block
// the host compiles: what `rdsaudit script` prints for allow-listing.
func ScriptSHA256(keyMetadata bool) string { return sha256Hex(Script(keyMetadata)) }

// CommandLineSHA256 is the hex SHA-256 of CommandLine.
func CommandLineSHA256() string { return sha256Hex(CommandLine) }

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// scripts are the two variants, minified, computed once.
var scripts = sync.OnceValue(func() [2]string {
	return [2]string{minifyPS(collectScriptSource), minifyPS(dropRegion(collectScriptSource, keyMetadataRegion))}
})

// dropRegion removes the lines from each "#region name" to its "#endregion name".
func dropRegion(src, name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.SplitAfter(src, "\n") {
		switch strings.TrimSpace(line) {
		case "#region " + name:
			in = true
			continue
		case "#endregion " + name:
			in = false
			continue
		}
		if !in {
			b.WriteString(line)
		}
	}
	return b.String()
}

// minifyPS drops comment-only lines, blank lines and indentation; lines are joined with
// LF, with none after the last (the bootstrap joins stdin lines with LF). It never
// touches the inside of a line, so string literals stay intact.
func minifyPS(src string) string {
	var lines []string
	for _, line := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		lines = append(lines, t)
	}
	return strings.Join(lines, "\n")
}

// Collection is one run of the collection script: the command line and its stdin.
type Collection struct {
	CommandLine string // CommandLine
	Stdin       []byte // the parameters (JSON, one line), LF, the script
}

// BuildCollection returns the collection that runs the script with the given parameters.
func BuildCollection(p ScriptParams) (Collection, error) {
	data, err := paramJSON(p)
	if err != nil {
		return Collection{}, err
	}
	return buildCollection(data, !p.NoKeyMetadata)
}

func buildCollection(data []byte, keyMetadata bool) (Collection, error) {
	script := Script(keyMetadata)
	if len(data)+1+len(script) > MaxStdin {
		return Collection{}, fmt.Errorf("build collection: %d bytes of parameters exceed the %d-byte stdin bound", len(data), MaxStdin)
	}
	stdin := make([]byte, 0, len(data)+1+len(script))
	stdin = append(append(append(stdin, data...), '\n'), script...)
	return Collection{CommandLine: CommandLine, Stdin: stdin}, nil
}

// paramJSON is the parameters' JSON in ASCII: one line (encoding/json escapes control
// characters), every non-ASCII character escaped as \uXXXX.
func paramJSON(p ScriptParams) ([]byte, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("build collection: %w", err)
	}
	var b bytes.Buffer
	for _, r := range string(data) {
		if r < utf8.RuneSelf {
			b.WriteByte(byte(r))
			continue
		}
		if r > 0xffff {
			r1, r2 := surrogates(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.Bytes(), nil
}

func surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// maxCachedCommands bounds a commandCache: an inventory has a handful of distinct role
// sets, so the bound is only reached by unusual inventories; past it, collections are
// built on every use, as without a cache.
const maxCachedCommands = 64

// commandCache holds the collections a collector built, by the JSON of their
// parameters and the script variant: the same for every host with the same roles.
// Safe for concurrent use; the zero value is ready.
type commandCache struct {
	mu     sync.Mutex
	m      map[string]*cachedCommand
	builds atomic.Int64 // collections built (tests)
}

type cachedCommand struct {
	once sync.Once
	col  Collection
	err  error
}

// collection returns BuildCollection(p), building it once per distinct parameters.
func (cc *commandCache) collection(p ScriptParams) (Collection, error) {
	data, err := paramJSON(p)
	if err != nil {
		return Collection{}, err
	}
	key := fmt.Sprintf("%t %s", p.NoKeyMetadata, data)
	cc.mu.Lock()
	e := cc.m[key]
	if e == nil && len(cc.m) < maxCachedCommands {
		if cc.m == nil {
			cc.m = map[string]*cachedCommand{}
		}
		e = &cachedCommand{}
		cc.m[key] = e
	}
	cc.mu.Unlock()
	build := func() (Collection, error) {
		cc.builds.Add(1)
		return buildCollection(data, !p.NoKeyMetadata)
	}
	if e == nil {
		return build()
	}
	e.once.Do(func() { e.col, e.err = build() })
	return e.col, e.err
}

// ParseCollection checks that a command line and the stdin it received are exactly
// rdsaudit's collection (CommandLine; one JSON line of parameters, LF, one of the
// embedded scripts byte for byte) and returns the parameters, with NoKeyMetadata set
// for the script without key metadata. Anything else yields an error wrapping
// ErrNotCollectionScript.
func ParseCollection(cmdline string, stdin []byte) (ScriptParams, error) {
	var p ScriptParams
	if err := CheckCommandLine(cmdline); err != nil {
		return p, err
	}
	data, script, ok := bytes.Cut(stdin, []byte("\n"))
	if !ok {
		return p, fmt.Errorf("%w: stdin holds no script", ErrNotCollectionScript)
	}
	switch string(script) {
	case Script(true):
	case Script(false):
		p.NoKeyMetadata = true
	default:
		return p, fmt.Errorf("%w: script differs from the embedded one", ErrNotCollectionScript)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: parameters: %v", ErrNotCollectionScript, err)
	}
	if dec.More() {
		return p, fmt.Errorf("%w: parameters: data after the JSON object", ErrNotCollectionScript)
	}
	return p, nil
}

// CheckCommandLine reports whether cmdline is CommandLine (surrounding space aside).
func CheckCommandLine(cmdline string) error {
	if strings.TrimSpace(cmdline) != CommandLine {
		return fmt.Errorf("%w: unknown command line", ErrNotCollectionScript)
	}
	return nil
}

// completeRegistry finishes the binary registry values of a decoded collection as the
// script with key metadata reports them: the script without it (no hashing on the host:
// "Cryptography" is on Windows PowerShell's suspicious list) sends every binary value as
// hex, so here each gets its SHA-256, and the values of keys requested with Redact are
// reduced to length and SHA-256 (evidence.RegValue.Redact) before the evidence goes
// anywhere. Values that arrived hashed or redacted are left as they are.
func completeRegistry(ev *evidence.Evidence, reqs []evidence.KeyRequest) {
	for i := range ev.Registry {
		k := &ev.Registry[i]
		redact := redactedKey(k.Path, reqs)
		for j := range k.Values {
			v := &k.Values[j]
			if v.Hex == "" {
				continue
			}
			if redact {
				*v = v.Redact()
				continue
			}
			if v.SHA256 == "" {
				if raw, err := hex.DecodeString(v.Hex); err == nil {
					sum := sha256.Sum256(raw)
					v.SHA256 = hex.EncodeToString(sum[:])
				}
			}
		}
	}
}

// redactedKey reports whether the key at path was requested with Redact: by its own
// path, or as a direct subkey of a Subkeys request.
func redactedKey(path string, reqs []evidence.KeyRequest) bool {
	for _, r := range reqs {
		if !r.Redact {
			continue
		}
		if strings.EqualFold(path, r.Path) {
			return true
		}
		if r.Subkeys && len(path) > len(r.Path)+1 && strings.EqualFold(path[:len(r.Path)+1], r.Path+`\`) && !strings.Contains(path[len(r.Path)+1:], `\`) {
			return true
		}
	}
	return false
}
