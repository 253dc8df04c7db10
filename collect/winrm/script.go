package winrm

import (
	"bytes"
	"compress/flate"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// The collection script and how it travels.
//
// cmd.exe limits a command line to 8191 characters and -EncodedCommand costs 2.67
// characters per script character (UTF-16LE, then base64), so the script cannot be sent
// as is. It is minified (comment lines and indentation dropped), deflated, and packed 15
// bits per character into a single-quoted PowerShell string literal: the code points
// U+3000..U+AFFF contain no quote character (none of ' ‘ ’ ‚ ‛) and no surrogate, so the
// literal cannot end early. A small fixed bootstrap unpacks and inflates it, compiles it
// with [ScriptBlock]::Create and invokes it with ONE argument: the parameters as JSON,
// packed the same way into a second string literal. Host names, key paths and limits are
// therefore always data, never code: nothing from configuration or inventory is ever
// spliced into the script text.

//go:embed script/collect.ps1
var collectScriptSource string

// MaxCommandLine is the cmd.exe command-line limit the encoded command must respect.
const MaxCommandLine = 8191

// packBase is the first code point of the packing alphabet (2^15 code points follow).
const packBase = 0x3000

// commandPrefix is the executable and switches preceding the encoded bootstrap.
const commandPrefix = "powershell.exe -NoProfile -NonInteractive -EncodedCommand "

// bootstrapHead and bootstrapTail surround the two packed literals: SCRIPT and DATA.
const (
	bootstrapHead = "$ProgressPreference='SilentlyContinue';" +
		"function U($s){$m=New-Object IO.MemoryStream;$a=0;$n=0;" +
		"foreach($c in $s.ToCharArray()){$a=($a -shl 15) -bor ([int]$c-12288);$n+=15;" +
		"while($n -ge 8){$n-=8;$m.WriteByte(($a -shr $n) -band 255)};$a=$a -band ((1 -shl $n)-1)};" +
		"$m.Position=0;(New-Object IO.StreamReader((New-Object IO.Compression.DeflateStream($m," +
		"[IO.Compression.CompressionMode]::Decompress)),[Text.Encoding]::UTF8)).ReadToEnd()};" +
		"& ([ScriptBlock]::Create((U '"
	bootstrapMid  = "'))) (U '"
	bootstrapTail = "')"
)

// ErrNotCollectionScript is returned by ParseCollectionCommand for any command that is
// not exactly the bootstrap carrying rdsaudit's collection script.
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

// CollectionScript returns the script as it runs on the host (minified).
func CollectionScript() string { return minifiedScript() }

// minifiedScript returns the script as it runs on the host; computed once.
var minifiedScript = sync.OnceValue(func() string { return minifyPS(collectScriptSource) })

// packedScript returns the packed literal of the script; computed once.
var packedScript = sync.OnceValue(func() string { return mustPack([]byte(minifiedScript())) })

// minifyPS drops comment-only lines, blank lines and indentation. It never touches the
// inside of a line, so string literals stay intact.
func minifyPS(src string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return b.String()
}

func mustPack(b []byte) string {
	s, err := pack(b)
	if err != nil {
		panic(err)
	}
	return s
}

// pack deflates b and packs the bytes 15 bits per code point (MSB first, zero padded).
func pack(b []byte) (string, error) {
	var z bytes.Buffer
	w, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	var out strings.Builder
	var acc uint32
	n := 0
	for _, c := range z.Bytes() {
		acc = acc<<8 | uint32(c)
		n += 8
		if n >= 15 {
			n -= 15
			out.WriteRune(rune(packBase + (acc>>n)&0x7fff))
			acc &= 1<<n - 1
		}
	}
	if n > 0 {
		out.WriteRune(rune(packBase + (acc<<(15-n))&0x7fff))
	}
	return out.String(), nil
}

// unpack reverses pack, as the bootstrap does on the host.
func unpack(s string) ([]byte, error) {
	var z bytes.Buffer
	var acc uint32
	n := 0
	for _, r := range s {
		if r < packBase || r >= packBase+1<<15 {
			return nil, fmt.Errorf("unpack: code point %U outside the packing alphabet", r)
		}
		acc = acc<<15 | uint32(r-packBase)
		n += 15
		for n >= 8 {
			n -= 8
			z.WriteByte(byte(acc >> n))
		}
		acc &= 1<<n - 1
	}
	// Like .NET's DeflateStream, stop at the final block: a padding byte may follow.
	out, err := io.ReadAll(io.LimitReader(flate.NewReader(&z), 1<<20))
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	return out, nil
}

// BuildCommand returns the complete command line that runs the collection script with
// the given parameters: powershell.exe -NoProfile -NonInteractive -EncodedCommand <b64>.
// It fails when the result would exceed MaxCommandLine.
func BuildCommand(p ScriptParams) (string, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("build command: %w", err)
	}
	return buildCommand(data)
}

