package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

type ruleCase struct {
	rule, name string
	setup      func(f *fleet)
	subject    string
	want       Outcome
	wantSev    *Severity
	contains   string // substring of the message
}

func sev(s Severity) *Severity { return &s }

func history(h string, s ...HostSnapshot) func(*fleet) {
	return func(f *fleet) {
		m := MemHistory{}
		for _, x := range s {
			m.Add(h, x)
		}
		f.hist = m
	}
}

func both(a, b func(*fleet)) func(*fleet) {
	return func(f *fleet) { a(f); b(f) }
}

func graceDaysSet(host string, d int64) func(*fleet) {
	return func(f *fleet) { f.host(host).TerminalServices.GracePeriod.DaysLeft = p64(d) }
}

func ledger(rows ...Entitlement) func(*fleet) {
	return func(f *fleet) { f.ent, f.ledger = rows, true }
}

func ent(calType string, version int64, qty int64, price Amount) Entitlement {
	return Entitlement{CALType: calType, Version: facts.CALVersionName(&version), VersionID: version, Quantity: qty, Agreement: "EA-1", UnitPrice: &price, Currency: "EUR", Source: "test:1"}
}

func uncollected(host string, class evidence.FailureClass) func(*fleet) {
	return func(f *fleet) {
		h := f.host(host)
		*h = *evidence.NewFailure(h.Host, "test", now(), evidence.StatusFailed, class, "simulated")
	}
}

