package offline

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"github.com/rdsaudit/rdsaudit/evidence"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sampleFleet = "../../samples/fleet"

// sampleNow returns the fixed "now" of the sample fleet (samples/README.md).
func sampleNow() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }

// sampleInventory reads samples/inventory.csv.
func sampleInventory(t testing.TB) []evidence.HostRef {
	t.Helper()
	f, err := os.Open("../../samples/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var hs []evidence.HostRef
	for _, r := range rows[1:] {
		port, _ := strconv.Atoi(r[2])
		h := evidence.HostRef{Name: r[0], Address: r[1], Port: port, Roles: strings.Split(r[3], ";"), Group: r[4]}
		if r[5] != "" {
			h.Tags = strings.Split(r[5], ";")
		}
		hs = append(hs, h)
	}
	return hs
}

func TestLoadFleetSamples(t *testing.T) {
	fleet, err := LoadFleet(sampleFleet)
	if err != nil {
		t.Fatal(err)
	}
	inv := sampleInventory(t)
	if len(inv) < 12 {
		t.Fatalf("inventory has %d hosts", len(inv))
	}
	for _, h := range inv {
		ev, ok := fleet[strings.ToLower(h.Name)]
		if h.Name == "RDSH-B09" { // deliberately has no files (no_evidence)
			if ok {
				t.Errorf("RDSH-B09 should have no evidence")
			}
			continue
		}
		if !ok {
			t.Errorf("%s: not in fleet", h.Name)
			continue
		}
		if !reflect.DeepEqual(ev.Host, h) {
			t.Errorf("%s: host file's host %+v differs from inventory %+v", h.Name, ev.Host, h)
		}
		if ev.CollectedAt.After(sampleNow()) {
			t.Errorf("%s: collected after the sample now", h.Name)
		}
	}
	if len(fleet) != len(inv)-1 {
		t.Errorf("fleet has %d hosts, inventory %d (one without files)", len(fleet), len(inv))
	}

	a05 := fleet["rdsh-a05"]
	gp := a05.Key(evidence.KeyGracePeriod)
	if gp == nil || !gp.Exists || gp.Owner != `BUILTIN\Administrators` ||
		gp.LastWriteTime == nil || !gp.LastWriteTime.Equal(time.Date(2026, 10, 28, 3, 15, 7, 0, time.UTC)) {
		t.Errorf("A05 GracePeriod: %+v", gp)
	}
	tb := gp.Value(evidence.ValTimebomb)
	if tb == nil || !tb.Redacted || tb.Hex != "" || tb.Length != 230 || len(tb.SHA256) != 64 {
		t.Errorf("A05 timebomb: %+v", tb)
	}
	if v := gp.Value(evidence.ValTimebombPlain); v == nil || *v.Number != 114515 {
		t.Errorf("A05 plain timebomb: %+v", v)
	}
	if *a05.TerminalServices.GracePeriod.DaysLeft != 140 {
		t.Errorf("A05 days left")
	}
	if k := a05.Key(evidence.KeyMisplacedCore); !k.Exists {
		t.Errorf("A05 misplaced core: %+v", k)
	}
	if v := a05.Key(evidence.KeyRCM).Value(evidence.ValX509Certificate); v != nil {
		t.Errorf("A05 should have no certificate")
	}
	if v := fleet["rdsh-a01"].Key(evidence.KeyRCM).Value(evidence.ValX509Certificate); v == nil || !v.Redacted {
		t.Errorf("A01 certificate: %+v", v)
	}
	if v := fleet["rdsh-a06"].Key(evidence.KeyLocalLS).Value(evidence.ValSpecifiedLS); v == nil || !reflect.DeepEqual(v.Strings, []string{"LS01", "LS02"}) {
		t.Errorf("A06 local LS: %+v", v)
	}
	if v := fleet["wg-01"].Key(evidence.KeyLocalLSSubkey).Value(evidence.ValSpecifiedLS); v == nil || !reflect.DeepEqual(v.Strings, []string{"LS01"}) {
		t.Errorf("WG-01 subkey LS: %+v", v)
	}
	b02 := fleet["rdsh-b02"] // REGEDIT4
	if v := b02.Key(evidence.KeyPolicy).Value(evidence.ValLicenseServers); v == nil || *v.String != "LS01" {
		t.Errorf("B02 policy LS: %+v", v)
	}
	if k := fleet["rdsh-b07"].Key(evidence.KeyLicensingCore); k == nil || k.Exists {
		t.Errorf("B07 Licensing Core should be absent: %+v", k)
	}
	if m := fleet["rdsh-b08"].TerminalServices.GracePeriod; m.OK() || m.Error == "" {
		t.Errorf("B08 GetGracePeriodDays should fail: %+v", m)
	}
	if k := fleet["rdsh-b08"].Key(evidence.KeyGracePeriod); !k.Exists || k.Values != nil {
		t.Errorf("B08 GracePeriod should be empty: %+v", k)
	}
	old := fleet["old-2008r2"]
	if old.Status != evidence.StatusFailed || old.Failure.Class != evidence.FailUnsupported || old.Registry != nil || old.OS.Version != "6.1.7601" {
		t.Errorf("OLD-2008R2: %+v", old)
	}
	c1 := fleet["client-01"]
	if k := c1.Key(evidence.KeyClientStore + `\LICENSE000`); k == nil || !k.Values[0].Redacted || k.LastWriteTime == nil {
		t.Errorf("CLIENT-01 store: %+v", k)
	}
	if k := fleet["client-02"].Key(evidence.KeyClientStore); !k.Exists || k.Subkeys != nil {
		t.Errorf("CLIENT-02 store should be empty: %+v", k)
	}
	ls01 := fleet["ls01"].LicenseServer
	if len(ls01.KeyPacks) != 6 || ls01.IssuedTotal != len(ls01.IssuedLicenses) || *ls01.ActivationStatus.Status != 0 {
		t.Errorf("LS01: %d packs, %d/%d issued", len(ls01.KeyPacks), len(ls01.IssuedLicenses), ls01.IssuedTotal)
	}
	if kp := fleet["ls02"].LicenseServer.KeyPacks[0]; *kp.TotalLicenses != -1 || kp.ExpirationDate != "19.01.2038 03:14:07" {
		t.Errorf("LS02 built-in pack: %+v", kp)
	}
}

func TestOfflineCollectorSamples(t *testing.T) {
	c := New(sampleFleet)
	c.Now = sampleNow
	for _, h := range sampleInventory(t) {
		t.Run(h.Name, func(t *testing.T) {
			// The inventory may spell the name in another case; identity comes from it.
			h.Name = strings.ToLower(h.Name)
			ev := c.Collect(context.Background(), h)
			if !reflect.DeepEqual(ev.Host, h) {
				t.Errorf("host %+v, want the inventory's %+v", ev.Host, h)
			}
			switch h.Name {
			case "rdsh-b09":
				if ev.Status != evidence.StatusFailed || ev.Failure.Class != evidence.FailNoEvidence || !ev.CollectedAt.Equal(sampleNow()) {
					t.Errorf("want no_evidence: %+v %+v", ev, ev.Failure)
				}
			case "old-2008r2":
				if ev.Status != evidence.StatusFailed || ev.Failure.Class != evidence.FailUnsupported {
					t.Errorf("want unsupported_os: %+v", ev.Failure)
				}
			default:
				if ev.Status != evidence.StatusCollected || ev.Failure != nil || ev.Collector != CollectorRegFile {
					t.Fatalf("not collected: %+v %+v", ev, ev.Failure)
				}
				if len(ev.Registry) < len(evidence.KeysFor(h.Roles)) {
					t.Errorf("registry has %d keys, want >= %d", len(ev.Registry), len(evidence.KeysFor(h.Roles)))
				}
			}
		})
	}
}

// TestSnapshotEqualsRegFile writes the fleet as evidence JSON and reads it back with the
// snapshot collector: the evidence must be identical apart from the collector name.
func TestSnapshotEqualsRegFile(t *testing.T) {
	dir := t.TempDir()
	fleet, err := LoadFleet(sampleFleet)
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range fleet {
		var buf bytes.Buffer
		if err := evidence.Encode(&buf, ev); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.ToUpper(name)+".JSON"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snap := NewSnapshot(dir)
	reg := NewRegFile(sampleFleet)
	for _, h := range sampleInventory(t) {
		a := snap.Collect(context.Background(), h)
		b := reg.Collect(context.Background(), h)
		if h.Name == "RDSH-B09" {
			if a.Failure == nil || a.Failure.Class != evidence.FailNoEvidence || a.Collector != CollectorSnapshot {
				t.Errorf("snapshot B09: %+v", a)
			}
			continue
		}
		if a.Collector != CollectorSnapshot {
			t.Errorf("%s: collector %q", h.Name, a.Collector)
		}
		a.Collector = b.Collector
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: snapshot and regfile evidence differ", h.Name)
		}
	}
	// Loaded as a fleet, the JSON directory gives the same evidence too.
	fleet2, err := LoadFleet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fleet, fleet2) {
		t.Errorf("fleet from JSON differs from fleet from .reg")
	}
}

