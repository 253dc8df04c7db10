package offline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"github.com/rdsaudit/rdsaudit/evidence"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

// toUTF16LE encodes s as UTF-16LE with a BOM, as regedit writes 5.00 exports.
func toUTF16LE(s string, bom bool) []byte {
	var out []byte
	if bom {
		out = append(out, 0xFF, 0xFE)
	}
	for _, c := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func u64(n uint64) *uint64 { return &n }
func str(s string) *string { return &s }

const testKey = `HKLM\SOFTWARE\Test`

// parseOne parses a file and returns the values of testKey, unredacted.
func parseOne(t *testing.T, name string, data []byte) []evidence.RegValue {
	t.Helper()
	f, err := ParseRegFile(name, data)
	if err != nil {
		t.Fatalf("ParseRegFile: %v", err)
	}
	ks := f.RegKeys([]evidence.KeyRequest{{Path: testKey}})
	if len(ks) != 1 || !ks[0].Exists {
		t.Fatalf("key %s missing: %+v", testKey, ks)
	}
	return ks[0].Values
}

func TestRegFileValueTypes(t *testing.T) {
	sz := utf16z(`C:\Program Files\"x"`)
	expand := utf16z(`%SystemRoot%\system32`)
	multi := append(append(utf16z("LS01"), utf16z("ls02.corp.example")...), 0, 0)
	tests := []struct {
		name string
		line string
		want evidence.RegValue
	}{
		{"string with escapes", `"S"="C:\\Program Files\\\"x\""`,
			evidence.RegValue{Name: "S", Type: evidence.RegSZ, String: str(`C:\Program Files\"x"`), Length: len(sz)}},
		{"empty string", `"E"=""`,
			evidence.RegValue{Name: "E", Type: evidence.RegSZ, String: str(""), Length: 2}},
		{"default value", `@="dflt"`,
			evidence.RegValue{Name: "", Type: evidence.RegSZ, String: str("dflt"), Length: 10}},
		{"name with escapes", `"a\\b\"c"=dword:00000001`,
			evidence.RegValue{Name: `a\b"c`, Type: evidence.RegDWord, Number: u64(1), Length: 4}},
		{"dword", `"LicensingMode"=dword:00000004`,
			evidence.RegValue{Name: "LicensingMode", Type: evidence.RegDWord, Number: u64(4), Length: 4}},
		{"dword max upper case", `"D"=DWORD:FFFFFFFF`,
			evidence.RegValue{Name: "D", Type: evidence.RegDWord, Number: u64(0xffffffff), Length: 4}},
		{"binary", `"B"=hex:01,02,ab,CD`,
			evidence.RegValue{Name: "B", Type: evidence.RegBinary, Hex: "0102abcd", Length: 4, SHA256: sha([]byte{1, 2, 0xab, 0xcd})}},
		{"empty binary", `"B"=hex:`,
			evidence.RegValue{Name: "B", Type: evidence.RegBinary, Length: 0, SHA256: sha(nil)}},
		{"none", `"N"=hex(0):ff`,
			evidence.RegValue{Name: "N", Type: evidence.RegNone, Hex: "ff", Length: 1, SHA256: sha([]byte{0xff})}},
		{"sz as hex(1)", `"S1"=hex(1):41,00,00,00`,
			evidence.RegValue{Name: "S1", Type: evidence.RegSZ, String: str("A"), Length: 4}},
		{"binary as hex(3)", `"B3"=hex(3):00`,
			evidence.RegValue{Name: "B3", Type: evidence.RegBinary, Hex: "00", Length: 1, SHA256: sha([]byte{0})}},
		{"expand_sz", `"X"=hex(2):` + hexList(expand),
			evidence.RegValue{Name: "X", Type: evidence.RegExpandSZ, String: str(`%SystemRoot%\system32`), Length: len(expand)}},
		{"multi_sz", `"M"=hex(7):` + hexList(multi),
			evidence.RegValue{Name: "M", Type: evidence.RegMultiSZ, Strings: []string{"LS01", "ls02.corp.example"}, Length: len(multi)}},
		{"empty multi_sz", `"M"=hex(7):00,00`,
			evidence.RegValue{Name: "M", Type: evidence.RegMultiSZ, Length: 2}},
		{"qword", `"Q"=hex(b):01,00,00,00,00,00,00,80`,
			evidence.RegValue{Name: "Q", Type: evidence.RegQWord, Number: u64(0x8000000000000001), Length: 8}},
		{"dword as hex(4)", `"D4"=hex(4):02,01,00,00`,
			evidence.RegValue{Name: "D4", Type: evidence.RegDWord, Number: u64(0x102), Length: 4}},
		{"dword big endian", `"D5"=hex(5):00,00,01,02`,
			evidence.RegValue{Name: "D5", Type: evidence.RegDWordBE, Number: u64(0x102), Length: 4}},
		{"unknown type kept", `"U"=hex(8):de,ad`,
			evidence.RegValue{Name: "U", Type: "REG_UNKNOWN(8)", Hex: "dead", Length: 2, SHA256: sha([]byte{0xde, 0xad})}},
		{"unknown type hex number", `"U"=hex(ffff0001):00`,
			evidence.RegValue{Name: "U", Type: "REG_UNKNOWN(4294901761)", Hex: "00", Length: 1, SHA256: sha([]byte{0})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := RegHeader5 + "\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test]\r\n" + tc.line + "\r\n"
			got := parseOne(t, "t.reg", []byte(file))
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// hexList formats bytes as regedit does: "aa,bb,cc".
func hexList(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ",")
}

const sampleExport = `Windows Registry Editor Version 5.00

; exported by regedit
[HKEY_LOCAL_MACHINE\SOFTWARE\Test]
"Mode"=dword:00000002
"Blob"=hex:01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,15,16,17,\
  18,19,1a,1b,1c,1d,1e,1f,20
"Servers"=hex(7):4c,00,53,00,30,00,31,00,00,00,\
  4c,00,53,00,30,00,32,00,00,00,00,00
@="default"

[HKEY_LOCAL_MACHINE\SOFTWARE\Test\Sub]
"x"="y"
`

func TestRegFileEncodings(t *testing.T) {
	want := func(t *testing.T, vals []evidence.RegValue) {
		t.Helper()
		if len(vals) != 4 {
			t.Fatalf("got %d values: %+v", len(vals), vals)
		}
		if vals[0].Number == nil || *vals[0].Number != 2 {
			t.Errorf("Mode: %+v", vals[0])
		}
		if vals[1].Length != 32 || vals[1].Hex[:4] != "0102" || vals[1].Hex[60:] != "1f20" {
			t.Errorf("Blob: %+v", vals[1])
		}
		if !reflect.DeepEqual(vals[2].Strings, []string{"LS01", "LS02"}) {
			t.Errorf("Servers: %+v", vals[2])
		}
		if vals[3].Name != "" || *vals[3].String != "default" {
			t.Errorf("default: %+v", vals[3])
		}
	}
	crlf := strings.ReplaceAll(sampleExport, "\n", "\r\n")
	cases := map[string][]byte{
		"utf-8 lf":            []byte(sampleExport),
		"utf-8 crlf":          []byte(crlf),
		"utf-8 bom crlf":      append([]byte{0xEF, 0xBB, 0xBF}, crlf...),
		"utf-16le bom crlf":   toUTF16LE(crlf, true),
		"utf-16le bom lf":     toUTF16LE(sampleExport, true),
		"utf-16le no bom":     toUTF16LE(crlf, false),
		"trailing whitespace": []byte(strings.ReplaceAll(sampleExport, ",\\\n", ",\\  \t\n")),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			want(t, parseOne(t, "t.reg", data))
		})
	}
}

func TestRegFileREGEDIT4(t *testing.T) {
	// REGEDIT4 is ANSI: hex(2)/hex(7) hold single-byte text, converted to UTF-16LE as
	// regedit does on import. "Grüße" in Latin-1 makes the file invalid UTF-8.
	file := "REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test]\r\n" +
		"\"P\"=hex(2):25,54,45,4d,50,25,00\r\n" +
		"\"M\"=hex(7):61,00,62,00,00\r\n" +
		"\"S\"=\"Gr\xfc\xdfe\"\r\n" +
		"\"D\"=dword:0000000a\r\n"
	vals := parseOne(t, "old.reg", []byte(file))
	if len(vals) != 4 {
		t.Fatalf("values: %+v", vals)
	}
	if *vals[0].String != "%TEMP%" || vals[0].Type != evidence.RegExpandSZ || vals[0].Length != 14 || vals[0].SHA256 != "" {
		t.Errorf("P: %+v", vals[0])
	}
	if !reflect.DeepEqual(vals[1].Strings, []string{"a", "b"}) || vals[1].Length != 10 {
		t.Errorf("M: %+v", vals[1])
	}
	if *vals[2].String != "Grüße" {
		t.Errorf("S: %q", *vals[2].String)
	}
	if *vals[3].Number != 10 {
		t.Errorf("D: %+v", vals[3])
	}
}

func TestRegFileDeletions(t *testing.T) {
	file := `Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SOFTWARE\Test]
"keep"=dword:00000001
"gone"=dword:00000002
"replaced"="old"

[HKEY_LOCAL_MACHINE\SOFTWARE\Test]
"gone"=-
"replaced"="new"

[HKEY_LOCAL_MACHINE\SOFTWARE\Gone\Child]
"x"="y"

[-HKEY_LOCAL_MACHINE\SOFTWARE\Gone]

[-HKEY_LOCAL_MACHINE\SOFTWARE\Never]

[HKEY_LOCAL_MACHINE\SOFTWARE\Back]
"old"="1"
[-HKEY_LOCAL_MACHINE\SOFTWARE\Back]
[HKEY_LOCAL_MACHINE\SOFTWARE\Back]
"new"="2"
`
	f, err := ParseRegFile("d.reg", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	ks := f.RegKeys([]evidence.KeyRequest{
		{Path: testKey}, {Path: `HKLM\SOFTWARE\Gone`}, {Path: `HKLM\SOFTWARE\Gone\Child`},
		{Path: `HKLM\SOFTWARE\Never`}, {Path: `HKLM\SOFTWARE\Back`}, {Path: `HKLM\SOFTWARE`},
	})
	if v := ks[0].Values; len(v) != 2 || v[0].Name != "keep" || v[1].Name != "replaced" || *v[1].String != "new" {
		t.Errorf("Test values: %+v", v)
	}
	for _, i := range []int{1, 2, 3} {
		if ks[i].Exists || ks[i].Values != nil {
			t.Errorf("%s should be absent: %+v", ks[i].Path, ks[i])
		}
	}
	if v := ks[4].Values; !ks[4].Exists || len(v) != 1 || v[0].Name != "new" {
		t.Errorf("Back: %+v", ks[4])
	}
	// HKLM\SOFTWARE is implied by its subkeys: exists, no values, subkeys listed.
	if !ks[5].Exists || ks[5].Values != nil || !reflect.DeepEqual(ks[5].Subkeys, []string{"Back", "Test"}) {
		t.Errorf("SOFTWARE: %+v", ks[5])
	}
}

func TestRegFileRequests(t *testing.T) {
	file := `Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Terminal Server\RCM]
"X509 Certificate"=hex:30,82,01,0a
"Unrelated"=dword:00000001
"X509 Certificate ID"=hex:aa

[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Terminal Server\RCM\GracePeriod]
"L$RTMTIMEBOMB_1320153D-8DA3-4e8e-B27B-0D888223A588"=hex:01,00,00,00,d0,8c
"L$RTMTIMEBOMB"=dword:00000078

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\MSLicensing\Store\LICENSE000]
"ClLicense"=hex:01,02

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\MSLicensing\Store\LICENSE001]

[HKEY_LOCAL_MACHINE\SOFTWARE\Unrequested]
"x"="y"
`
	f, err := ParseRegFile("r.reg", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	ks := f.RegKeys(evidence.KeysFor([]string{evidence.RoleSessionHost, evidence.RoleClient}))
	byPath := map[string]evidence.RegKey{}
	var order []string
	for _, k := range ks {
		byPath[k.Path] = k
		order = append(order, k.Path)
	}
	want := []string{evidence.KeyLicensingCore, evidence.KeyPolicy, evidence.KeyLocalLS, evidence.KeyLocalLSSubkey, evidence.KeyGracePeriod, evidence.KeyRCM, evidence.KeyMisplacedCore,
		evidence.KeyClientHardwareID, evidence.KeyClientStore, evidence.KeyClientStore + `\LICENSE000`, evidence.KeyClientStore + `\LICENSE001`}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("keys:\n%q\nwant\n%q", order, want)
	}
	if byPath[evidence.KeyLicensingCore].Exists || byPath[evidence.KeyClientHardwareID].Exists {
		t.Errorf("absent keys reported as present")
	}
	rcm := byPath[evidence.KeyRCM]
	if len(rcm.Values) != 2 || rcm.Values[0].Name != evidence.ValX509Certificate || rcm.Values[1].Name != evidence.ValX509CertificateID {
		t.Errorf("RCM OnlyValues: %+v", rcm.Values)
	}
	for _, v := range rcm.Values {
		if !v.Redacted || v.Hex != "" || v.SHA256 == "" {
			t.Errorf("RCM value not redacted: %+v", v)
		}
	}
	if !reflect.DeepEqual(rcm.Subkeys, []string{"GracePeriod"}) {
		t.Errorf("RCM subkeys: %q", rcm.Subkeys)
	}
	gp := byPath[evidence.KeyGracePeriod]
	if len(gp.Values) != 2 || !gp.Values[0].Redacted || gp.Values[0].Length != 6 || gp.Values[0].SHA256 != sha([]byte{1, 0, 0, 0, 0xd0, 0x8c}) {
		t.Errorf("timebomb: %+v", gp.Values)
	}
	if gp.Values[1].Number == nil || *gp.Values[1].Number != 120 || gp.Values[1].Redacted {
		t.Errorf("plain DWORD stays visible: %+v", gp.Values[1])
	}
	st := byPath[evidence.KeyClientStore]
	if !st.Exists || !reflect.DeepEqual(st.Subkeys, []string{"LICENSE000", "LICENSE001"}) || st.Values != nil {
		t.Errorf("Store: %+v", st)
	}
	if l := byPath[evidence.KeyClientStore+`\LICENSE000`]; !l.Values[0].Redacted || l.Values[0].Length != 2 {
		t.Errorf("LICENSE000: %+v", l)
	}
	if l := byPath[evidence.KeyClientStore+`\LICENSE001`]; !l.Exists || l.Values != nil {
		t.Errorf("LICENSE001: %+v", l)
	}
}

func TestRegFileErrors(t *testing.T) {
	h := RegHeader5 + "\n\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test]\n"
	tests := []struct {
		name, file, want string
	}{
		{"empty", "", "bad.reg:1: empty file"},
		{"no header", "[HKEY_LOCAL_MACHINE\\X]\n", `bad.reg:1: missing header`},
		{"value outside key", RegHeader5 + "\n\"a\"=dword:1\n", `bad.reg:2: value "a" outside a key`},
		{"value under deleted key", RegHeader5 + "\n[-HKEY_LOCAL_MACHINE\\X]\n\"a\"=\"b\"\n", `bad.reg:3: value "a" under a deleted key`},
		{"bad escape", h + `"a"="C:\temp"` + "\n", `bad.reg:4: bad escape \t`},
		{"bad escape in name", h + `"a\n"="x"` + "\n", `bad.reg:4: bad escape \n`},
		{"unterminated string", h + `"a"="x` + "\n", `bad.reg:4: unterminated string`},
		{"text after string", h + `"a"="x" y` + "\n", `bad.reg:4: value "a": unexpected text after string`},
		{"unknown type", h + `"a"=qword:1` + "\n", `bad.reg:4: value "a": unknown type`},
		{"unknown hex type", h + `"a"=hex(zz):00` + "\n", `bad.reg:4: value "a": unknown type hex(zz)`},
		{"unterminated hex type", h + `"a"=hex(7:00` + "\n", `bad.reg:4: value "a": unterminated hex(`},
		{"truncated hex byte", h + `"a"=hex:01,0` + "\n", `bad.reg:4: value "a": truncated or malformed hex byte "0"`},
		{"truncated hex trailing comma", h + `"a"=hex:01,` + "\n", `bad.reg:4: value "a": truncated hex data`},
		{"truncated hex at eof", h + `"a"=hex:01,\`, `bad.reg:4: value "a": truncated hex data: file ends`},
		{"truncated hex continuation", h + "\"a\"=hex:01,\\\n\n\"b\"=\"c\"\n", `bad.reg:5: value "a": truncated hex data: continuation line expected`},
		{"bad hex on continuation line", h + "\"a\"=hex:01,\\\n  02,zz\n", `bad.reg:5: value "a": bad hex byte "zz"`},
		{"bad dword", h + `"a"=dword:xyz` + "\n", `bad.reg:4: value "a": bad dword`},
		{"long dword", h + `"a"=dword:000000001` + "\n", `bad.reg:4: value "a": dword needs 1 to 8 hex digits`},
		{"qword wrong size", h + `"a"=hex(b):01,02` + "\n", `bad.reg:4: value "a": REG_QWORD needs 8 bytes, got 2`},
		{"dword hex wrong size", h + `"a"=hex(4):01` + "\n", `bad.reg:4: value "a": REG_DWORD needs 4 bytes, got 1`},
		{"missing equals", h + `"a" dword:1` + "\n", `bad.reg:4: value "a": missing '='`},
		{"garbage line", h + "hello\n", `bad.reg:4: unexpected line "hello"`},
		{"unknown hive", RegHeader5 + "\n[HKEY_NOPE\\X]\n", `bad.reg:2: unknown hive "HKEY_NOPE"`},
		{"key without bracket", RegHeader5 + "\n[HKEY_LOCAL_MACHINE\\X\n", `bad.reg:2: key line without closing ]`},
		{"ansi in 5.00", RegHeader5 + "\n[HKEY_LOCAL_MACHINE\\X]\n\"a\"=\"\xfc\"\n", `bad.reg:3: invalid UTF-8`},
		{"odd utf-16", "\xff\xfeW\x00x", `bad.reg:1: UTF-16 text has an odd number of bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRegFile("bad.reg", []byte(tc.file))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestRegFileKeyPathNormalisation(t *testing.T) {
	file := RegHeader5 + "\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test\\]\n\"a\"=dword:1\n[hklm\\software\\test]\n\"b\"=dword:2\n"
	f, err := ParseRegFile("n.reg", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Paths(); !reflect.DeepEqual(got, []string{`HKLM\software\test`}) {
		t.Errorf("paths %q", got)
	}
	ks := f.RegKeys([]evidence.KeyRequest{{Path: `HKEY_LOCAL_MACHINE\Software\TEST`}})
	if len(ks[0].Values) != 2 || ks[0].Path != `HKLM\Software\TEST` {
		t.Errorf("%+v", ks[0])
	}
}

func FuzzParseRegFile(f *testing.F) {
	f.Add([]byte(sampleExport))
	f.Add(toUTF16LE(strings.ReplaceAll(sampleExport, "\n", "\r\n"), true))
	f.Add([]byte("REGEDIT4\n[HKEY_LOCAL_MACHINE\\A]\n\"a\"=hex(2):41,00\n\"b\"=-\n[-HKEY_LOCAL_MACHINE\\A]\n"))
	f.Add([]byte(RegHeader5 + "\n[HKLM\\A]\n@=hex(b):01,02,03,04,05,06,07,08\n\"q\"=hex(5):00,00,00,01\n\"u\"=hex(9):\\\n  01\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := ParseRegFile("fuzz.reg", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.reg:") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		var reqs []evidence.KeyRequest
		for _, p := range rf.Paths() {
			reqs = append(reqs, evidence.KeyRequest{Path: p, Subkeys: true}, evidence.KeyRequest{Path: p, Redact: true})
		}
		for _, k := range rf.RegKeys(reqs) {
			if !k.Exists {
				t.Fatalf("listed key %s does not exist", k.Path)
			}
			for _, v := range k.Values {
				if v.Redacted && v.Hex != "" {
					t.Fatalf("redacted value carries data: %+v", v)
				}
				if (v.Hex != "" || v.Redacted) && v.SHA256 == "" || v.Length < 0 {
					t.Fatalf("value without digest: %+v", v)
				}
			}
		}
	})
}