// ruleCases returns the rule table: each case changes the baseline fleet and wants one
// outcome for one rule on one subject.
func ruleCases() []ruleCase {
	return append([]ruleCase{
		// MODE-001
		{rule: "RDS-MODE-001", name: "per user", subject: "RDSH1", want: Pass},
		{rule: "RDS-MODE-001", name: "not configured", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicensingMode)
			setVal(f.host("RDSH1"), evidence.KeyLicensingCore, dw(evidence.ValLicensingMode, 5))
		}},
		{rule: "RDS-MODE-001", name: "absent everywhere", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicensingMode)
			delVal(f.host("RDSH1"), evidence.KeyLicensingCore, evidence.ValLicensingMode)
		}},
		{rule: "RDS-MODE-001", name: "admin mode host", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		{rule: "RDS-MODE-001", name: "policy key unreadable", subject: "RDSH1", want: Error, setup: func(f *fleet) { key(f.host("RDSH1"), evidence.KeyPolicy).Error = "access denied" }},
		{rule: "RDS-MODE-001", name: "not collected", subject: "RDSH1", want: Error, setup: uncollected("RDSH1", evidence.FailTimeout)},
		// MODE-002
		{rule: "RDS-MODE-002", name: "agree", subject: "RDSH1", want: Pass},
		{rule: "RDS-MODE-002", name: "disagree, policy wins", subject: "RDSH1", want: Fail, contains: "policy value is effective", setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyLicensingCore, dw(evidence.ValLicensingMode, 2))
		}},
		{rule: "RDS-MODE-002", name: "only local", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicensingMode)
		}},
		// MODE-003
		{rule: "RDS-MODE-003", name: "agree", subject: "RDSH1", want: Pass},
		{rule: "RDS-MODE-003", name: "wmi differs", subject: "RDSH1", want: Fail, setup: func(f *fleet) { f.host("RDSH1").TerminalServices.LicensingType = p64(2) }},
		{rule: "RDS-MODE-003", name: "wmi source says server", subject: "RDSH1", want: Fail, setup: func(f *fleet) { f.host("RDSH1").TerminalServices.PolicySourceLicensingType = p64(0) }},
		{rule: "RDS-MODE-003", name: "wmi missing", subject: "RDSH1", want: Error, setup: func(f *fleet) { f.host("RDSH1").TerminalServices.LicensingType = nil }},
		{rule: "RDS-MODE-003", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		// MODE-004
		{rule: "RDS-MODE-004", name: "same mode", subject: "farm", want: Pass},
		{rule: "RDS-MODE-004", name: "mixed", subject: "farm", want: Fail, setup: func(f *fleet) {
			setVal(f.host("RDSH2"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
		}},
		{rule: "RDS-MODE-004", name: "expected per device", subject: "farm", want: Fail, contains: "expected Per Device", setup: func(f *fleet) {
			f.rs = DefaultRuleSet()
			f.rs.ExpectedModes = map[string]int64{"farm": 2}
		}},
		{rule: "RDS-MODE-004", name: "single host", subject: "farm", want: NotApplicable, setup: func(f *fleet) { f.host("RDSH2").Host.Group = "other" }},
		{rule: "RDS-MODE-004", name: "member not collected", subject: "farm", want: Error, setup: uncollected("RDSH2", evidence.FailAuth)},
		// MODE-005
		{rule: "RDS-MODE-005", name: "per user packs", subject: "RDSH1", want: Pass},
		{rule: "RDS-MODE-005", name: "only per device packs", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.KeyPacks = ls.KeyPacks[:1]
			ls.KeyPacks = append(ls.KeyPacks, pack(4, 2, 0, 7, 50, 10, "RDS Per Device CAL"))
		}},
		{rule: "RDS-MODE-005", name: "license server not audited", subject: "RDSH1", want: Error, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, sz(evidence.ValLicenseServers, "LS99"))
		}},
		{rule: "RDS-MODE-005", name: "mode not configured", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 5))
		}},
		// MODE-006
		{rule: "RDS-MODE-006", name: "domain member", subject: "RDSH1", want: Pass},
		{rule: "RDS-MODE-006", name: "workgroup", subject: "RDSH1", want: Fail, setup: func(f *fleet) { f.host("RDSH1").OS.PartOfDomain = pb(false) }},
		{rule: "RDS-MODE-006", name: "per device", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
		}},
		{rule: "RDS-MODE-006", name: "domain unknown", subject: "RDSH1", want: Error, setup: func(f *fleet) { f.host("RDSH1").OS.PartOfDomain = nil }},
		// MODE-007
		{rule: "RDS-MODE-007", name: "per user", subject: "RDSH1", want: Pass},
		{rule: "RDS-MODE-007", name: "personal ts", subject: "RDSH1", want: Fail, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 0)) }},
		{rule: "RDS-MODE-007", name: "admin mode on appserver", subject: "RDSH1", want: Fail, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 1)) }},
		{rule: "RDS-MODE-007", name: "aad per user untagged", subject: "RDSH1", want: Fail, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 6)) }},
		{rule: "RDS-MODE-007", name: "aad per user on avd", subject: "RDSH1", want: Pass, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 6))
			f.host("RDSH1").Host.Tags = []string{"AVD"}
		}},
		{rule: "RDS-MODE-007", name: "value 9", subject: "RDSH1", want: Fail, contains: "unknown(9)", setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 9)) }},
		{rule: "RDS-MODE-007", name: "wrong registry type", subject: "RDSH1", want: Fail, contains: "not REG_DWORD", setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyLicensingCore, sz(evidence.ValLicensingMode, "4"))
		}},
		{rule: "RDS-MODE-007", name: "no value", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicensingMode)
			delVal(f.host("RDSH1"), evidence.KeyLicensingCore, evidence.ValLicensingMode)
		}},
		// LS-001
		{rule: "RDS-LS-001", name: "policy servers", subject: "RDSH1", want: Pass},
		{rule: "RDS-LS-001", name: "local subkey shape", subject: "RDSH1", want: Pass, contains: "from local", setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicenseServers)
			k := key(f.host("RDSH1"), evidence.KeyLocalLSSubkey)
			k.Exists, k.Subkeys = true, []string{"LS01"}
		}},
		{rule: "RDS-LS-001", name: "none", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicenseServers)
			f.host("RDSH1").TerminalServices.SpecifiedLicenseServers.Servers = nil
		}},
		{rule: "RDS-LS-001", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		// LS-002
		{rule: "RDS-LS-002", name: "in inventory", subject: "RDSH1", want: Pass},
		{rule: "RDS-LS-002", name: "fqdn matches short name", subject: "RDSH1", want: Pass, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, sz(evidence.ValLicenseServers, "ls01.corp.example."))
		}},
		{rule: "RDS-LS-002", name: "unknown server", subject: "RDSH1", want: Fail, contains: "LS99", setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, sz(evidence.ValLicenseServers, "LS01, LS99"))
		}},
		{rule: "RDS-LS-002", name: "no servers", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicenseServers) }},
		// LS-003
		{rule: "RDS-LS-003", name: "same set", subject: "farm", want: Pass},
		{rule: "RDS-LS-003", name: "different sets", subject: "farm", want: Fail, setup: func(f *fleet) {
			setVal(f.host("RDSH2"), evidence.KeyPolicy, sz(evidence.ValLicenseServers, "LS01,LS02"))
		}},
		{rule: "RDS-LS-003", name: "single host", subject: "farm", want: NotApplicable, setup: func(f *fleet) { f.host("RDSH2").Host.Group = "" }},
		// LS-004
		{rule: "RDS-LS-004", name: "valid 11", subject: "RDSH1", want: Pass},
		{rule: "RDS-LS-004", name: "valid 9", subject: "RDSH1", want: Pass, setup: func(f *fleet) { f.host("RDSH1").TerminalServices.Connectivity[0].Status = p64(9) }},
		{rule: "RDS-LS-004", name: "not connectable", subject: "RDSH1", want: Fail, contains: "not connectable (6)", setup: func(f *fleet) { f.host("RDSH1").TerminalServices.Connectivity[0].Status = p64(6) }},
		{rule: "RDS-LS-004", name: "call failed", subject: "RDSH1", want: Error, setup: func(f *fleet) {
			c := &f.host("RDSH1").TerminalServices.Connectivity[0]
			c.ReturnValue, c.Status = p64(1), nil
		}},
		{rule: "RDS-LS-004", name: "no servers", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) {
			delVal(f.host("RDSH1"), evidence.KeyPolicy, evidence.ValLicenseServers)
			f.host("RDSH1").TerminalServices.SpecifiedLicenseServers.Servers = nil
			f.host("RDSH1").TerminalServices.Connectivity = nil
		}},
		// LS-005
		{rule: "RDS-LS-005", name: "activated", subject: "LS01", want: Pass},
		{rule: "RDS-LS-005", name: "not activated", subject: "LS01", want: Fail, setup: func(f *fleet) { f.host("LS01").LicenseServer.ActivationStatus.Status = p64(1) }},
		{rule: "RDS-LS-005", name: "call failed", subject: "LS01", want: Error, setup: func(f *fleet) {
			a := &f.host("LS01").LicenseServer.ActivationStatus
			a.Error, a.Status = "access denied", nil
		}},
		// LS-006
		{rule: "RDS-LS-006", name: "certificate present", subject: "RDSH1", want: Pass},
		{rule: "RDS-LS-006", name: "certificate absent", subject: "RDSH1", want: Fail, setup: func(f *fleet) { delVal(f.host("RDSH1"), evidence.KeyRCM, evidence.ValX509Certificate) }},
		{rule: "RDS-LS-006", name: "not configured", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 5)) }},
		{rule: "RDS-LS-006", name: "rcm unread", subject: "RDSH1", want: Error, setup: func(f *fleet) { key(f.host("RDSH1"), evidence.KeyRCM).Error = "access denied" }},
		// LS-007
		{rule: "RDS-LS-007", name: "2022 server, 2022 packs", subject: "LS01", want: Pass},
		{rule: "RDS-LS-007", name: "2016 server, 2022 packs", subject: "LS01", want: Fail, setup: func(f *fleet) {
			o := f.host("LS01").OS
			o.Version, o.BuildNumber, o.Caption = "10.0.14393", "14393", "Microsoft Windows Server 2016 Standard"
		}},
		{rule: "RDS-LS-007", name: "only built-in pack", subject: "LS01", want: NotApplicable, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.KeyPacks = ls.KeyPacks[:1]
		}},
		{rule: "RDS-LS-007", name: "os unknown", subject: "LS01", want: Error, setup: func(f *fleet) {
			o := f.host("LS01").OS
			o.Version, o.BuildNumber, o.Caption = "", "", ""
		}},
		// GRACE-001
		{rule: "RDS-GRACE-001", name: "over", subject: "RDSH1", want: Pass, setup: graceDaysSet("RDSH1", 0)},
		{rule: "RDS-GRACE-001", name: "60 days medium", subject: "RDSH1", want: Fail, wantSev: sev(SevMedium)},
		{rule: "RDS-GRACE-001", name: "100 days low", subject: "RDSH1", want: Fail, wantSev: sev(SevLow), setup: graceDaysSet("RDSH1", 100)},
		{rule: "RDS-GRACE-001", name: "20 days high", subject: "RDSH1", want: Fail, wantSev: sev(SevHigh), setup: graceDaysSet("RDSH1", 20)},
		{rule: "RDS-GRACE-001", name: "5 days critical", subject: "RDSH1", want: Fail, wantSev: sev(SevCritical), setup: graceDaysSet("RDSH1", 5)},
		{rule: "RDS-GRACE-001", name: "threshold param", subject: "RDSH1", want: Fail, wantSev: sev(SevCritical), setup: func(f *fleet) {
			rs, err := ParseRuleSet("t.yaml", []byte("version: 1\nrules:\n  RDS-GRACE-001:\n    params: {critical_days: 20, high_days: 30}\n"))
			if err != nil {
				panic(err)
			}
			f.rs = rs
			graceDaysSet("RDSH1", 20)(f)
		}},
		{rule: "RDS-GRACE-001", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		{rule: "RDS-GRACE-001", name: "method failed", subject: "RDSH1", want: Error, setup: func(f *fleet) {
			g := &f.host("RDSH1").TerminalServices.GracePeriod
			g.ReturnValue, g.DaysLeft, g.Error = nil, nil, "Invalid operation"
		}},
		// GRACE-002
		{rule: "RDS-GRACE-002", name: "within", subject: "RDSH1", want: Pass},
		{rule: "RDS-GRACE-002", name: "114515", subject: "RDSH1", want: Fail, setup: graceDaysSet("RDSH1", 114515)},
		{rule: "RDS-GRACE-002", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		// GRACE-003
		{rule: "RDS-GRACE-003", name: "no history", subject: "RDSH1", want: NotApplicable},
		{rule: "RDS-GRACE-003", name: "counted down", subject: "RDSH1", want: Pass, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -30), 90))},
		{rule: "RDS-GRACE-003", name: "within tolerance", subject: "RDSH1", want: Pass, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -1), 60))},
		{rule: "RDS-GRACE-003", name: "above the countdown, not higher", subject: "RDSH1", want: Fail, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -1), 59))},
		{rule: "RDS-GRACE-003", name: "reset soon after the audit", subject: "RDSH1", want: Fail, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -30), 60))},
		{rule: "RDS-GRACE-003", name: "collection time, not evaluation time", subject: "RDSH1", want: Pass, setup: history("RDSH1",
			collectedAt(snap("r1", now().AddDate(0, 0, -30), 61), now().AddDate(0, 0, -1)))},
		{rule: "RDS-GRACE-003", name: "increased", subject: "RDSH1", want: Fail, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -30), 12))},
		{rule: "RDS-GRACE-003", name: "history without grace", subject: "RDSH1", want: NotApplicable, setup: history("RDSH1", HostSnapshot{RunID: "r1", At: now().AddDate(0, 0, -30)})},
		// GRACE-004
		{rule: "RDS-GRACE-004", name: "young host", subject: "RDSH1", want: Pass},
		{rule: "RDS-GRACE-004", name: "old host in grace", subject: "RDSH1", want: Fail, setup: func(f *fleet) { f.host("RDSH1").OS.InstallDate = "20240101000000.000000+000" }},
		{rule: "RDS-GRACE-004", name: "grace over", subject: "RDSH1", want: NotApplicable, setup: graceDaysSet("RDSH1", 0)},
		{rule: "RDS-GRACE-004", name: "ambiguous install date", subject: "RDSH1", want: Error, setup: func(f *fleet) {
			f.host("RDSH1").OS.InstallDate, f.host("RDSH1").OS.Locale = "03/04/2024 10:00:00", ""
		}},
		// GRACE-005
		{rule: "RDS-GRACE-005", name: "no history", subject: "RDSH1", want: NotApplicable},
		{rule: "RDS-GRACE-005", name: "not written since", subject: "RDSH1", want: Pass, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -30), 90))},
		{rule: "RDS-GRACE-005", name: "written since", subject: "RDSH1", want: Fail, setup: history("RDSH1", snap("r1", time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), 90))},
		{rule: "RDS-GRACE-005", name: "written before the previous collection", subject: "RDSH1", want: Pass, setup: history("RDSH1",
			collectedAt(snap("r1", time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), 90), now().AddDate(0, 0, -30)))},
		{rule: "RDS-GRACE-005", name: "lastwrite missing", subject: "RDSH1", want: Error, setup: both(history("RDSH1", snap("r1", now().AddDate(0, 0, -30), 90)),
			func(f *fleet) { key(f.host("RDSH1"), evidence.KeyGracePeriod).LastWriteTime = nil })},
		// GRACE-006
		{rule: "RDS-GRACE-006", name: "clean", subject: "RDSH1", want: Pass},
		{rule: "RDS-GRACE-006", name: "system owner", subject: "RDSH1", want: Pass, setup: func(f *fleet) { key(f.host("RDSH1"), evidence.KeyGracePeriod).Owner = `NT AUTHORITY\SYSTEM` }},
		{rule: "RDS-GRACE-006", name: "deleted, method fails", subject: "RDSH1", want: Fail, contains: "timebomb value missing", setup: func(f *fleet) {
			k := key(f.host("RDSH1"), evidence.KeyGracePeriod)
			k.Exists, k.Values = false, nil
			g := &f.host("RDSH1").TerminalServices.GracePeriod
			g.ReturnValue, g.DaysLeft = p64(2147749889), nil
		}},
		{rule: "RDS-GRACE-006", name: "extra value", subject: "RDSH1", want: Fail, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyGracePeriod, dw("Reset", 1)) }},
		{rule: "RDS-GRACE-006", name: "administrators owner", subject: "RDSH1", want: Fail, contains: "BUILTIN", setup: func(f *fleet) {
			key(f.host("RDSH1"), evidence.KeyGracePeriod).Owner = `BUILTIN\Administrators`
		}},
		{rule: "RDS-GRACE-006", name: "misplaced core artefact", subject: "RDSH1", want: Fail, setup: func(f *fleet) { key(f.host("RDSH1"), evidence.KeyMisplacedCore).Exists = true }},
		{rule: "RDS-GRACE-006", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		{rule: "RDS-GRACE-006", name: "key unread", subject: "RDSH1", want: Error, setup: func(f *fleet) { key(f.host("RDSH1"), evidence.KeyGracePeriod).Error = "denied" }},
		{rule: "RDS-GRACE-006", name: "key not read at all", subject: "RDSH1", want: Error, setup: func(f *fleet) {
			k := key(f.host("RDSH1"), evidence.KeyGracePeriod)
			k.Exists, k.Values, k.Error = false, nil, "denied"
		}},
		{rule: "RDS-GRACE-006", name: "values unreadable, owner changed", subject: "RDSH1", want: Fail, contains: "values could not be read", setup: func(f *fleet) {
			k := key(f.host("RDSH1"), evidence.KeyGracePeriod)
			k.Values, k.Error, k.Owner = nil, "values not readable (access denied; the key exists)", `BUILTIN\Administrators`
			g := &f.host("RDSH1").TerminalServices.GracePeriod
			g.ReturnValue, g.DaysLeft = p64(2147749889), nil
		}},
		{rule: "RDS-GRACE-005", name: "values unreadable, LastWriteTime still judged", subject: "RDSH1", want: Fail, setup: both(history("RDSH1", snap("r1", time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), 90)),
			func(f *fleet) {
				k := key(f.host("RDSH1"), evidence.KeyGracePeriod)
				k.Values, k.Error = nil, "values not readable (access denied; the key exists)"
			})},
		// GRACE-007
		{rule: "RDS-GRACE-007", name: "not hidden", subject: "RDSH1", want: Pass},
		{rule: "RDS-GRACE-007", name: "hidden in grace", subject: "RDSH1", want: Fail, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValTooltip, 1)) }},
		{rule: "RDS-GRACE-007", name: "hidden on licensed host", subject: "RDSH1", want: Pass, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValTooltip, 1))
			graceDaysSet("RDSH1", 0)(f)
		}},
		{rule: "RDS-GRACE-007", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		// GRACE-008
		{rule: "RDS-GRACE-008", name: "no history", subject: "RDSH1", want: NotApplicable},
		{rule: "RDS-GRACE-008", name: "steady countdown", subject: "RDSH1", want: Pass, setup: history("RDSH1",
			snap("r1", now().AddDate(0, 0, -60), 120), snap("r2", now().AddDate(0, 0, -30), 90))},
		{rule: "RDS-GRACE-008", name: "sawtooth", subject: "RDSH1", want: Fail, setup: history("RDSH1",
			snap("r1", now().AddDate(0, 0, -120), 15), snap("r2", now().AddDate(0, 0, -90), 110), snap("r3", now().AddDate(0, 0, -60), 12), snap("r4", now().AddDate(0, 0, -30), 100))},
		{rule: "RDS-GRACE-008", name: "increases outside window", subject: "RDSH1", want: Pass, setup: history("RDSH1",
			snap("r1", now().AddDate(0, 0, -400), 15), snap("r2", now().AddDate(0, 0, -370), 110), snap("r3", now().AddDate(0, 0, -100), 12), snap("r4", now().AddDate(0, 0, -60), 120), snap("r5", now().AddDate(0, 0, -30), 90))},
		{rule: "RDS-GRACE-008", name: "resets not higher than before", subject: "RDSH1", want: Fail, setup: history("RDSH1",
			snap("r1", now().AddDate(0, 0, -90), 110), snap("r2", now().AddDate(0, 0, -60), 100), snap("r3", now().AddDate(0, 0, -30), 90))},
		{rule: "RDS-GRACE-008", name: "too few readings", subject: "RDSH1", want: NotApplicable, setup: history("RDSH1", snap("r1", now().AddDate(0, 0, -30), 90))},
		// GRACE-009
		{rule: "RDS-GRACE-009", name: "in grace", subject: "RDSH1", want: Pass},
		{rule: "RDS-GRACE-009", name: "expired, healthy server", subject: "RDSH1", want: Pass, setup: graceDaysSet("RDSH1", 0)},
		// Issue 11: status 6 makes refusal likely, not proven; the message says so.
		{rule: "RDS-GRACE-009", name: "expired, not connectable", subject: "RDSH1", want: Fail, contains: "likely refuses user connections; not proven", setup: func(f *fleet) {
			graceDaysSet("RDSH1", 0)(f)
			f.host("RDSH1").TerminalServices.Connectivity[0].Status = p64(6)
		}},
		{rule: "RDS-GRACE-009", name: "expired, not configured", subject: "RDSH1", want: Fail, contains: ": the host refuses user connections", setup: func(f *fleet) {
			graceDaysSet("RDSH1", 0)(f)
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 5))
		}},
		{rule: "RDS-GRACE-009", name: "not rdsh", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { notRDSH(f.host("RDSH1")) }},
		// CAL-001
		{rule: "RDS-CAL-001", name: "2022 packs for 2022 host", subject: "RDSH1", want: Pass},
		{rule: "RDS-CAL-001", name: "2019 packs for 2022 host", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].ProductVersionID = p64(6)
		}},
		{rule: "RDS-CAL-001", name: "2012 packs for 2012 R2 host", subject: "RDSH1", want: Pass, setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].ProductVersionID = p64(4)
			o := f.host("RDSH1").OS
			o.Version, o.BuildNumber, o.Caption = "6.3.9600", "9600", "Microsoft Windows Server 2012 R2 Standard"
		}},
		{rule: "RDS-CAL-001", name: "2008 R2 packs for 2012 host", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].ProductVersionID = p64(3)
			o := f.host("RDSH1").OS
			o.Version, o.BuildNumber, o.Caption = "6.2.9200", "9200", "Microsoft Windows Server 2012 Standard"
		}},
		{rule: "RDS-CAL-001", name: "pack without version is unknown, not absent", subject: "RDSH1", want: Error, setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].ProductVersionID = nil
		}},
		{rule: "RDS-CAL-001", name: "temporary packs do not count", subject: "RDSH1", want: Fail, contains: "only temporary per_user packs", setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].KeyPackType = p64(4)
		}},
		// Issue 11: only temporary Per Device packs (KeyPackType 4) and no valid CAL is a
		// failure, not "not applicable", so no finding vanishes when RDS-MODE-005 is waived.
		{rule: "RDS-CAL-001", name: "only temporary per device packs", subject: "RDSH1", want: Fail, contains: "only temporary per_device packs (temporary key pack 4@LS01)", setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
			f.host("LS01").LicenseServer.KeyPacks[2].KeyPackType = p64(4)
		}},
		{rule: "RDS-CAL-001", name: "no pack of the mode's type", subject: "RDSH1", want: Fail, contains: "hold no per_device CALs at all", setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
			f.host("LS01").LicenseServer.KeyPacks = f.host("LS01").LicenseServer.KeyPacks[:2]
		}},
		// Key packs that could not be read are unknown, not none: error, never "hold no
		// CALs at all" (review of issue 11).
		{rule: "RDS-CAL-001", name: "key packs not read", subject: "RDSH1", want: Error, contains: "LS01 (key packs not read) were not audited", setup: func(f *fleet) {
			ls := f.host("LS01")
			ls.LicenseServer.KeyPacks = nil
			ls.Errors = append(ls.Errors, evidence.SectionError{Section: "wmi:Win32_TSLicenseKeyPack", Message: "Access denied"})
		}},
		{rule: "RDS-CAL-001", name: "per device mode", subject: "RDSH1", want: Pass, setup: func(f *fleet) {
			setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
		}},
		{rule: "RDS-CAL-001", name: "no licensed mode", subject: "RDSH1", want: NotApplicable, setup: func(f *fleet) { setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 5)) }},
		{rule: "RDS-CAL-001", name: "license server down", subject: "RDSH1", want: Error, setup: uncollected("LS01", evidence.FailConnect)},
		// CAL-002
		{rule: "RDS-CAL-002", name: "room left", subject: "LS01", want: Pass},
		{rule: "RDS-CAL-002", name: "exhausted", subject: "LS01", want: Fail, setup: func(f *fleet) { f.host("LS01").LicenseServer.KeyPacks[2].IssuedLicenses = p64(50) }},
		{rule: "RDS-CAL-002", name: "unlimited -1 counts are not exhausted", subject: "LS01", want: Pass, setup: func(f *fleet) {
			kp := &f.host("LS01").LicenseServer.KeyPacks[2]
			kp.TotalLicenses, kp.IssuedLicenses = p64(-1), p64(100)
		}},
		{rule: "RDS-CAL-002", name: "no per device packs", subject: "LS01", want: NotApplicable, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.KeyPacks = ls.KeyPacks[:2]
		}},
		{rule: "RDS-CAL-002", name: "not collected", subject: "LS01", want: Error, setup: uncollected("LS01", evidence.FailAccessDenied)},
		// CAL-003
		{rule: "RDS-CAL-003", name: "none", subject: "LS01", want: Pass},
		{rule: "RDS-CAL-003", name: "temporary issued", subject: "LS01", want: Fail, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.IssuedLicenses = append(ls.IssuedLicenses, evidence.IssuedLicense{LicenseID: 2, KeyPackID: 13, IssuedToComp: "KIOSK", LicenseStatus: p64(1)})
		}},
		{rule: "RDS-CAL-003", name: "temporary pack count", subject: "LS01", want: Fail, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.KeyPacks = append(ls.KeyPacks, pack(13, 4, 0, 2, -1, 100, ""))
		}},
		// CAL-004
		{rule: "RDS-CAL-004", name: "no report", subject: "LS01", want: NotApplicable},
		{rule: "RDS-CAL-004", name: "within", subject: "LS01", want: Pass, setup: func(f *fleet) {
			f.host("LS01").LicenseServer.Reports = []evidence.LicenseReport{{FileName: "r.xml", GeneratedDate: "20261001000000.000000-000",
				Summary: []evidence.LicenseReportEntry{{ProductVersionID: p64(7), InstalledLicenses: p64(100), IssuedLicenses: p64(80), TSCALType: p64(1)}}}}
		}},
		{rule: "RDS-CAL-004", name: "over", subject: "LS01", want: Fail, setup: func(f *fleet) {
			f.host("LS01").LicenseServer.Reports = []evidence.LicenseReport{
				{FileName: "old.xml", GeneratedDate: "20260101000000.000000-000", Summary: []evidence.LicenseReportEntry{{ProductVersionID: p64(7), IssuedLicenses: p64(10), TSCALType: p64(1)}}},
				{FileName: "new.xml", GeneratedDate: "20261001000000.000000-000", Summary: []evidence.LicenseReportEntry{{ProductVersionID: p64(7), IssuedLicenses: p64(130), TSCALType: p64(1)}}}}
		}},
		// CAL-005
		{rule: "RDS-CAL-005", name: "no ledger", subject: "ledger", want: NotApplicable},
		{rule: "RDS-CAL-005", name: "within entitlement", subject: "per_user/2022", want: Pass, setup: ledger(ent("per_user", 7, 100, 10000), ent("per_device", 7, 50, 5000))},
		{rule: "RDS-CAL-005", name: "shortfall with cost", subject: "per_user/2022", want: Fail, contains: "estimated cost 1125.00 EUR", setup: ledger(ent("per_user", 7, 30, 11250))},
		{rule: "RDS-CAL-005", name: "nothing entitled", subject: "per_device/2022", want: Fail, setup: ledger(ent("per_user", 7, 100, 100))},
		{rule: "RDS-CAL-005", name: "incomplete inventory", subject: "per_user/2022", want: Error, setup: both(ledger(ent("per_user", 7, 100, 100), ent("per_device", 7, 50, 50)), func(f *fleet) {
			f.hosts = append(f.hosts, evidence.NewFailure(evidence.HostRef{Name: "LS02", Roles: []string{evidence.RoleLicenseServer}}, "test", now(), evidence.StatusFailed, evidence.FailDNS, "no such host"))
		})},
		// CAL-006
		{rule: "RDS-CAL-006", name: "no ledger", subject: "ledger", want: NotApplicable},
		{rule: "RDS-CAL-006", name: "backed", subject: "per_user/2022", want: Pass, setup: ledger(ent("per_user", 7, 100, 100), ent("per_device", 7, 50, 50))},
		{rule: "RDS-CAL-006", name: "not backed", subject: "per_device/2022", want: Fail, setup: ledger(ent("per_user", 7, 100, 100), ent("per_device", 7, 20, 50))},
		{rule: "RDS-CAL-006", name: "entitled, none installed", subject: "per_user/2019", want: NotApplicable, setup: ledger(ent("per_user", 6, 10, 100))},
		// CAL-007
		{rule: "RDS-CAL-007", name: "2038", subject: "LS01", want: Pass},
		{rule: "RDS-CAL-007", name: "expiring", subject: "LS01", want: Fail, contains: "expires 2026-12-15", setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].ExpirationDate = "20261215000000.000000-000"
		}},
		{rule: "RDS-CAL-007", name: "expired, locale date", subject: "LS01", want: Fail, contains: "expired 2026-10-02", setup: func(f *fleet) {
			f.host("LS01").LicenseServer.KeyPacks[1].ExpirationDate = "02.10.2026 00:00:00"
		}},
		{rule: "RDS-CAL-007", name: "ambiguous date, no locale", subject: "LS01", want: Error, setup: func(f *fleet) {
			f.host("LS01").OS.Locale = ""
			f.host("LS01").LicenseServer.KeyPacks[1].ExpirationDate = "02/10/2036 00:00:00"
		}},
		{rule: "RDS-CAL-007", name: "only built-in", subject: "LS01", want: NotApplicable, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.KeyPacks = ls.KeyPacks[:1]
		}},
		// CLIENT-001
		{rule: "RDS-CLIENT-001", name: "token present", subject: "CLIENT1", want: Pass},
		{rule: "RDS-CLIENT-001", name: "store emptied", subject: "CLIENT1", want: Fail, setup: func(f *fleet) {
			h := f.host("CLIENT1")
			h.Registry = h.Registry[:2]
		}},
		{rule: "RDS-CLIENT-001", name: "no CAL listed", subject: "CLIENT1", want: NotApplicable, setup: func(f *fleet) { f.host("LS01").LicenseServer.IssuedLicenses = nil }},
		{rule: "RDS-CLIENT-001", name: "keys unread", subject: "CLIENT1", want: Error, setup: func(f *fleet) { f.host("CLIENT1").Registry[1].Error = "denied" }},
		// CLIENT-002
		{rule: "RDS-CLIENT-002", name: "no reset", subject: "CLIENT1", want: Pass},
		{rule: "RDS-CLIENT-002", name: "store reset, temporary again", subject: "CLIENT1", want: Fail, setup: func(f *fleet) {
			w := time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC)
			key(f.host("CLIENT1"), evidence.KeyClientStore).LastWriteTime = &w
			ls := f.host("LS01").LicenseServer
			ls.IssuedLicenses = append(ls.IssuedLicenses, evidence.IssuedLicense{LicenseID: 9, KeyPackID: 13, IssuedToComp: "client1.corp.example", IssueDate: "20261020000000.000000-000", LicenseStatus: p64(1)})
		}},
		{rule: "RDS-CLIENT-002", name: "temporary but store untouched", subject: "CLIENT1", want: Pass, setup: func(f *fleet) {
			ls := f.host("LS01").LicenseServer
			ls.IssuedLicenses = append(ls.IssuedLicenses, evidence.IssuedLicense{LicenseID: 9, KeyPackID: 13, IssuedToComp: "CLIENT1", IssueDate: "20261020000000.000000-000", LicenseStatus: p64(1)})
			w := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			key(f.host("CLIENT1"), evidence.KeyClientStore).LastWriteTime = &w
			f.host("CLIENT1").Registry[2].LastWriteTime = &w
		}},
		{rule: "RDS-CLIENT-002", name: "no permanent CAL", subject: "CLIENT1", want: NotApplicable, setup: func(f *fleet) { f.host("LS01").LicenseServer.IssuedLicenses = nil }},
		// COLLECT-001
		{rule: "RDS-COLLECT-001", name: "collected", subject: "RDSH1", want: Pass},
		{rule: "RDS-COLLECT-001", name: "timeout", subject: "RDSH1", want: Fail, contains: "error class timeout", setup: uncollected("RDSH1", evidence.FailTimeout)},
		// One finding per uncollected host: an unsupported OS is RDS-COLLECT-002's (issue 11).
		{rule: "RDS-COLLECT-001", name: "unsupported os is COLLECT-002's", subject: "RDSH1", want: NotApplicable, contains: "see RDS-COLLECT-002", setup: uncollected("RDSH1", evidence.FailUnsupported)},
		{rule: "RDS-COLLECT-001", name: "client timeout", subject: "CLIENT1", want: Fail, setup: uncollected("CLIENT1", evidence.FailTimeout)},
		// COLLECT-002
		{rule: "RDS-COLLECT-002", name: "2022", subject: "RDSH1", want: Pass},
		{rule: "RDS-COLLECT-002", name: "2008 R2 collected", subject: "RDSH1", want: Fail, setup: func(f *fleet) {
			o := f.host("RDSH1").OS
			o.Version, o.BuildNumber, o.Caption = "6.1.7601", "7601", "Microsoft Windows Server 2008 R2 Enterprise"
		}},
		{rule: "RDS-COLLECT-002", name: "unsupported failure", subject: "RDSH1", want: Fail, contains: "error class unsupported_os", setup: uncollected("RDSH1", evidence.FailUnsupported)},
		{rule: "RDS-COLLECT-002", name: "other failure", subject: "RDSH1", want: NotApplicable, setup: uncollected("RDSH1", evidence.FailDNS)},
	}, perUserCases()...) // rules_peruser_test.go
}

func TestRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			f := baseFleet()
			if tc.setup != nil {
				tc.setup(f)
			}
			ev := f.evaluate()
			r := findResult(t, ev, tc.rule, tc.subject)
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s: %s", r.Outcome, tc.want, r.Message)
			}
			if tc.wantSev != nil && r.Severity != *tc.wantSev {
				t.Errorf("severity %s, want %s", r.Severity, *tc.wantSev)
			}
			if tc.contains != "" && !strings.Contains(r.Message, tc.contains) {
				t.Errorf("message %q does not contain %q", r.Message, tc.contains)
			}
			if r.Message == "" {
				t.Error("empty message")
			}
			if r.ID != FindingID(r.RuleID, r.Subject, r.Key) {
				t.Error("finding ID not derived from rule, subject and key")
			}
			if r.Outcome == Fail && len(r.Evidence) == 0 {
				t.Error("failure without evidence fields")
			}
		})
	}
}

// noNotApplicable returns the rules without a not-applicable subject (they apply to
// every subject they have), each with the reason.
func noNotApplicable() map[string]string {
	return map[string]string{
		"RDS-COLLECT-001": "every targeted host is either collected or not",
		"RDS-LS-005":      "every license server has an activation status (or an error)",
		"RDS-CAL-003":     "every license server either issued temporary CALs or not",
		WaiverRuleID:      "every waiver is either valid or expired (tested in waiver tests)",
	}
}

