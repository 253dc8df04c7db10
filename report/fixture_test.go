package report

import (
	"encoding/base64"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

// injections returns formula-injection strings as a registry or WMI string could hold
// them. Each must stay a string cell in the workbook.
func injections() []string {
	return []string{
		`=HYPERLINK("http://x","y")`,
		`+cmd|' /C calc'!A0`,
		`-1+1`,
		`@SUM(1)`,
	}
}

// The fixture run's start and end, and when its GracePeriod key was written.
func t0() time.Time      { return time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC) }
func t1() time.Time      { return t0().Add(95 * time.Second) }
func keyTime() time.Time { return time.Date(2026, 10, 30, 22, 15, 0, 0, time.UTC) }

func p64(v int64) *int64        { return &v }
func u64(v uint64) *uint64      { return &v }
func sp(s string) *string       { return &s }
func tp(t time.Time) *time.Time { return &t }
func bp(b bool) *bool           { return &b }

func dw(name string, v uint64) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegDWord, Number: u64(v), Length: 4}
}

func sz(name, v string) evidence.RegValue {
	return evidence.RegValue{Name: name, Type: evidence.RegSZ, String: sp(v), Length: 2 * (len(v) + 1)}
}

func sessionHost(name, group string, policyMode, localMode int64, ls string, days int64) *evidence.Evidence {
	ev := &evidence.Evidence{Schema: evidence.Schema, Collector: "snapshot", CollectedAt: t0().Add(10 * time.Second),
		Host:   evidence.HostRef{Name: name, Group: group, Roles: []string{evidence.RoleSessionHost}},
		Status: evidence.StatusCollected,
		OS: &evidence.OSInfo{ComputerName: name, Caption: "Microsoft Windows Server 2022 Datacenter", Version: "10.0.20348",
			BuildNumber: "20348", InstallDate: "20230115093000.000000+060", Domain: "corp.example", PartOfDomain: bp(true), Locale: "en-US"},
	}
	pol := evidence.RegKey{Path: evidence.KeyPolicy, Exists: true}
	if policyMode >= 0 {
		pol.Values = append(pol.Values, dw(evidence.ValLicensingMode, uint64(policyMode)))
	}
	if ls != "" {
		pol.Values = append(pol.Values, sz(evidence.ValLicenseServers, ls))
	}
	core := evidence.RegKey{Path: evidence.KeyLicensingCore, Exists: true}
	if localMode >= 0 {
		core.Values = append(core.Values, dw(evidence.ValLicensingMode, uint64(localMode)))
	}
	ev.Registry = []evidence.RegKey{pol, core,
		{Path: evidence.KeyGracePeriod, Exists: true, LastWriteTime: tp(keyTime()), Owner: `NT AUTHORITY\NETWORK SERVICE`,
			Values: []evidence.RegValue{{Name: evidence.ValTimebomb, Type: evidence.RegBinary, Length: 230, SHA256: "ab", Redacted: true}}},
		{Path: evidence.KeyLocalLS, Exists: false}, {Path: evidence.KeyLocalLSSubkey, Exists: false}, {Path: evidence.KeyRCM, Exists: true},
	}
	ts := &evidence.TerminalServices{NamespacePresent: true, TerminalServerMode: p64(1), LicensingType: p64(localMode),
		PolicySourceLicensingType: p64(1)}
	ts.GracePeriod.Called, ts.GracePeriod.ReturnValue, ts.GracePeriod.DaysLeft = true, p64(0), p64(days)
	ev.TerminalServices = ts
	return ev
}

