package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// errorCase is a parser input and a substring its error must contain.
type errorCase struct{ name, input, want string }

// wantErrors parses each case's input as file name and wants an error containing the
// case's want.
func wantErrors[T any](t *testing.T, cases []errorCase, parse func(name string, data []byte) (T, error), name string) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parse(name, []byte(tc.input)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseRuleSetErrors(t *testing.T) {
	cases := []errorCase{
		{"empty", "", "r.yaml: empty rule set"},
		{"no version", "fail_on: high\n", "r.yaml: version is required"},
		{"bad version", "version: 2\n", "r.yaml:1: version 2 not supported"},
		{"unknown key", "version: 1\nfailon: high\n", "r.yaml:2: field failon not found"},
		{"bad fail_on", "version: 1\nfail_on: urgent\n", "r.yaml:2: fail_on: unknown severity \"urgent\""},
		{"unknown rule", "version: 1\nrules:\n  RDS-MODE-999: {enabled: false}\n", "r.yaml:3: unknown rule ID \"RDS-MODE-999\""},
		{"unknown rule field", "version: 1\nrules:\n  RDS-MODE-001: {enable: false}\n", "field enable not found"},
		{"bad severity", "version: 1\nrules:\n  RDS-MODE-001: {severity: huge}\n", "r.yaml:3: rules.RDS-MODE-001.severity"},
		{"unknown param", "version: 1\nrules:\n  RDS-GRACE-001:\n    params: {warn_days: 3}\n", "r.yaml:4: rule RDS-GRACE-001 has no parameter \"warn_days\""},
		{"param type", "version: 1\nrules:\n  RDS-CAL-007:\n    params: {expiry_days: soon}\n", "want a non-negative integer"},
		{"thresholds", "version: 1\nrules:\n  RDS-GRACE-001:\n    params: {critical_days: 40}\n", "critical_days <= high_days <= medium_days"},
		{"bad mode", "version: 1\nexpected_modes: {farm: per_seat}\n", "r.yaml:2: expected_modes.farm: unknown mode"},
		{"waiver unknown rule", "version: 1\nwaivers:\n  - {id: W1, rule: RDS-X, scope: {host: a}, justification: j, owner: o}\n", "r.yaml:3: waiver W1: unknown rule ID"},
		{"waiver two scopes", "version: 1\nwaivers:\n  - {id: W1, rule: RDS-LS-001, scope: {host: a, group: b}, justification: j, owner: o}\n", "scope needs exactly one"},
		{"waiver bad date", "version: 1\nwaivers:\n  - {id: W1, rule: RDS-LS-001, scope: {host: a}, justification: j, owner: o, expires: 31.12.2026}\n", "want a date YYYY-MM-DD"},
		{"waiver no owner", "version: 1\nwaivers:\n  - {id: W1, rule: RDS-LS-001, scope: {host: a}, justification: j}\n", "owner is required"},
		{"waiver duplicate", "version: 1\nwaivers:\n  - {id: W1, rule: RDS-LS-001, scope: {host: a}, justification: j, owner: o}\n  - {id: W1, rule: RDS-LS-001, scope: {host: a}, justification: j, owner: o}\n", "r.yaml:4: duplicate waiver id"},
		{"waive the waiver rule", "version: 1\nwaivers:\n  - {id: W1, rule: RDS-WAIVER-001, scope: {subject: x}, justification: j, owner: o}\n", "cannot be waived"},
	}
	wantErrors(t, cases, ParseRuleSet, "r.yaml")
}

func TestSampleRuleSet(t *testing.T) {
	rs, err := LoadRuleSet("../samples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Version != 1 || rs.FailOn != SevHigh || len(rs.Hash) != 64 || len(rs.Waivers) < 2 {
		t.Fatalf("unexpected rule set %+v", rs)
	}
	hosts := []evidence.HostRef{{Name: "RDSH-B05", Group: "farm-b"}, {Name: "WG-01", Group: "branch"}}
	lint := LintWaivers(rs, hosts, sampleClock())
	if len(lint) != 1 || !strings.Contains(lint[0], "W-2026-003: expired on 2026-09-30") {
		t.Errorf("lint %q, want exactly the expired waiver", lint)
	}
}

func TestLintWaivers(t *testing.T) {
	rs, err := ParseRuleSet("r.yaml", []byte(`version: 1
waivers:
  - {id: W1, rule: RDS-LS-001, scope: {glob: "lab-*"}, justification: j, owner: o}
  - {id: W2, rule: RDS-LS-001, scope: {group: farm}, justification: j, owner: o, approver: a, expires: 2027-01-01}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(LintWaivers(rs, []evidence.HostRef{{Name: "RDSH1", Group: "farm"}}, now()), "\n")
	for _, want := range []string{"r.yaml:3: waiver W1: no approver", "waiver W1: no expiry", "waiver W1: scope glob lab-* matches no host"} {
		if !strings.Contains(got, want) {
			t.Errorf("lint output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "W2") {
		t.Errorf("W2 is fine, got:\n%s", got)
	}
}

func TestWaivers(t *testing.T) {
	f := baseFleet()
	delVal(f.host("RDSH1"), evidence.KeyRCM, evidence.ValX509Certificate) // LS-006 fails on RDSH1
	delVal(f.host("RDSH2"), evidence.KeyRCM, evidence.ValX509Certificate) // and RDSH2
	rs, err := ParseRuleSet("r.yaml", []byte(`version: 1
fail_on: medium
waivers:
  - {id: W-ACTIVE, rule: RDS-LS-006, scope: {glob: "rdsh1*"}, justification: j, owner: o, approver: a, expires: 2026-11-01}
  - {id: W-EXPIRED, rule: RDS-LS-006, scope: {group: farm}, justification: j, owner: o, approver: a, expires: 2026-10-31}
`))
	if err != nil {
		t.Fatal(err)
	}
	f.rs = rs
	graceDaysSet("RDSH1", 0)(f)
	graceDaysSet("RDSH2", 0)(f)
	ev := f.evaluate()
	r1 := findResult(t, ev, "RDS-LS-006", "RDSH1")
	if r1.Outcome != Fail || !r1.Waived || r1.WaiverID != "W-ACTIVE" || r1.Status() != StatusWaived {
		t.Errorf("RDSH1: %+v, want a waived failure", r1)
	}
	r2 := findResult(t, ev, "RDS-LS-006", "RDSH2")
	if r2.Outcome != Fail || r2.Waived {
		t.Errorf("RDSH2: waived by an expired waiver")
	}
	if w := findResult(t, ev, WaiverRuleID, "waiver/W-EXPIRED"); w.Outcome != Fail {
		t.Errorf("expired waiver: %s", w.Outcome)
	}
	if w := findResult(t, ev, WaiverRuleID, "waiver/W-ACTIVE"); w.Outcome != Pass {
		t.Errorf("active waiver (last valid day): %s", w.Outcome)
	}
	if ws := ev.Waivers; len(ws) != 2 || ws[0].Applied != 1 || ws[1].Applied != 0 || ws[1].Matched != 2 || !ws[1].Expired {
		t.Errorf("waiver status %+v", ws)
	}
	c := ev.Counts()
	if c.Waived != 1 {
		t.Errorf("counts %+v", c)
	}
	if !ev.Failed() {
		t.Error("unwaived medium failure on RDSH2 must fail a fail_on medium run")
	}
	for _, b := range ev.Blocking() {
		if b.Waived {
			t.Error("waived failure counted as blocking")
		}
	}
}

func TestEntitlementsCSV(t *testing.T) {
	es, err := LoadEntitlements("../samples/entitlements.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 || es[0].CALType != facts.CALPerUser || es[0].VersionID != 7 || es[0].Quantity != 80 ||
		es[0].UnitPrice == nil || *es[0].UnitPrice != 12450 || es[0].Currency != "EUR" || !strings.HasSuffix(es[0].Source, "entitlements.csv:8") {
		t.Fatalf("unexpected ledger %+v", es[0])
	}
	bad := []errorCase{
		{"no header", "", "l.csv: empty ledger"},
		{"unknown column", "cal_type,version,quantity,agreement,price\n", "l.csv:1: unknown column \"price\""},
		{"missing column", "cal_type,version,quantity\n", "l.csv:1: missing column \"agreement\""},
		{"bad type", "cal_type,version,quantity,agreement\nper_seat,2019,1,A\n", "l.csv:2: cal_type \"per_seat\""},
		{"bad version", "cal_type,version,quantity,agreement\nper_user,2020,1,A\n", "l.csv:2: version \"2020\""},
		{"bad quantity", "cal_type,version,quantity,agreement\n# c\nper_user,2019,-1,A\n", "l.csv:3: quantity \"-1\""},
		{"price without currency", "cal_type,version,quantity,agreement,unit_price\nper_user,2019,1,A,1.5\n", "needs a currency"},
		{"bad price", "cal_type,version,quantity,agreement,unit_price,currency\nper_user,2019,1,A,1.505,EUR\n", "bad amount"},
		{"no agreement", "cal_type,version,quantity,agreement\nper_user,2019,1,\n", "agreement is required"},
	}
	wantErrors(t, bad, ParseEntitlementsCSV, "l.csv")
}

func TestEntitlementsYAML(t *testing.T) {
	es, err := ParseEntitlementsYAML("l.yaml", []byte("entitlements:\n  - {cal_type: per_device, version: 2012 R2, quantity: 5, agreement: A, unit_price: 10, currency: usd}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if es[0].VersionID != 4 || es[0].Version != "2012" || *es[0].UnitPrice != 1000 || es[0].Currency != "USD" || es[0].Source != "l.yaml:2" {
		t.Fatalf("%+v", es[0])
	}
	if _, err := ParseEntitlementsYAML("l.yaml", []byte("entitlements:\n  - cal_type: per_user\n    qty: 3\n")); err == nil || !strings.Contains(err.Error(), "l.yaml:3: unknown field \"qty\"") {
		t.Fatalf("error %v", err)
	}
}

func TestPosition(t *testing.T) {
	f := baseFleet()
	f.ent, f.ledger = []Entitlement{ent("per_user", 7, 30, 11250), ent("per_user", 7, 5, 12000)}, true
	f.host("LS01").LicenseServer.Reports = []evidence.LicenseReport{{GeneratedDate: "2026-10-01T00:00:00Z",
		Summary: []evidence.LicenseReportEntry{{ProductVersionID: p64(7), IssuedLicenses: p64(45), TSCALType: p64(1)}}}}
	ev := f.evaluate()
	var row *PositionRow
	for i := range ev.Position {
		if ev.Position[i].CALType == facts.CALPerUser && ev.Position[i].VersionID == 7 {
			row = &ev.Position[i]
		}
	}
	if row == nil {
		t.Fatal("no per_user/2022 row")
	}
	if row.Entitled != 35 || row.Installed != 100 || row.Issued != 40 || row.Used == nil || *row.Used != 45 || row.Shortfall != 10 ||
		*row.UnitPrice != 12000 || *row.EstimatedCost != 120000 || !row.Complete || len(row.Notes) != 1 {
		t.Errorf("row %+v", row)
	}
}

func TestNoHistoryIsNeverPass(t *testing.T) {
	ev := baseFleet().evaluate()
	for _, info := range Rules() {
		if !info.NeedsHistory {
			continue
		}
		for _, r := range ev.Results {
			if r.RuleID == info.ID && r.Outcome == Pass {
				t.Errorf("%s passes on %s without history", r.RuleID, r.Subject.Name)
			}
		}
	}
	_ = time.Now
}