func TestEveryRuleHasPassFailNotApplicableCases(t *testing.T) {
	have := map[string]map[Outcome]bool{}
	for _, tc := range ruleCases() {
		if have[tc.rule] == nil {
			have[tc.rule] = map[Outcome]bool{}
		}
		have[tc.rule][tc.want] = true
	}
	for _, info := range Rules() {
		if info.ID == WaiverRuleID {
			continue
		}
		for _, o := range []Outcome{Pass, Fail, NotApplicable} {
			if o == NotApplicable && noNotApplicable()[info.ID] != "" {
				continue
			}
			if !have[info.ID][o] {
				t.Errorf("%s: no %s case", info.ID, o)
			}
		}
	}
}

func TestCatalogue(t *testing.T) {
	want := []string{"RDS-MODE-001", "RDS-MODE-002", "RDS-MODE-003", "RDS-MODE-004", "RDS-MODE-005", "RDS-MODE-006", "RDS-MODE-007",
		"RDS-LS-001", "RDS-LS-002", "RDS-LS-003", "RDS-LS-004", "RDS-LS-005", "RDS-LS-006", "RDS-LS-007",
		"RDS-GRACE-001", "RDS-GRACE-002", "RDS-GRACE-003", "RDS-GRACE-004", "RDS-GRACE-005", "RDS-GRACE-006", "RDS-GRACE-007", "RDS-GRACE-008", "RDS-GRACE-009",
		"RDS-CAL-001", "RDS-CAL-002", "RDS-CAL-003", "RDS-CAL-004", "RDS-CAL-005", "RDS-CAL-006", "RDS-CAL-007",
		"RDS-CLIENT-001", "RDS-CLIENT-002", "RDS-COLLECT-001", "RDS-COLLECT-002",
		"RDS-PU-001", "RDS-PU-002", "RDS-PU-003", "RDS-PU-004", "RDS-WAIVER-001"}
	got := Rules()
	if len(got) != len(want) {
		t.Fatalf("%d rules, want %d", len(got), len(want))
	}
	for i, info := range got {
		if info.ID != want[i] {
			t.Errorf("rule %d: %s, want %s", i, info.ID, want[i])
		}
		if info.Title == "" || info.Rationale == "" || info.Remediation == "" || len(info.Evidence) == 0 || info.Scope == "" {
			t.Errorf("%s: incomplete RuleInfo", info.ID)
		}
		if _, ok := Lookup(info.ID); !ok {
			t.Errorf("%s: Lookup fails", info.ID)
		}
	}
}

