package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// Evidence fixtures: a healthy Per User farm of two 2022 session hosts, one activated
// 2022 license server and one client; tests mutate them.

func now() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }

func p64(n int64) *int64 { return &n }
func pb(b bool) *bool    { return &b }
func pt(t time.Time) *time.Time {
	return &t
}

func dw(name string, n uint64) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegDWord, Number: &n, Length: 4}
}

func sz(name, s string) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegSZ, String: &s, Length: 2 * (len(s) + 1)}
}

func bin(name string) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegBinary, Length: 232, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Redacted: true}
}

func rdshEv(name string) *evidence.Evidence {
	install := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	ev := &evidence.Evidence{
		Schema: evidence.Schema, Collector: "test", CollectedAt: now(), Status: evidence.StatusCollected,
		Host: evidence.HostRef{Name: name, Group: "farm", Roles: []string{evidence.RoleSessionHost}},
		OS: &evidence.OSInfo{ComputerName: name, Caption: "Microsoft Windows Server 2022 Standard", Version: "10.0.20348",
			BuildNumber: "20348", InstallDate: "20260901000000.000000+000", Domain: "corp.example", PartOfDomain: pb(true),
			Roles: []string{"RDS-RD-Server"}, Locale: "en-US"},
		Registry: []evidence.RegKey{
			{Path: evidence.KeyPolicy, Exists: true, Values: []evidence.RegValue{dw(evidence.ValLicensingMode, 4), sz(evidence.ValLicenseServers, "LS01")}},
			{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{dw(evidence.ValLicensingMode, 4)}},
			{Path: evidence.KeyLocalLS, Exists: true},
			{Path: evidence.KeyLocalLSSubkey},
			{Path: evidence.KeyGracePeriod, Exists: true, LastWriteTime: &install, Owner: `NT AUTHORITY\NETWORK SERVICE`, Values: []evidence.RegValue{bin(evidence.ValTimebomb)}},
			{Path: evidence.KeyRCM, Exists: true, Values: []evidence.RegValue{bin(evidence.ValX509Certificate)}},
			{Path: evidence.KeyMisplacedCore},
		},
		TerminalServices: &evidence.TerminalServices{NamespacePresent: true, TerminalServerMode: p64(1), LicensingType: p64(4),
			PolicySourceLicensingType: p64(1), PolicySourceConfiguredLicenseServers: p64(1)},
	}
	ts := ev.TerminalServices
	ts.GracePeriod.Called, ts.GracePeriod.ReturnValue, ts.GracePeriod.DaysLeft = true, p64(0), p64(60)
	ts.SpecifiedLicenseServers.Called, ts.SpecifiedLicenseServers.ReturnValue, ts.SpecifiedLicenseServers.Servers = true, p64(0), []string{"LS01"}
	ts.Connectivity = []evidence.LSConnectivity{{Server: "LS01", MethodResult: evidence.MethodResult{Called: true, ReturnValue: p64(0)}, Status: p64(11)}}
	return ev
}

func pack(id, packType, productType, version, total, issued int64, model string) evidence.KeyPack {
	return evidence.KeyPack{KeyPackID: id, KeyPackType: p64(packType), ProductType: p64(productType), ProductVersionID: p64(version),
		TotalLicenses: p64(total), IssuedLicenses: p64(issued), AvailableLicenses: p64(total - issued),
		ExpirationDate: "20380101000000.000000-000", TypeAndModel: model}
}

func lsEv(name string) *evidence.Evidence {
	ev := &evidence.Evidence{
		Schema: evidence.Schema, Collector: "test", CollectedAt: now(), Status: evidence.StatusCollected,
		Host: evidence.HostRef{Name: name, Group: "infra", Roles: []string{evidence.RoleLicenseServer}},
		OS: &evidence.OSInfo{ComputerName: name, Caption: "Microsoft Windows Server 2022 Standard", Version: "10.0.20348",
			BuildNumber: "20348", InstallDate: "20230101000000.000000+000", PartOfDomain: pb(true), Roles: []string{"RDS-Licensing"}, Locale: "en-US"},
		LicenseServer: &evidence.LicenseServerEvidence{
			KeyPacks: []evidence.KeyPack{
				{KeyPackID: 2, KeyPackType: p64(6), ProductType: p64(3), ProductVersionID: p64(0), TotalLicenses: p64(4294967295),
					IssuedLicenses: p64(0), AvailableLicenses: p64(4294967295), TypeAndModel: "Built-in TS Per Device CAL"},
				pack(3, 2, 1, 7, 100, 40, "RDS Per User CAL"),
				pack(4, 2, 0, 7, 50, 10, "RDS Per Device CAL"),
			},
			IssuedLicenses: []evidence.IssuedLicense{
				{LicenseID: 1, KeyPackID: 4, IssuedToComp: "CLIENT1", IssueDate: "20260301000000.000000-000", LicenseStatus: p64(2)},
			},
			IssuedTotal: 1,
		},
	}
	a := &ev.LicenseServer.ActivationStatus
	a.Called, a.ReturnValue, a.Status = true, p64(0), p64(0)
	return ev
}

