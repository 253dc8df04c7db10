package facts

import (
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

func p64(n int64) *int64 { return &n }

func dwv(name string, n uint64) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegDWord, Number: &n}
}
func szv(name, s string) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegSZ, String: &s}
}

func collected(keys ...evidence.RegKey) *evidence.Evidence {
	return &evidence.Evidence{Schema: evidence.Schema, Status: evidence.StatusCollected, Host: evidence.HostRef{Name: "H", Roles: []string{evidence.RoleSessionHost}}, Registry: keys}
}

func TestInterpretModePrecedence(t *testing.T) {
	cases := []struct {
		name      string
		policy    *evidence.RegKey
		local     *evidence.RegKey
		wmi       *int64
		effective *int64
		source    string
		known     bool
		invalid   int
	}{
		{"policy wins over local", &evidence.RegKey{Path: evidence.KeyPolicy, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 4)}},
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 2)}}, p64(4), p64(4), SourcePolicy, true, 0},
		{"local when no policy value", &evidence.RegKey{Path: evidence.KeyPolicy, Exists: true},
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 2)}}, nil, p64(2), SourceLocal, true, 0},
		{"policy key absent", &evidence.RegKey{Path: evidence.KeyPolicy},
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 5)}}, nil, p64(5), SourceLocal, true, 0},
		{"neither", &evidence.RegKey{Path: evidence.KeyPolicy}, &evidence.RegKey{Path: evidence.KeyLicensingCore}, nil, nil, SourceNone, true, 0},
		{"policy unreadable: unknown, never local", &evidence.RegKey{Path: evidence.KeyPolicy, Error: "access denied"},
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 2)}}, nil, nil, SourceUnknown, false, 0},
		{"policy key missing from evidence", nil,
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 2)}}, nil, nil, SourceUnknown, false, 0},
		{"policy set, local unreadable", &evidence.RegKey{Path: evidence.KeyPolicy, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 2)}},
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Error: "denied"}, nil, p64(2), SourcePolicy, false, 0},
		{"policy of wrong type is ignored and noted", &evidence.RegKey{Path: evidence.KeyPolicy, Exists: true, Values: []evidence.RegValue{szv(evidence.ValLicensingMode, "4")}},
			&evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dwv(evidence.ValLicensingMode, 2)}}, nil, p64(2), SourceLocal, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := collected()
			for _, k := range []*evidence.RegKey{tc.policy, tc.local} {
				if k != nil {
					ev.Registry = append(ev.Registry, *k)
				}
			}
			ev.TerminalServices = &evidence.TerminalServices{NamespacePresent: true, LicensingType: tc.wmi}
			m := Interpret(ev).Mode
			if !eqp(m.Effective, tc.effective) || m.EffectiveSource != tc.source || m.Known != tc.known || len(m.Invalid) != tc.invalid {
				t.Fatalf("effective %s from %s known %v invalid %v", ModeName(m.Effective), m.EffectiveSource, m.Known, m.Invalid)
			}
			if !eqp(m.WMI, tc.wmi) {
				t.Errorf("wmi %s", ModeName(m.WMI))
			}
		})
	}
}

func eqp(a, b *int64) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func TestInterpretLicenseServers(t *testing.T) {
	pol := func(v ...evidence.RegValue) evidence.RegKey {
		return evidence.RegKey{Path: evidence.KeyPolicy, Exists: true, Values: v}
	}
	cases := []struct {
		name   string
		keys   []evidence.RegKey
		eff    []string
		source string
		shape  string
	}{
		{"policy comma list", []evidence.RegKey{pol(szv(evidence.ValLicenseServers, "LS01, ls02.corp.example;LS01.")), {Path: evidence.KeyLocalLS, Exists: true}},
			[]string{"LS01", "ls02.corp.example"}, SourcePolicy, ""},
		{"local value shape", []evidence.RegKey{pol(), {Path: evidence.KeyLocalLS, Exists: true, Values: []evidence.RegValue{{Name: evidence.ValSpecifiedLS, Type: evidence.RegMultiSZ, Strings: []string{"LS01", "LS02"}}}}},
			[]string{"LS01", "LS02"}, SourceLocal, "value"},
		{"local subkey shape, subkeys", []evidence.RegKey{pol(), {Path: evidence.KeyLocalLS, Exists: true}, {Path: evidence.KeyLocalLSSubkey, Exists: true, Subkeys: []string{"LS03"}}},
			[]string{"LS03"}, SourceLocal, "subkey"},
		{"local subkey shape, value names", []evidence.RegKey{pol(), {Path: evidence.KeyLocalLS, Exists: true}, {Path: evidence.KeyLocalLSSubkey, Exists: true, Values: []evidence.RegValue{{Name: "LS04", Type: evidence.RegNone}}}},
			[]string{"LS04"}, SourceLocal, "subkey"},
		{"policy wins over local", []evidence.RegKey{pol(szv(evidence.ValLicenseServers, "LS01")), {Path: evidence.KeyLocalLS, Exists: true, Values: []evidence.RegValue{{Name: evidence.ValSpecifiedLS, Type: evidence.RegMultiSZ, Strings: []string{"LS09"}}}}},
			[]string{"LS01"}, SourcePolicy, "value"},
		{"none", []evidence.RegKey{pol(), {Path: evidence.KeyLocalLS}}, nil, SourceNone, ""},
		{"unknown", []evidence.RegKey{pol()}, nil, SourceUnknown, ""},
		{"subkey shape unreadable is unknown, not none", []evidence.RegKey{pol(), {Path: evidence.KeyLocalLS, Exists: true}, {Path: evidence.KeyLocalLSSubkey, Error: "access denied"}},
			nil, SourceUnknown, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := Interpret(collected(tc.keys...)).LicenseServers
			if !eqs(l.Effective, tc.eff) || l.Source != tc.source || l.LocalShape != tc.shape {
				t.Fatalf("effective %v from %s shape %q", l.Effective, l.Source, l.LocalShape)
			}
		})
	}
}