func TestEvaluateDeterministic(t *testing.T) {
	f := baseFleet()
	a := f.evaluate()
	// reversed input order gives the same results
	for i, j := 0, len(f.hosts)-1; i < j; i, j = i+1, j-1 {
		f.hosts[i], f.hosts[j] = f.hosts[j], f.hosts[i]
	}
	b := f.evaluate()
	if len(a.Results) != len(b.Results) {
		t.Fatal("different result counts")
	}
	for i := range a.Results {
		if a.Results[i].ID != b.Results[i].ID || a.Results[i].Outcome != b.Results[i].Outcome {
			t.Fatalf("result %d differs: %s vs %s", i, a.Results[i].ID, b.Results[i].ID)
		}
	}
}

func TestHostRulesOnlyForTheirRoles(t *testing.T) {
	ev := baseFleet().evaluate()
	for _, r := range ev.Results {
		if r.RuleID == "RDS-MODE-001" && r.Subject.Name == "LS01" {
			t.Error("session-host rule evaluated on a license server")
		}
		if r.RuleID == "RDS-LS-005" && r.Subject.Name == "RDSH1" {
			t.Error("license-server rule evaluated on a session host")
		}
	}
}

func TestVerdict(t *testing.T) {
	f := baseFleet()
	graceDaysSet("RDSH1", 5)(f) // GRACE-001 critical
	ev := f.evaluate()
	if !ev.Failed() || ev.ExitCode() != 1 {
		t.Fatal("critical failure did not fail the run")
	}
	f.rs = DefaultRuleSet()
	f.rs.FailOn = SevCritical
	graceDaysSet("RDSH1", 20)(f)
	ev = f.evaluate()
	if ev.Failed() || ev.ExitCode() != 0 {
		for _, r := range ev.Blocking() {
			t.Log(r.RuleID, r.Subject, r.Severity)
		}
		t.Fatal("high failure failed a fail_on critical run")
	}
}

