package report

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/rdsaudit/rdsaudit/samples"
)

// sampleClock is the demo fleet's fixed clock (samples/README.md).
func sampleClock() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }

// sampleReport evaluates samples/fleet with samples/rules.yaml and
// samples/entitlements.csv (as rules/sample_test.go does) and builds the report.
func sampleReport(t *testing.T) (*Report, []*evidence.Evidence) {
	t.Helper()
	dir := filepath.Join("..", "samples")
	evs, err := samples.Evidence(dir, sampleClock())
	if err != nil {
		t.Fatal(err)
	}
	var fs []*facts.Facts
	for _, ev := range evs {
		fs = append(fs, facts.Interpret(ev))
	}
	rs, err := rules.LoadRuleSet(filepath.Join(dir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := rules.LoadEntitlements(filepath.Join(dir, "entitlements.csv"))
	if err != nil {
		t.Fatal(err)
	}
	pu := &PerUser{Summary: samples.Directory(dir, sampleClock()), Evidence: []EvidenceRef{}}
	eval := rules.Evaluate(rules.Input{Now: sampleClock(), Hosts: fs, RuleSet: rs, Entitlements: ents, Ledger: true, PerUser: pu.Summary})
	r := Build(BuildInput{
		Run: RunInfo{ID: "20261101T000000Z-demo", StartedAt: sampleClock(), FinishedAt: sampleClock().Add(42 * time.Second),
			ToolVersion: "test", ConfigHash: "sha256:demo", Collector: "snapshot"},
		Evidence: evs, Facts: fs, Evaluation: FromEvaluation(eval, rules.Rules()), PerUser: pu,
	})
	return r, evs
}

func TestSampleFleetJSON(t *testing.T) {
	r, _ := sampleReport(t)
	got := writeJSON(t, r) // validates against the schema
	path := filepath.Join("testdata", "sample.golden.json")
	want := golden(t, path, got)
	if !reflect.DeepEqual(semantic(t, got), semantic(t, want)) {
		t.Errorf("sample report.json differs from %s (if intended: -update and review the diff)", path)
	}
}

func TestSampleFleetWorkbook(t *testing.T) {
	r, evs := sampleReport(t)
	f := openXLSX(t, writeXLSX(t, r))
	sessionHosts := 0
	for _, ev := range evs {
		if ev.Host.HasRole(evidence.RoleSessionHost) || len(ev.Host.Roles) == 0 {
			sessionHosts++
		}
	}
	packs := 0
	for _, ls := range r.LicenseServers {
		packs += max(1, len(ls.KeyPacks))
	}
	want := map[string]struct {
		header []string
		rows   int
	}{
		SheetFindings:       {FindingsHeader(), len(r.Findings())},
		SheetHosts:          {HostsHeader(), sessionHosts},
		SheetLicenseServers: {LicenseServersHeader(), packs},
		SheetPosition:       {PositionHeader(), len(r.Position) + 2}, // a total per CAL type
		SheetIssued:         {IssuedHeader(), len(r.IssuedCALs)},
		SheetDrift:          {DriftHeader(), 1},
		SheetWaivers:        {WaiversHeader(), len(r.Waivers)},
		SheetCoverage:       {CoverageHeader(), len(evs)},
	}
	// Per User CALs: the counts table from the sample directory evidence.
	pu := rows(t, f, SheetPerUser)
	if !reflect.DeepEqual(pu[0], PerUserHeader()) || len(pu) < len(r.PerUser.Rows)+1 {
		t.Errorf("%s: header %v, %d rows", SheetPerUser, pu[0], len(pu))
	}
	for i, pr := range r.PerUser.Rows {
		if got := pu[i+1]; got[0] != pr.Domain || got[2] != pr.RawVersion || got[3] != pr.LicenseServer || got[5] != fmt.Sprint(pr.Users) {
			t.Errorf("%s row %d: %v, want %+v", SheetPerUser, i+2, got, pr)
		}
	}
	find(t, f, SheetPerUser, "user005") // a disabled holder, a reclaim candidate
	for sheet, w := range want {
		rs := rows(t, f, sheet)
		if !reflect.DeepEqual(rs[0], w.header) || len(rs)-1 != w.rows {
			t.Errorf("%s: header %v, %d rows; want %d", sheet, rs[0], len(rs)-1, w.rows)
		}
	}
	if len(r.Findings()) < 20 || len(r.IssuedCALs) < 65 || len(r.Position) == 0 || len(r.Waivers) < 2 {
		t.Errorf("sample fleet too small: %d findings, %d issued, %d position, %d waivers",
			len(r.Findings()), len(r.IssuedCALs), len(r.Position), len(r.Waivers))
	}
	// Key cells from samples/README.md.
	a05 := find(t, f, SheetHosts, "RDSH-A05")[1:]
	if got := cell(t, f, SheetHosts, "O"+a05); got != "140" {
		t.Errorf("RDSH-A05 grace days %q", got)
	}
	if got := cell(t, f, SheetHosts, "Q"+a05); got != "2026-10-28 03:15:07" {
		t.Errorf("RDSH-A05 GracePeriod written %q", got)
	}
	ls02 := find(t, f, SheetLicenseServers, "LS02")[1:]
	if got := cell(t, f, SheetLicenseServers, "C"+ls02); !strings.HasPrefix(got, "not activated") {
		t.Errorf("LS02 activation %q", got)
	}
	b09 := find(t, f, SheetCoverage, "RDSH-B09")[1:]
	if got := cell(t, f, SheetCoverage, "E"+b09); got != "no_evidence" {
		t.Errorf("RDSH-B09 failure class %q", got)
	}
	old := find(t, f, SheetCoverage, "OLD-2008R2")[1:]
	if got := cell(t, f, SheetCoverage, "E"+old); got != "unsupported_os" {
		t.Errorf("OLD-2008R2 failure class %q", got)
	}
	statuses := map[string]bool{}
	for _, row := range rows(t, f, SheetFindings)[1:] {
		statuses[row[3]] = true
	}
	if !statuses["waived"] || !statuses["new"] {
		t.Errorf("finding statuses %v, want waived and new", statuses)
	}
	for _, rule := range []string{"RDS-GRACE-001", "RDS-MODE-001", "RDS-LS-005", "RDS-COLLECT-001"} {
		find(t, f, SheetFindings, rule)
	}
}

func TestSampleFleetPublishVerify(t *testing.T) {
	r, evs := sampleReport(t)
	dir, err := Publish(context.Background(), t.TempDir(), r, evs, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, nil); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "evidence", "*.json"))
	if len(files) != len(evs) {
		t.Errorf("%d evidence files, want %d", len(files), len(evs))
	}
}