// fixtureEvidence is a small fleet: two session hosts (one carrying formula-injection
// strings), a license server, and a host that could not be collected.
func fixtureEvidence() []*evidence.Evidence {
	inj := injections()
	a := sessionHost("RDSH-01", "farm-a", 4, 4, "LS-01.corp.example", 88)
	b := sessionHost("rdsh-02", inj[3], -1, 2, inj[2], 140)
	b.OS.Caption = inj[1]
	b.OS.Domain = inj[0]
	ls := &evidence.Evidence{Schema: evidence.Schema, Collector: "snapshot", CollectedAt: t0().Add(20 * time.Second),
		Host: evidence.HostRef{Name: "LS-01", Roles: []string{evidence.RoleLicenseServer}}, Status: evidence.StatusCollected,
		OS: &evidence.OSInfo{Caption: "Microsoft Windows Server 2022 Standard", Version: "10.0.20348", BuildNumber: "20348", Locale: "en-US"},
		LicenseServer: &evidence.LicenseServerEvidence{
			KeyPacks: []evidence.KeyPack{
				{KeyPackID: 4, Description: "C50-6.02-S", KeyPackType: p64(2), ProductType: p64(1), ProductVersionID: p64(7),
					TotalLicenses: p64(20), IssuedLicenses: p64(11), AvailableLicenses: p64(9),
					ExpirationDate: "20380101000000.000000-000", TypeAndModel: "RDS Per User CAL"},
				{KeyPackID: 2, Description: "A02-5.00-EX", KeyPackType: p64(6), ProductType: p64(3), ProductVersionID: p64(0),
					TotalLicenses: p64(4294967295), IssuedLicenses: p64(0), AvailableLicenses: p64(-1), TypeAndModel: "Built-in TS Per Device CAL"},
			},
			IssuedLicenses: []evidence.IssuedLicense{
				{LicenseID: 7, KeyPackID: 4, IssuedToUser: inj[0], IssuedToComp: "CLIENT-07", IssueDate: "20260901120000.000000+000",
					ExpirationDate: "20261130120000.000000+000", LicenseStatus: p64(1)},
				{LicenseID: 3, KeyPackID: 4, IssuedToUser: "CORP\\ann", IssuedToComp: "CLIENT-03", IssueDate: "20260801120000.000000+000",
					ExpirationDate: "20261101120000.000000+000", LicenseStatus: p64(2)},
			},
			IssuedTotal: 2,
		},
	}
	ls.LicenseServer.ActivationStatus.Called, ls.LicenseServer.ActivationStatus.ReturnValue, ls.LicenseServer.ActivationStatus.Status = true, p64(0), p64(0)
	failed := evidence.NewFailure(evidence.HostRef{Name: "RDSH-03", Group: "farm-a", Roles: []string{evidence.RoleSessionHost}},
		"winrm", t0().Add(30*time.Second), evidence.StatusFailed, evidence.FailAuth, "401 Unauthorized: "+inj[1])
	return []*evidence.Evidence{b, ls, failed, a} // unsorted on purpose
}

func fixtureCatalogue() []RuleInfo {
	return []RuleInfo{
		{ID: "RDS-MODE-001", Severity: rules.SevHigh, Title: "Licensing mode configured", Rationale: "A host without a mode cannot obtain CALs.",
			Remediation: "Set LicensingMode by Group Policy.", References: []string{"https://learn.microsoft.com/"}},
		{ID: "RDS-LS-001", Severity: rules.SevHigh, Title: "License server configured", Remediation: "Set LicenseServers by Group Policy."},
		{ID: "RDS-GRACE-001", Severity: rules.SevCritical, Title: "Grace period not tampered", Remediation: "Investigate the grace reset."},
	}
}

func res(rule string, sev rules.Severity, out rules.Outcome, host, group, msg, observed string) rules.Result {
	s := rules.Subject{Kind: rules.SubjectHost, Name: host, Group: group}
	return rules.Result{ID: rules.FindingID(rule, s, ""), RuleID: rule, Severity: sev, Outcome: out, Subject: s,
		Message: msg, Observed: observed, Expected: "per_user", Source: "policy"}
}

