package history

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// writeReport writes an archived run directory with a report.json of two hosts.
func writeReport(t *testing.T, id string, at time.Time, days int64, results []rules.Result) string {
	t.Helper()
	dir := t.TempDir()
	f := hostFacts("RDSH01", 4, days, at.AddDate(0, 0, -5), "aa")
	row := report.Host{Name: "RDSH01", Group: "rdsh", Status: evidence.StatusCollected, Mode: f.Mode.Effective,
		ModeName: facts.ModeName(f.Mode.Effective), ModeSource: "policy", LicenseServers: []string{"ls01.corp.example"},
		GraceDays: f.Grace.DaysLeft, GraceKeyWritten: f.Grace.KeyWritten, OSBuild: "20348", InstallDate: f.OS.InstallDate}
	rep := &report.Report{Schema: report.Schema,
		Run: report.Run{ID: id, StartedAt: at, FinishedAt: at.Add(time.Hour), ToolVersion: "0.9.0", RuleSetHash: "rs1", ConfigHash: "c1"},
		Coverage: report.Coverage{Targeted: 2, Collected: 1, Failed: 1, ByClass: []report.ClassCount{},
			Hosts: []report.HostStatus{{Name: "RDSH01", Group: "rdsh", Status: evidence.StatusCollected, CollectedAt: at},
				{Name: "RDSH09", Status: evidence.StatusFailed, FailureClass: evidence.FailAuth, Message: "401", CollectedAt: at}}},
		Severities: []report.SeverityCount{}, Results: results, RuleCoverage: []report.RuleCoverage{},
		Hosts:          []report.Host{row, {Name: "RDSH09", Status: evidence.StatusFailed, ModeName: "unknown (not collected)"}},
		LicenseServers: []report.LicenseServer{}, Position: []report.PositionRow{}, IssuedCALs: []report.IssuedCAL{},
		Waivers: []report.Waiver{}, Catalogue: []report.RuleInfo{}, Evidence: []report.EvidenceRef{}}
	var b bytes.Buffer
	if err := (report.JSON{}).Write(ctx, &b, rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestImportBackfill imports two archived monthly reports; the imported history then
// feeds Load (a reset is visible) and Annotate (first-seen carried).
func TestImportBackfill(t *testing.T) {
	s, _ := openTemp(t)
	finding := fail("RDS-GRACE-001", "RDSH01", rules.SevLow, "grace active")
	first := month(0)
	finding.FirstSeen, finding.LastSeen, finding.Lifecycle = &first, &first, rules.StatusNew
	d1 := writeReport(t, "ARCH-1", month(0), 12, []rules.Result{finding, pass("RDS-LS-001", "RDSH01")})
	f2 := fail("RDS-GRACE-001", "RDSH01", rules.SevLow, "grace active") // no first_seen: carried by Record
	d2 := writeReport(t, "ARCH-2", month(1), 118, []rules.Result{f2})
	for _, d := range []string{d1, d2} {
		if _, err := s.Import(ctx, d, ImportOptions{Unverified: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Import(ctx, d1, ImportOptions{Unverified: true}); !errors.Is(err, ErrRunExists) {
		t.Fatalf("re-import: %v", err)
	}
	runs, _ := s.Runs(ctx)
	if len(runs) != 2 || runs[0].Origin != OriginImportUnverified || runs[1].Coverage != (Coverage{2, 1, 1}) || runs[1].ToolVersion != "0.9.0" {
		t.Fatalf("runs %+v", runs)
	}
	h, err := s.Load(ctx, month(2), 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := h.Previous("RDSH01", time.Time{})
	if len(p) != 2 || *p[0].GraceDays != 118 || *p[1].GraceDays != 12 || *p[0].Mode != 4 || p[0].LicenseServers[0] != "ls01.corp.example" {
		t.Fatalf("imported snapshots %+v", p)
	}
	if f := h.Previous("RDSH09", time.Time{}); len(f) != 2 || f[0].Collected {
		t.Fatalf("failed host %+v", f)
	}
	rs := []rules.Result{fail("RDS-GRACE-001", "RDSH01", rules.SevLow, "grace active")}
	if _, err := s.Annotate(ctx, rs, month(2)); err != nil {
		t.Fatal(err)
	}
	if rs[0].Lifecycle != rules.StatusPersisting || !rs[0].FirstSeen.Equal(month(0)) {
		t.Fatalf("after import: %s first seen %v", rs[0].Lifecycle, rs[0].FirstSeen)
	}
	if tl, err := s.Timeline(ctx, "RDSH09"); err != nil || len(tl) == 0 || tl[0].Host.Status != "failed" {
		t.Fatalf("timeline of RDSH09: %v %+v", err, tl)
	}
	if _, err := s.Import(ctx, t.TempDir(), ImportOptions{Unverified: true}); err == nil || !strings.Contains(err.Error(), "report.json") {
		t.Fatalf("missing report: %v", err)
	}
}