// buildCommand is BuildCommand of the parameters' JSON.
func buildCommand(data []byte) (string, error) {
	packedData, err := pack(data)
	if err != nil {
		return "", fmt.Errorf("build command: %w", err)
	}
	ps := bootstrapHead + packedScript() + bootstrapMid + packedData + bootstrapTail
	cmd := commandPrefix + EncodePowerShell(ps)
	if len(cmd) > MaxCommandLine {
		return "", fmt.Errorf("build command: %d characters exceed the %d-character command line limit", len(cmd), MaxCommandLine)
	}
	return cmd, nil
}

// maxCachedCommands bounds a commandCache: an inventory has a handful of distinct role
// sets, so the bound is only reached by unusual inventories; past it, commands are
// built on every use, as without a cache.
const maxCachedCommands = 64

// commandCache holds the command lines a collector built, by the JSON of their
// parameters (what the command carries besides the fixed bootstrap and script): a
// command costs about 1 ms of CPU and 0.9 MB of allocations to build (deflate, UTF-16,
// base64), and is the same for every host with the same roles. Safe for concurrent
// use; the zero value is ready.
type commandCache struct {
	mu     sync.Mutex
	m      map[string]*cachedCommand
	builds atomic.Int64 // commands built (tests)
}

type cachedCommand struct {
	once sync.Once
	cmd  string
	err  error
}

// command returns BuildCommand(p), building it once per distinct parameters.
func (cc *commandCache) command(p ScriptParams) (string, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("build command: %w", err)
	}
	cc.mu.Lock()
	e := cc.m[string(data)]
	if e == nil && len(cc.m) < maxCachedCommands {
		if cc.m == nil {
			cc.m = map[string]*cachedCommand{}
		}
		e = &cachedCommand{}
		cc.m[string(data)] = e
	}
	cc.mu.Unlock()
	build := func() (string, error) {
		cc.builds.Add(1)
		return buildCommand(data)
	}
	if e == nil {
		return build()
	}
	e.once.Do(func() { e.cmd, e.err = build() })
	return e.cmd, e.err
}

// EncodePowerShell returns the -EncodedCommand form of a script: UTF-16LE, base64.
func EncodePowerShell(script string) string {
	u := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i] = byte(c)
		b[2*i+1] = byte(c >> 8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeEncodedCommand finds the -EncodedCommand argument (any unambiguous prefix of the
// switch, any case, as powershell.exe accepts: -e, -enc, -encodedcommand) in a command
// line and returns the script it carries.
func DecodeEncodedCommand(cmdline string) (string, error) {
	f := strings.Fields(cmdline)
	if len(f) == 0 || !isPowerShellExe(f[0]) {
		return "", fmt.Errorf("decode command: not a powershell.exe command line")
	}
	for i := 1; i+1 < len(f); i++ {
		a := strings.ToLower(f[i])
		if len(a) >= 2 && (a[0] == '-' || a[0] == '/') && strings.HasPrefix("encodedcommand", a[1:]) && a[1:] != "encodedarguments" {
			raw, err := base64.StdEncoding.DecodeString(f[i+1])
			if err != nil {
				return "", fmt.Errorf("decode command: %w", err)
			}
			if len(raw)%2 != 0 {
				return "", fmt.Errorf("decode command: odd UTF-16 byte count")
			}
			u := make([]uint16, len(raw)/2)
			for j := range u {
				u[j] = uint16(raw[2*j]) | uint16(raw[2*j+1])<<8
			}
			return string(utf16.Decode(u)), nil
		}
	}
	return "", fmt.Errorf("decode command: no -EncodedCommand argument")
}

func isPowerShellExe(s string) bool {
	s = strings.ToLower(s)
	if i := strings.LastIndexAny(s, `\/`); i >= 0 {
		s = s[i+1:]
	}
	return s == "powershell" || s == "powershell.exe"
}

// ParseCollectionCommand checks that cmdline runs exactly rdsaudit's collection script
// (the fixed bootstrap and the embedded script, byte for byte) and returns its
// parameters. Any other command yields an error wrapping ErrNotCollectionScript.
func ParseCollectionCommand(cmdline string) (ScriptParams, error) {
	var p ScriptParams
	ps, err := DecodeEncodedCommand(cmdline)
	if err != nil {
		return p, fmt.Errorf("%w: %v", ErrNotCollectionScript, err)
	}
	rest, ok := strings.CutPrefix(ps, bootstrapHead)
	if !ok {
		return p, fmt.Errorf("%w: unknown bootstrap", ErrNotCollectionScript)
	}
	script, rest, ok := strings.Cut(rest, bootstrapMid)
	if !ok {
		return p, fmt.Errorf("%w: unknown bootstrap", ErrNotCollectionScript)
	}
	data, ok := strings.CutSuffix(rest, bootstrapTail)
	if !ok || strings.ContainsAny(data, "'\u2018\u2019\u201a\u201b") {
		return p, fmt.Errorf("%w: unknown bootstrap", ErrNotCollectionScript)
	}
	plain, err := unpack(script)
	if err != nil || string(plain) != minifiedScript() {
		return p, fmt.Errorf("%w: script differs from the embedded one", ErrNotCollectionScript)
	}
	raw, err := unpack(data)
	if err != nil {
		return p, fmt.Errorf("%w: parameters: %v", ErrNotCollectionScript, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: parameters: %v", ErrNotCollectionScript, err)
	}
	return p, nil
}