// TestEvidenceRoundTrip: encoding then decoding every sample evidence is lossless, and
// re-encoding gives the same bytes.
func TestEvidenceRoundTrip(t *testing.T) {
	fleet, err := LoadFleet(sampleFleet)
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range fleet {
		var b1, b2 bytes.Buffer
		if err := evidence.Encode(&b1, ev); err != nil {
			t.Fatal(err)
		}
		got, err := evidence.Decode(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("%s: decoded evidence differs", name)
		}
		if err := evidence.Encode(&b2, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Errorf("%s: re-encoding differs", name)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const okHostFile = "collected_at: '2026-10-31T22:00:00Z'\nos:\n  version: '10.0.20348'\n"
const okReg = RegHeader5 + "\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services]\r\n\"LicensingMode\"=dword:00000004\r\n"

func TestOfflineCollectorFailures(t *testing.T) {
	host := evidence.HostRef{Name: "h1.corp.example", Roles: []string{evidence.RoleSessionHost}}
	tests := []struct {
		name  string
		files map[string]string
		class evidence.FailureClass
		msg   string
	}{
		{"no files", map[string]string{"other.reg": okReg}, evidence.FailNoEvidence, "no evidence file for h1.corp.example"},
		{"reg without host file", map[string]string{"H1.reg": okReg}, evidence.FailBadEvidence, "H1.reg: no host file h1.host.yaml"},
		{"host file without reg", map[string]string{"h1.host.yaml": okHostFile}, evidence.FailBadEvidence, "h1.host.yaml: status collected but no .reg file"},
		{"malformed reg", map[string]string{"h1.reg": okReg + "\"x\"=hex:0\r\n", "h1.host.yaml": okHostFile}, evidence.FailBadEvidence, `h1.reg:5: value "x": truncated`},
		{"unknown host-file field", map[string]string{"h1.reg": okReg, "h1.host.yaml": okHostFile + "  colour: red\n"}, evidence.FailBadEvidence, `h1.host.yaml:4: unknown field "colour"`},
		{"bad json", map[string]string{"h1.json": "{\n\"schema\": \"rdsaudit.evidence/v1\",\n\"status\": 3\n}"}, evidence.FailBadEvidence, "h1.json:3: decode evidence"},
		{"unknown json field", map[string]string{"h1.json": "{\n\"schema\": \"rdsaudit.evidence/v1\",\n\"extra\": 1}"}, evidence.FailBadEvidence, "h1.json:3: decode evidence"},
		{"ambiguous case", map[string]string{"h1.reg": okReg, "H1.REG": okReg}, evidence.FailNoEvidence, "differ only in case"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(writeFiles(t, tc.files))
			ev := c.Collect(context.Background(), host)
			if ev.Status != evidence.StatusFailed || ev.Failure == nil || ev.Failure.Class != tc.class || !strings.Contains(ev.Failure.Message, tc.msg) {
				t.Errorf("got %s %+v, want %s containing %q", ev.Status, ev.Failure, tc.class, tc.msg)
			}
			if ev.Schema != evidence.Schema || ev.Host.Name != host.Name {
				t.Errorf("failure record: %+v", ev)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ev := New(t.TempDir()).Collect(ctx, host); ev.Failure.Class != evidence.FailCanceled {
		t.Errorf("canceled: %+v", ev.Failure)
	}
}

func TestOfflineCollectorShortNameAndPrecedence(t *testing.T) {
	fleet, err := LoadFleet(sampleFleet)
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := evidence.Encode(&js, fleet["rdsh-a01"]); err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"h1.json": js.String(), "h1.reg": okReg, "h1.host.yaml": okHostFile})
	host := evidence.HostRef{Name: "H1.corp.example", Roles: []string{evidence.RoleSessionHost}}
	if ev := New(dir).Collect(context.Background(), host); ev.Collector != CollectorSnapshot || ev.Host.Name != host.Name {
		t.Errorf("json should win: %s %+v", ev.Collector, ev.Failure)
	}
	ev := NewRegFile(dir).Collect(context.Background(), host)
	if ev.Collector != CollectorRegFile || ev.Status != evidence.StatusCollected {
		t.Fatalf("regfile: %+v", ev.Failure)
	}
	if v := ev.Key(evidence.KeyPolicy).Value(evidence.ValLicensingMode); v == nil || *v.Number != 4 {
		t.Errorf("policy mode: %+v", v)
	}
	if !ev.CollectedAt.Equal(time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("collected_at %v", ev.CollectedAt)
	}
}

func TestParseHostFileErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"empty", "", "h.host.yaml: empty host file"},
		{"unknown top field", "os: {}\nfoo: 1\n", `h.host.yaml:2: unknown field "foo"`},
		{"unknown nested field", "terminal_services:\n  grace_period:\n    dayz_left: 3\n", `h.host.yaml:3: unknown field "dayz_left"`},
		{"type error", "os:\n  domain_role: three\n", `h.host.yaml:2: field os.domain_role: cannot use string as int64`},
		{"duplicate", "os: {}\nos: {}\n", `h.host.yaml:2: duplicate field "os"`},
		{"bad yaml", "os: [\n", `h.host.yaml: yaml:`},
		{"status", "status: broken\n", `h.host.yaml: status: unknown value "broken"`},
		{"failure without status", "failure: {class: dns, message: x}\n", `h.host.yaml: failure: set only when status`},
		{"failed without class", "status: failed\n", `h.host.yaml: failure.class: required`},
		{"meta without path", "registry_meta:\n  - owner: x\n", `h.host.yaml: registry_meta[0].path: required`},
		{"meta bad hive", "registry_meta:\n  - path: 'HKXX\\A'\n", `h.host.yaml: registry_meta[0].path: unknown hive "HKXX"`},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "h.host.yaml:"},
		{"merge key", "a: &a {x: 1}\nos:\n  <<: *a\n", `h.host.yaml:3: mapping keys must be plain names`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHostFile("h.host.yaml", []byte(tc.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestParseHostFileValues(t *testing.T) {
	hf, err := ParseHostFile("h.host.yaml", []byte(`
host: {name: X, roles: [session_host]}
collected_at: 2026-10-31T22:00:00Z
os:
  version: 10.0.20348
  install_date: 20240115093000.000000+000
  part_of_domain: true
license_server:
  key_packs:
    - key_pack_id: 2
      total_licenses: 4294967295
      available_licenses: -1
      expiration_date: 01.01.2036 00:00:00
terminal_services:
  namespace_present: true
  grace_period: {called: true, return_value: 0x0, days_left: 140}
`))
	if err != nil {
		t.Fatal(err)
	}
	if hf.OS.Version != "10.0.20348" || hf.OS.InstallDate != "20240115093000.000000+000" || hf.OS.PartOfDomain == nil || !*hf.OS.PartOfDomain {
		t.Errorf("os: %+v", hf.OS)
	}
	kp := hf.LicenseServer.KeyPacks[0]
	if *kp.TotalLicenses != 4294967295 || *kp.AvailableLicenses != -1 || kp.ExpirationDate != "01.01.2036 00:00:00" {
		t.Errorf("key pack: %+v", kp)
	}
	if !hf.TerminalServices.GracePeriod.OK() || *hf.TerminalServices.GracePeriod.DaysLeft != 140 {
		t.Errorf("grace: %+v", hf.TerminalServices.GracePeriod)
	}
	if hf.CollectedAt == nil || !hf.CollectedAt.Equal(time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("collected_at: %v", hf.CollectedAt)
	}
}

func TestRegEvidenceMeta(t *testing.T) {
	rf, err := ParseRegFile("x.reg", []byte(okReg))
	if err != nil {
		t.Fatal(err)
	}
	host := evidence.HostRef{Name: "x", Roles: []string{evidence.RoleSessionHost}}
	parse := func(y string) *HostFile {
		hf, err := ParseHostFile("x.host.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return hf
	}
	_, err = RegEvidence(host, rf, parse("registry_meta:\n  - path: 'HKLM\\SOFTWARE\\Nope'\n    owner: x\n"), "x.host.yaml", sampleNow())
	if err == nil || !strings.Contains(err.Error(), `x.host.yaml: registry_meta[0].path: HKLM\SOFTWARE\Nope is not a key rdsaudit reads`) {
		t.Errorf("unknown path: %v", err)
	}
	_, err = RegEvidence(host, rf, parse("registry_meta:\n  - path: '"+evidence.KeyGracePeriod+"'\n    owner: x\n"), "x.host.yaml", sampleNow())
	if err == nil || !strings.Contains(err.Error(), "is absent from x.reg") {
		t.Errorf("absent key: %v", err)
	}
	// A client key on a session host: known, not read for this role, ignored.
	ev, err := RegEvidence(host, rf, parse("registry_meta:\n  - path: '"+evidence.KeyClientStore+`\LICENSE000`+"'\n    owner: x\n  - path: 'hkey_local_machine\\"+evidence.KeyPolicy[5:]+"'\n    owner: SYSTEM\n    error: 'partial'\n"), "x.host.yaml", sampleNow())
	if err != nil {
		t.Fatal(err)
	}
	if k := ev.Key(evidence.KeyPolicy); k.Owner != "SYSTEM" || k.Error != "partial" || !ev.CollectedAt.Equal(sampleNow()) {
		t.Errorf("meta merge: %+v", k)
	}
}

func FuzzDecodeEvidence(f *testing.F) {
	fleet, err := LoadFleet(sampleFleet)
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []string{"old-2008r2", "rdsh-a05"} {
		var b bytes.Buffer
		if err := evidence.Encode(&b, fleet[n]); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	// Large documents (LS01, ~40 KB) stall the fuzzing engine; a small license server instead.
	f.Add([]byte(`{"schema":"rdsaudit.evidence/v1","host":{"name":"LS"},"status":"collected","license_server":{"activation_status":{"called":true,"return_value":0,"status":1},"key_packs":[{"key_pack_id":2,"total_licenses":-1,"expiration_date":"01.01.2036 00:00:00"}],"issued_licenses":[{"license_id":1,"key_pack_id":2,"license_status":1}],"issued_total":1,"reports":[{"summary":[{"cal_type":1}]}]},"errors":[{"section":"s","message":"m"}]}`))
	f.Add([]byte(`{"schema":"rdsaudit.evidence/v1","collected_at":"2026-01-01T00:00:00+01:00","registry":[{"path":"x","exists":true,"values":[{"name":"","type":"REG_DWORD","number":18446744073709551615,"length":4}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := evidence.Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Decoding is lossless: what was decoded encodes and decodes to the same document.
		var b1, b2 bytes.Buffer
		if err := evidence.Encode(&b1, ev); err != nil {
			return // e.g. a time outside what JSON can encode
		}
		ev2, err := evidence.Decode(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b1.Bytes())
		}
		if err := evidence.Encode(&b2, ev2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("not lossless:\n%s\n%s", b1.Bytes(), b2.Bytes())
		}
	})
}

// TestSampleEncodings keeps the sample fleet covering every export encoding.
func TestSampleEncodings(t *testing.T) {
	want := map[string]func([]byte) bool{
		"RDSH-A01.reg": func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xFF, 0xFE, 'W', 0}) },
		"RDSH-A03.reg": func(b []byte) bool { return bytes.HasPrefix(b, []byte(RegHeader5+"\n")) },
		"RDSH-A06.reg": func(b []byte) bool { return bytes.HasPrefix(b, []byte("\xEF\xBB\xBF"+RegHeader5+"\r\n")) },
		"RDSH-B02.reg": func(b []byte) bool { return bytes.HasPrefix(b, []byte(RegHeader4+"\r\n")) },
	}
	for name, ok := range want {
		b, err := os.ReadFile(filepath.Join(sampleFleet, name))
		if err != nil {
			t.Fatal(err)
		}
		if !ok(b) {
			t.Errorf("%s: not in the encoding samples/README.md documents", name)
		}
	}
}

func FuzzParseHostFile(f *testing.F) {
	for _, n := range []string{"RDSH-A05.host.yaml", "OLD-2008R2.host.yaml", "CLIENT-01.host.yaml"} {
		b, err := os.ReadFile(filepath.Join(sampleFleet, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hf, err := ParseHostFile("f.host.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.host.yaml") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		if hf.Status != "" && hf.Status != evidence.StatusCollected && hf.Failure == nil {
			t.Fatalf("failed status without failure")
		}
	})
}

// aliasBomb is a host file of a 64 KiB string under levels of ten aliases each: a few
// tens of KB that expands to 64 KiB·10^levels.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("collected_at: '2026-10-31T22:00:00Z'\nos:\n  version: '10.0.20348'\n")
	b.WriteString("l0: &l0 '" + strings.Repeat("A", 64<<10) + "'\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// An alias bomb in one host file fails that host as bad_evidence, quickly, naming the
// file and the limit; the next host is collected.
func TestOfflineCollectorAliasBomb(t *testing.T) {
	bomb := aliasBomb(3) // ~66 KB expanding to 64 MiB: far over the 4 MiB budget
	dir := writeFiles(t, map[string]string{"h1.reg": okReg, "h1.host.yaml": bomb, "h2.reg": okReg, "h2.host.yaml": okHostFile})
	c := New(dir)
	start := time.Now()
	ev := c.Collect(context.Background(), evidence.HostRef{Name: "h1.corp.example", Roles: []string{evidence.RoleSessionHost}})
	if ev.Status != evidence.StatusFailed || ev.Failure == nil || ev.Failure.Class != evidence.FailBadEvidence {
		t.Fatalf("bomb host: %s %+v", ev.Status, ev.Failure)
	}
	limit := strconv.FormatInt(max(4<<20, 64*int64(len(bomb))), 10)
	if m := ev.Failure.Message; !strings.HasPrefix(m, "h1.host.yaml:4: YAML aliases expand") || !strings.Contains(m, limit+" bytes") {
		t.Errorf("bomb message %q, want the file, the line and the limit %s", m, limit)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("bomb took %v", d)
	}
	ev = c.Collect(context.Background(), evidence.HostRef{Name: "h2.corp.example", Roles: []string{evidence.RoleSessionHost}})
	if ev.Status != evidence.StatusCollected {
		t.Errorf("normal host after the bomb: %s %+v", ev.Status, ev.Failure)
	}
}

// The bomb (five levels: gigabytes) is refused by ParseHostFile in bounded time.
func TestParseHostFileAliasBombFiveLevels(t *testing.T) {
	start := time.Now()
	_, err := ParseHostFile("h.host.yaml", []byte(aliasBomb(5)))
	if err == nil || !strings.Contains(err.Error(), "YAML aliases expand the document beyond") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