func eqs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInterpretConnectivity(t *testing.T) {
	ev := collected()
	ev.TerminalServices = &evidence.TerminalServices{Connectivity: []evidence.LSConnectivity{
		{Server: "A", MethodResult: evidence.MethodResult{Called: true, ReturnValue: p64(0)}, Status: p64(9)},
		{Server: "B", MethodResult: evidence.MethodResult{Called: true, ReturnValue: p64(0)}, Status: p64(11)},
		{Server: "C", MethodResult: evidence.MethodResult{Called: true, ReturnValue: p64(0)}, Status: p64(4)},
		{Server: "D", MethodResult: evidence.MethodResult{Called: true, ReturnValue: p64(5)}},
	}}
	c := Interpret(ev).LicenseServers.Connectivity
	if !c[0].Healthy || !c[1].Healthy || c[2].Healthy || c[3].Status != nil || c[3].Error == "" {
		t.Fatalf("%+v", c)
	}
}

func TestCounts(t *testing.T) {
	cases := []struct {
		in   *int64
		want Count
		s    string
	}{
		{p64(4294967295), Count{Unlimited: true, Known: true}, "unlimited"},
		{p64(-1), Count{Unlimited: true, Known: true}, "unlimited"},
		{p64(20), Count{Value: 20, Known: true}, "20"},
		{p64(0), Count{Value: 0, Known: true}, "0"},
		{nil, Count{}, "unknown"},
	}
	for _, tc := range cases {
		if got := countOf(tc.in); got != tc.want || got.String() != tc.s {
			t.Errorf("countOf(%v) = %+v %q", tc.in, got, got.String())
		}
	}
}