func TestDisabledAndSeverityOverride(t *testing.T) {
	f := baseFleet()
	rs, err := ParseRuleSet("t.yaml", []byte("version: 1\nfail_on: low\nrules:\n  RDS-GRACE-001: {severity: info}\n  RDS-MODE-001: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.rs = rs
	ev := f.evaluate()
	for _, r := range ev.Results {
		if r.RuleID == "RDS-MODE-001" {
			t.Fatal("disabled rule evaluated")
		}
	}
	if r := findResult(t, ev, "RDS-GRACE-001", "RDSH1"); r.Severity != SevInfo {
		t.Errorf("severity %s, want info override", r.Severity)
	}
	if ev.Disabled[0] != "RDS-MODE-001" {
		t.Errorf("disabled %v", ev.Disabled)
	}
}

// An inference that is not certain says so in its evidence strength as well as its
// message (issue 11): GRACE-009 with a license server answering 4, 6 or 8.
func TestGrace009UncertainStrength(t *testing.T) {
	for _, status := range []int64{4, 6, 8} {
		f := baseFleet()
		graceDaysSet("RDSH1", 0)(f)
		f.host("RDSH1").TerminalServices.Connectivity[0].Status = p64(status)
		r := findResult(t, f.evaluate(), "RDS-GRACE-009", "RDSH1")
		if r.Outcome != Fail || !strings.HasPrefix(r.Strength, "moderate") || !strings.Contains(r.Message, "likely") {
			t.Errorf("status %d: %s, strength %q: %s", status, r.Outcome, r.Strength, r.Message)
		}
	}
	f := baseFleet()
	graceDaysSet("RDSH1", 0)(f)
	setVal(f.host("RDSH1"), evidence.KeyPolicy, dw(evidence.ValLicensingMode, 5))
	if r := findResult(t, f.evaluate(), "RDS-GRACE-009", "RDSH1"); !strings.HasPrefix(r.Strength, "strong") || strings.Contains(r.Message, "likely") {
		t.Errorf("no licensed mode: strength %q: %s", r.Strength, r.Message)
	}
}