func clientEv(name string) *evidence.Evidence {
	w := time.Date(2026, 3, 1, 0, 5, 0, 0, time.UTC)
	return &evidence.Evidence{
		Schema: evidence.Schema, Collector: "test", CollectedAt: now(), Status: evidence.StatusCollected,
		Host: evidence.HostRef{Name: name, Group: "clients", Roles: []string{evidence.RoleClient}},
		OS:   &evidence.OSInfo{ComputerName: name, Caption: "Microsoft Windows 11 Enterprise", Version: "10.0.22631", BuildNumber: "22631"},
		Registry: []evidence.RegKey{
			{Path: evidence.KeyClientHardwareID, Exists: true, Values: []evidence.RegValue{bin(evidence.ValClientHWID)}},
			{Path: evidence.KeyClientStore, Exists: true, LastWriteTime: &w},
			{Path: evidence.KeyClientStore + `\LICENSE000`, Exists: true, LastWriteTime: &w, Values: []evidence.RegValue{bin("ClientLicense")}},
		},
	}
}

// fleet is a mutable test fleet keyed by host name.
type fleet struct {
	hosts   []*evidence.Evidence
	rs      *RuleSet
	hist    History
	ent     []Entitlement
	ledger  bool
	nowTime time.Time
	perUser *directory.Summary // rules_peruser_test.go
}

func baseFleet() *fleet {
	return &fleet{hosts: []*evidence.Evidence{rdshEv("RDSH1"), rdshEv("RDSH2"), lsEv("LS01"), clientEv("CLIENT1")}, nowTime: now()}
}

func (f *fleet) host(name string) *evidence.Evidence {
	for _, h := range f.hosts {
		if strings.EqualFold(h.Host.Name, name) {
			return h
		}
	}
	panic("no host " + name)
}

func (f *fleet) evaluate() *Evaluation {
	fs := make([]*facts.Facts, len(f.hosts))
	for i, h := range f.hosts {
		fs[i] = facts.Interpret(h)
	}
	return Evaluate(Input{Now: f.nowTime, Hosts: fs, RuleSet: f.rs, History: f.hist, Entitlements: f.ent, Ledger: f.ledger, PerUser: f.perUser})
}

func key(ev *evidence.Evidence, path string) *evidence.RegKey {
	k := ev.Key(path)
	if k == nil {
		ev.Registry = append(ev.Registry, evidence.RegKey{Path: path, Exists: true})
		k = &ev.Registry[len(ev.Registry)-1]
	}
	return k
}

func setVal(ev *evidence.Evidence, path string, v evidence.RegValue) {
	k := key(ev, path)
	k.Exists = true
	for i := range k.Values {
		if strings.EqualFold(k.Values[i].Name, v.Name) {
			k.Values[i] = v
			return
		}
	}
	k.Values = append(k.Values, v)
}

func delVal(ev *evidence.Evidence, path, name string) {
	k := key(ev, path)
	var out []evidence.RegValue
	for _, v := range k.Values {
		if !strings.EqualFold(v.Name, name) {
			out = append(out, v)
		}
	}
	k.Values = out
}

func findResult(t *testing.T, ev *Evaluation, rule, subject string) *Result {
	t.Helper()
	var found *Result
	for i := range ev.Results {
		r := &ev.Results[i]
		if r.RuleID == rule && strings.EqualFold(r.Subject.Name, subject) {
			if found != nil {
				t.Fatalf("%s on %s: more than one result", rule, subject)
			}
			found = r
		}
	}
	if found == nil {
		t.Fatalf("%s on %s: no result", rule, subject)
	}
	return found
}

func notRDSH(ev *evidence.Evidence) {
	ev.TerminalServices.TerminalServerMode = p64(0)
}

func snap(run string, at time.Time, grace int64) HostSnapshot {
	return HostSnapshot{RunID: run, At: at, Collected: true, GraceDays: p64(grace)}
}

// collectedAt sets when the snapshot's evidence was collected (it differs from the run's
// evaluation time).
func collectedAt(s HostSnapshot, t time.Time) HostSnapshot {
	s.CollectedAt = &t
	return s
}
