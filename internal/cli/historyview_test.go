package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

func i64p(v int64) *int64 { return &v }

// The history commands render the store's views as tables.
func TestHistoryViews(t *testing.T) {
	feb := time.Date(2026, 2, 5, 2, 0, 0, 0, time.UTC)
	jan := feb.AddDate(0, -1, 0)
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	if err := printRuns(&out, "/x/history.db", nil); err != nil || out.String() != "no runs recorded in /x/history.db\n" {
		t.Fatalf("no runs: %v %q", err, out.String())
	}
	out.Reset()
	runs := []history.RunInfo{
		{ID: "2026-01-R1", Started: jan, Origin: "run", Coverage: history.Coverage{Targeted: 2, Collected: 1, Failed: 1},
			BySeverity: map[rules.Severity]int{rules.SevMedium: 1}},
		{ID: "2026-02-R2", Started: feb, Origin: "run", Coverage: history.Coverage{Targeted: 2, Collected: 1, Failed: 1},
			BySeverity: map[rules.Severity]int{rules.SevCritical: 1, rules.SevMedium: 1}, Errors: 1},
		// A backfill made in March, evaluated as of the first of December.
		{ID: "2026-03-R3", Started: feb.AddDate(0, 1, 0), EvaluatedAt: dec, Pinned: true, Origin: "import",
			Window:     &report.Window{Earliest: dec.Add(-3 * time.Hour), Latest: dec.Add(-2 * time.Hour)},
			Coverage:   history.Coverage{Targeted: 2, Collected: 2},
			BySeverity: map[rules.Severity]int{}},
	}
	if err := printRuns(&out, "", runs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "CRITICAL") || !strings.Contains(lines[0], "EVALUATED (UTC)") ||
		strings.Join(strings.Fields(lines[2]), " ") != "2026-02-R2 2026-02-05 02:00 no 2026-02-05 02:00 - run 2 1 1 1 0 1 0 0 1 0" ||
		strings.Join(strings.Fields(lines[3]), " ") != "2026-03-R3 2026-12-01 00:00 as-of 2026-03-05 02:00 2026-11-30 21:00..22:00 import 2 2 0 0 0 0 0 0 0 0" {
		t.Fatalf("history list:\n%s", out.String())
	}

	out.Reset()
	written := feb.AddDate(0, 0, -3)
	tl := []history.TimelineEntry{
		{RunID: "2026-01-R1", At: jan, InRun: true, Host: history.HostRecord{Name: "RDSH01", Status: "collected",
			Snapshot: rules.HostSnapshot{Collected: true, Mode: i64p(4), ModeSource: "policy", GraceDays: i64p(12)}}},
		{RunID: "2026-02-R2", At: feb, InRun: true, Host: history.HostRecord{Name: "RDSH01", Status: "collected",
			Snapshot: rules.HostSnapshot{Collected: true, Mode: i64p(2), ModeSource: "policy", GraceDays: i64p(118), GraceKeyWritten: &written}},
			Findings: []rules.Result{
				{RuleID: "RDS-GRACE-003", Severity: rules.SevCritical, Outcome: rules.Fail, Lifecycle: rules.StatusNew},
				{RuleID: "RDS-GRACE-001", Severity: rules.SevMedium, Outcome: rules.Fail, Lifecycle: rules.StatusPersisting},
			}},
		{RunID: "2026-03-R3", At: feb.AddDate(0, 1, 0), Host: history.HostRecord{Name: "RDSH01"}},
	}
	if err := printTimeline(&out, "RDSH01", tl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"host RDSH01: 3 runs", "Per User (4)", "Per Device (2)", " 12 ", " 118 ", "2026-02-02 02:00:00",
		"RDS-GRACE-003(critical,new)", "RDS-GRACE-001(medium,persisting)", "not targeted"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	d := &history.RunDiff{A: runs[0], B: runs[1],
		New:         []rules.Result{{ID: "f1", RuleID: "RDS-GRACE-003", Severity: rules.SevCritical}},
		HostChanges: []history.FactChange{{Host: "RDSH01", Field: "grace_days", A: "12", B: "118"}, {Host: "RDSH01", Field: "os_build", A: "", B: "17763"}},
	}
	if err := printDiff(&out, d); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"diff 2026-01-R1 (2026-01-05) -> 2026-02-R2 (2026-02-05)", "new findings (1)", "RDS-GRACE-003",
		"resolved findings (0)", "host fact changes (2)", "grace_days 12 -> 118", "os_build - -> 17763", "hosts removed (0)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
}