func fixtureInput() BuildInput {
	inj := injections()
	results := []rules.Result{
		res("RDS-MODE-001", rules.SevHigh, rules.Pass, "RDSH-01", "farm-a", "mode Per User (4) by policy", "4"),
		res("RDS-MODE-001", rules.SevHigh, rules.Fail, "rdsh-02", inj[3], "mode set only locally: "+inj[0], inj[1]),
		res("RDS-MODE-001", rules.SevHigh, rules.Error, "RDSH-03", "farm-a", "host not collected", ""),
		res("RDS-LS-001", rules.SevHigh, rules.Pass, "RDSH-01", "farm-a", "license server by policy", "LS-01.corp.example"),
		res("RDS-LS-001", rules.SevHigh, rules.Fail, "rdsh-02", inj[3], "license server "+inj[2], inj[2]),
		res("RDS-GRACE-001", rules.SevCritical, rules.Fail, "rdsh-02", inj[3], "grace days 140 > 120", "140"),
		res("RDS-GRACE-001", rules.SevCritical, rules.Pass, "RDSH-01", "farm-a", "grace days 88", "88"),
		res("RDS-GRACE-001", rules.SevCritical, rules.NotApplicable, "LS-01", "", "not a session host", ""),
	}
	results[4].Waived, results[4].WaiverID = true, "W-1"
	results[5].Lifecycle, results[5].FirstSeen, results[5].LastSeen = rules.StatusPersisting, tp(t0().AddDate(0, -1, 0)), tp(t0())
	gs := rules.Subject{Kind: rules.SubjectGroup, Name: "farm-a"}
	results = append(results, rules.Result{RuleID: "RDS-MODE-002", Severity: rules.SevMedium, Outcome: rules.Fail, Subject: gs,
		Message: "mixed modes in group", Observed: "per_user, unknown"})
	return BuildInput{
		Run: RunInfo{ID: "20261102T080000Z-ab12", StartedAt: t0(), FinishedAt: t1(), ToolVersion: "0.3.0", RuleSetVersion: "1",
			RuleSetHash: "sha256:1111", ConfigHash: "sha256:2222", Collector: "snapshot", FailOn: rules.SevHigh},
		Evidence: fixtureEvidence(),
		Evaluation: Evaluation{
			Results:   results,
			Catalogue: fixtureCatalogue(),
			Waivers: []Waiver{
				{ID: "W-2", RuleID: "RDS-MODE-001", Scope: "host:rdsh-02", Approver: "cfo@example", Reason: inj[0],
					Expires: tp(t0().AddDate(0, 0, -3)), Expired: true, Matched: 1,
					Results: []string{rules.FindingID("RDS-MODE-001", rules.Subject{Kind: rules.SubjectHost, Name: "rdsh-02"}, "")}},
				{ID: "W-1", RuleID: "RDS-LS-001", Scope: "group:" + inj[3], Approver: "it@example", Reason: "migration",
					Expires: tp(t0().AddDate(0, 2, 0)), Applied: 1, Matched: 1},
			},
			Position: []PositionRow{
				{CALType: facts.CALPerUser, VersionID: p64(7), Version: "2022", Entitled: p64(25), Installed: &Count{Value: 20},
					Issued: &Count{Value: 11}, Used: p64(30), Usage: p64(30), UsageSource: "reports", Shortfall: p64(5), Complete: true, UnitCost: fp64(120), EstimatedCost: fp64(600), Currency: "EUR"},
				{CALType: facts.CALPerDevice, VersionID: p64(6), Version: "2019", Entitled: p64(10), Installed: &Count{Unlimited: true},
					Issued: &Count{Value: 2}, Usage: p64(2), UsageSource: "issued", Shortfall: p64(-8), Complete: true, Note: "built-in pack excluded"},
			},
		},
		Drift: &rules.Drift{PreviousRunID: "20261002T080000Z-ff00", PreviousAt: t0().AddDate(0, -1, 0),
			New:        []string{rules.FindingID("RDS-MODE-001", rules.Subject{Kind: rules.SubjectHost, Name: "rdsh-02", Group: inj[3]}, "")},
			Persisting: []string{rules.FindingID("RDS-GRACE-001", rules.Subject{Kind: rules.SubjectHost, Name: "rdsh-02"}, "")},
			Resolved:   []rules.Result{res("RDS-LS-001", rules.SevHigh, rules.Fail, "RDSH-01", "farm-a", "no license server", "")}},
	}
}

func fp64(f float64) *float64 { return &f }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