func TestInterpretKeyPacks(t *testing.T) {
	// domain.md §4: real rows.
	ev := &evidence.Evidence{Schema: evidence.Schema, Status: evidence.StatusCollected, Host: evidence.HostRef{Name: "LS", Roles: []string{evidence.RoleLicenseServer}},
		OS: &evidence.OSInfo{Locale: "de-DE"},
		LicenseServer: &evidence.LicenseServerEvidence{KeyPacks: []evidence.KeyPack{
			{KeyPackID: 2, Description: "A02-5.00-EX", KeyPackType: p64(6), ProductType: p64(3), ProductVersionID: p64(0), TotalLicenses: p64(4294967295), IssuedLicenses: p64(0), AvailableLicenses: p64(4294967295), TypeAndModel: "Built-in TS Per Device CAL"},
			{KeyPackID: 4, KeyPackType: p64(2), ProductType: p64(1), ProductVersionID: p64(4), TotalLicenses: p64(20), IssuedLicenses: p64(11), AvailableLicenses: p64(9), TypeAndModel: "RDS Per User CAL", ExpirationDate: "20380101000000.000000-000"},
			{KeyPackID: 3, KeyPackType: p64(5), ProductType: p64(1), ProductVersionID: p64(6), TotalLicenses: p64(2000), IssuedLicenses: p64(1), AvailableLicenses: p64(1999), ExpirationDate: "01.02.2036 00:00:00"},
			{KeyPackID: 13, KeyPackType: p64(4), ProductType: p64(0), ProductVersionID: p64(2), TotalLicenses: p64(-1), IssuedLicenses: p64(100), AvailableLicenses: p64(-1)},
			{KeyPackID: 14, KeyPackType: p64(7), ProductType: p64(2)},
		}},
	}
	h := Interpret(ev).Holdings
	k := h.KeyPacks
	if !k[0].BuiltIn || k[0].CALType != "unknown(3)" || !k[0].Total.Unlimited {
		t.Errorf("built-in: %+v", k[0])
	}
	if k[1].BuiltIn || k[1].CALType != CALPerUser || k[1].Version != "2012" || k[1].Total.Value != 20 || k[1].Expires.Year() != 2038 {
		t.Errorf("per user 2012: %+v", k[1])
	}
	if k[2].Version != "2019" || k[2].Expires == nil || !k[2].Expires.Equal(time.Date(2036, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("2019 open: %+v", k[2])
	}
	if !k[3].Temporary || k[3].CALType != CALPerDevice || !k[3].Total.Unlimited || k[3].Issued.Value != 100 || k[3].Version != "2008" {
		t.Errorf("temporary: %+v", k[3])
	}
	if k[4].PackTypeName != "type 7" || k[4].CALType != "unknown(2)" || k[4].Total.Known {
		t.Errorf("type 7: %+v", k[4])
	}
}

func TestParseDate(t *testing.T) {
	utc := func(y int, m time.Month, d, hh, mm, ss int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, 0, time.UTC)
	}
	cases := []struct {
		in, locale string
		want       time.Time
		err        bool
	}{
		{"20380101000000.000000-000", "", utc(2038, 1, 1, 0, 0, 0), false},
		{"20261215103000.000000+060", "", utc(2026, 12, 15, 9, 30, 0), false},
		{"20261215103000.000000-300", "", utc(2026, 12, 15, 15, 30, 0), false},
		{"20261215103000.500000+000", "", utc(2026, 12, 15, 10, 30, 0).Add(500 * time.Millisecond), false},
		{"2026-12-15T10:30:00Z", "", utc(2026, 12, 15, 10, 30, 0), false},
		{"2026-12-15T10:30:00+02:00", "", utc(2026, 12, 15, 8, 30, 0), false},
		{"2026-12-15T10:30:00.1234567", "", utc(2026, 12, 15, 10, 30, 0).Add(123456700), false},
		{"2026-12-15 10:30:00", "", utc(2026, 12, 15, 10, 30, 0), false},
		{"2026-12-15", "", utc(2026, 12, 15, 0, 0, 0), false},
		{"/Date(1798761600000)/", "", utc(2027, 1, 1, 0, 0, 0), false},
		{`\/Date(1798761600000)\/`, "", utc(2027, 1, 1, 0, 0, 0), false},
		{"/Date(1798761600000+0100)/", "", utc(2027, 1, 1, 0, 0, 0), false},
		{"/Date(-1000)/", "", utc(1969, 12, 31, 23, 59, 59), false},
		{"/Date()/", "", time.Time{}, true},
		{"/Date(abc)/", "", time.Time{}, true},
		{"01/01/2036 00:00:00", "", utc(2036, 1, 1, 0, 0, 0), false},       // day == month: unambiguous
		{"01/02/2036 00:00:00", "", time.Time{}, true},                     // ambiguous without locale
		{"01/02/2036 00:00:00", "en-US", utc(2036, 1, 2, 0, 0, 0), false},  // month first
		{"01/02/2036 00:00:00", "en-GB", utc(2036, 2, 1, 0, 0, 0), false},  // day first
		{"01/02/2036 00:00:00", "fr-FR", utc(2036, 2, 1, 0, 0, 0), false},  // day first
		{"13/02/2036 00:00:00", "", utc(2036, 2, 13, 0, 0, 0), false},      // unambiguous
		{"02/13/2036 1:05:09 PM", "", utc(2036, 2, 13, 13, 5, 9), false},   // unambiguous, 12-hour
		{"2/3/2036 12:00:00 AM", "en-US", utc(2036, 2, 3, 0, 0, 0), false}, // midnight
		{"01.02.2036 00:00:00", "", utc(2036, 2, 1, 0, 0, 0), false},       // dotted: day first always
		{"01-02-2036", "en-US", utc(2036, 1, 2, 0, 0, 0), false},           // dashes
		{"2036/02/01 0:00:00", "ja-JP", utc(2036, 2, 1, 0, 0, 0), false},   // year first (ja-JP, zh-CN)
		{"2036/02/01", "", utc(2036, 2, 1, 0, 0, 0), false},                // year first needs no locale
		{"31/02/2036 00:00:00", "en-GB", time.Time{}, true},                // out of range
		{"01/02/2036 25:00:00", "en-GB", time.Time{}, true},                // bad hour
		{"yesterday", "", time.Time{}, true},
		{"", "", time.Time{}, true},
	}
	for _, tc := range cases {
		got, err := ParseDate(tc.in, tc.locale)
		if tc.err {
			if err == nil {
				t.Errorf("ParseDate(%q, %q) = %v, want error", tc.in, tc.locale, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseDate(%q, %q) = %v, %v; want %v", tc.in, tc.locale, got, err, tc.want)
		}
	}
}

func TestRelease(t *testing.T) {
	cases := []struct{ version, build, caption, want string }{
		{"6.0.6002", "6002", "Microsoft Windows Server 2008 Standard", "2008"},
		{"6.1.7601", "7601", "", "2008 R2"},
		{"6.2.9200", "9200", "", "2012"},
		{"6.3.9600", "9600", "", "2012 R2"},
		{"10.0.14393", "14393", "", "2016"},
		{"10.0.17763", "", "", "2019"},
		{"10.0.20348", "20348", "Microsoft Windows Server 2022 Datacenter: Azure Edition", "2022"},
		{"10.0.26100", "26100", "", "2025"},
		{"", "", "Microsoft Windows Server 2012 R2 Standard", "2012 R2"},
		{"", "", "Microsoft Windows Server 2008 R2 Enterprise", "2008 R2"},
		{"", "", "Microsoft® Windows Server® 2016 Standard", ""}, // no "server 2016" literal: unknown, never a guess
		{"10.0.22631", "22631", "Microsoft Windows 11 Enterprise", ""},
	}
	for _, tc := range cases {
		if got := Release(tc.version, tc.build, tc.caption); got != tc.want {
			t.Errorf("Release(%q, %q, %q) = %q, want %q", tc.version, tc.build, tc.caption, got, tc.want)
		}
	}
	for rel, min := range map[string]int64{"2008": 2, "2008 R2": 2, "2012": 4, "2012 R2": 4, "2016": 5, "2019": 6, "2022": 7, "2025": 8, "": 0} {
		if got := MinCALVersion(rel); got != min {
			t.Errorf("MinCALVersion(%q) = %d, want %d", rel, got, min)
		}
	}
	for rel, v := range map[string]int64{"2008": 2, "2008 R2": 3, "2012 R2": 4, "2025": 8, "1999": 0} {
		if got := ReleaseCALVersion(rel); got != v {
			t.Errorf("ReleaseCALVersion(%q) = %d, want %d", rel, got, v)
		}
	}
	if (OSFacts{Release: "2008 R2"}).Supported() || (OSFacts{Version: "6.1.7601"}).Supported() || !(OSFacts{Release: "2012"}).Supported() || !(OSFacts{}).Supported() {
		t.Error("Supported")
	}
}

func TestInterpretGraceAndArtefacts(t *testing.T) {
	own := `BUILTIN\Administrators`
	w := time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)
	ev := collected(
		evidence.RegKey{Path: evidence.KeyGracePeriod, Exists: true, Owner: own, LastWriteTime: &w, Values: []evidence.RegValue{
			{Name: evidence.ValTimebombBeta, Type: evidence.RegBinary, Length: 230}, dwv(evidence.ValTimebombPlain, 1)}},
		evidence.RegKey{Path: evidence.KeyMisplacedCore, Exists: true},
	)
	ev.TerminalServices = &evidence.TerminalServices{}
	ev.TerminalServices.GracePeriod.Called = true
	ev.TerminalServices.GracePeriod.ReturnValue = p64(2147749889)
	f := Interpret(ev)
	g := f.Grace
	if g.DaysLeft != nil || !g.MethodFailed || g.MethodError == "" || g.Timebomb == nil || g.Timebomb.Name != evidence.ValTimebombBeta ||
		!eqs(g.ExtraValues, []string{evidence.ValTimebombPlain}) || g.KeyOwner != own || !g.KeyWritten.Equal(w) {
		t.Fatalf("grace %+v", g)
	}
	if len(f.Artefacts) != 2 {
		t.Errorf("artefacts %v", f.Artefacts)
	}
}

func TestInterpretNotCollected(t *testing.T) {
	f := Interpret(evidence.NewFailure(evidence.HostRef{Name: "X"}, "winrm", time.Now(), evidence.StatusFailed, evidence.FailTimeout, "t"))
	if f.Collected() || f.Failure.Class != evidence.FailTimeout || f.OS.Known || f.Mode.EffectiveSource != "" {
		t.Fatalf("%+v", f)
	}
}

func TestReleaseOnlyForServerEditions(t *testing.T) {
	for _, tc := range []struct{ caption, version, want string }{
		{"Microsoft Windows Server 2016 Datacenter", "10.0.14393", "2016"},
		{"Microsoft Windows 10 Enterprise LTSB 2016", "10.0.14393", ""},
		{"Microsoft Windows 11 Enterprise multi-session", "10.0.26100", ""},
		{"", "10.0.20348", "2022"},
	} {
		ev := collected()
		ev.OS = &evidence.OSInfo{Caption: tc.caption, Version: tc.version}
		if got := Interpret(ev).OS.Release; got != tc.want {
			t.Errorf("%q %s: release %q, want %q", tc.caption, tc.version, got, tc.want)
		}
	}
}
