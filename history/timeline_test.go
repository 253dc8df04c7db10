package history

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// backfill records a run made at made (wall clock), evaluated as of month(i), the way
// `run --as-of --record` does: annotated against the store as of its evaluation time.
func backfill(t testing.TB, s *Store, id string, i int, made time.Time, days int64, results []rules.Result) {
	t.Helper()
	at := month(i)
	if _, err := s.Annotate(ctx, results, at); err != nil {
		t.Fatal(err)
	}
	f := hostFacts("H", 4, days, month(0), "x")
	f.CollectedAt = at.Add(-2 * time.Hour)
	rec := RunRecord{ID: id, Started: made, EvaluatedAt: at, Pinned: true, Results: results,
		Window: &report.Window{Earliest: f.CollectedAt, Latest: f.CollectedAt},
		Hosts:  []HostRecord{HostOf(id, at, f)}}
	if err := s.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// A store written by rdsaudit before the timeline of evaluation times (schema 1) is
// upgraded in place, in the migration's transaction: existing runs are evaluated at
// their start, not pinned, and keep their hosts and findings.
func TestMigrateSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations()[0],
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '2026-01-01T00:00:00.000000000Z')`,
		`PRAGMA user_version = 1`,
		`INSERT INTO runs(run_id, started_at, recorded_at) VALUES ('R1', '` + ts(month(0)) + `', '` + ts(month(0)) + `'),
			('R2', '` + ts(month(1)) + `', '` + ts(month(1)) + `')`,
		`INSERT INTO hosts(run_id, host, name, collected, grace_days) VALUES ('R1', 'h', 'H', 1, 50), ('R2', 'h', 'H', 1, 90)`,
		`INSERT INTO findings(run_id, finding_id, rule_id, subject_kind, subject_name, subject_key, severity, outcome, status,
			first_seen, last_seen) VALUES ('R2', 'F1', 'RDS-GRACE-003', 'host', 'H', 'h', 3, 'fail', 'new', '` + ts(month(1)) + `', '` + ts(month(1)) + `')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("runs %+v", runs)
	}
	for i, r := range runs {
		if !r.EvaluatedAt.Equal(month(i)) || r.Pinned || r.Window != nil {
			t.Errorf("migrated run %s: evaluated %v pinned %v window %v, want its start %v, not pinned, no window", r.ID, r.EvaluatedAt, r.Pinned, r.Window, month(i))
		}
	}
	hist, err := s.Load(ctx, month(2), 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := hist.Previous("H", time.Time{})
	if len(prev) != 1 || prev[0].RunID != "R2" || prev[0].CollectedAt != nil || !prev[0].EvidenceTime().Equal(month(1)) {
		t.Fatalf("previous after migration %+v", prev)
	}
	if fs, err := s.Findings(ctx, "R2"); err != nil || len(fs) != 1 || fs[0].ID != "F1" {
		t.Fatalf("findings after migration %+v %v", fs, err)
	}
	var v int
	s.db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != SchemaVersion() {
		t.Fatalf("user_version %d", v)
	}
	if c, err := s.PerUserCounts(ctx); err != nil || len(c) != 0 {
		t.Fatalf("per-user counts after migration %+v %v", c, err)
	}
}

// Runs are ordered, loaded and annotated by evaluation time, not by when they were
// made: backfills made on one day, newest month first, form the months' timeline.
func TestTimelineOfEvaluationTimes(t *testing.T) {
	s, _ := openTemp(t)
	made := month(6) // every backfill made in July, the older months later in the day
	res := func() []rules.Result { return []rules.Result{fail("RDS-MODE-001", "H", rules.SevHigh, "x")} }
	backfill(t, s, "B3", 3, made, 30, res())
	backfill(t, s, "B2", 2, made.Add(time.Hour), 60, res())
	if got := runIDs(t, s); got != "B2 B3" {
		t.Fatalf("runs %s, want evaluation order B2 B3", got)
	}
	runs, _ := s.Runs(ctx)
	if !runs[0].EvaluatedAt.Equal(month(2)) || !runs[0].Pinned || runs[0].Window == nil || !runs[0].Started.Equal(made.Add(time.Hour)) {
		t.Fatalf("run %+v", runs[0])
	}
	// As of month 3 the previous run is B2 (evaluated month 2), though B2 was made after B3.
	hist, err := s.Load(ctx, month(3), 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := hist.Previous("H", time.Time{})
	if len(prev) != 1 || prev[0].RunID != "B2" || *prev[0].GraceDays != 60 || !prev[0].EvidenceTime().Equal(month(2).Add(-2*time.Hour)) {
		t.Fatalf("previous as of month 3: %+v", prev)
	}
	d, err := s.Annotate(ctx, res(), month(4))
	if err != nil || d.PreviousRunID != "B3" {
		t.Fatalf("annotate as of month 4: previous %q (%v), want B3", d.PreviousRunID, err)
	}
	// B3's finding, recorded before B2 existed, was relinked: persisting since month 2.
	fs, _ := s.Findings(ctx, "B3")
	if len(fs) != 1 || fs[0].Status() != rules.StatusPersisting || !fs[0].FirstSeen.Equal(month(2)) {
		t.Fatalf("B3 findings after B2 was recorded: %+v", fs)
	}
	// Retention counts by evaluation time and never prunes the run just recorded.
	s.now = func() time.Time { return made }
	backfill(t, s, "B1", 1, made.Add(2*time.Hour), 90, nil)
	rec := RunRecord{ID: "B0", Started: made.Add(3 * time.Hour), EvaluatedAt: month(0), Pinned: true, Retention: Retention{KeepRuns: 2}}
	if err := s.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got := runIDs(t, s); got != "B0 B2 B3" {
		t.Fatalf("after retention of 2 runs: %s, want the two latest evaluated and the run just recorded", got)
	}
}

// Recording months out of order gives the same findings' first-seen and status as in
// order, and so the same resolved findings between consecutive runs; the recomputation
// is part of the run's transaction.
func TestOutOfOrderRecordRelinks(t *testing.T) {
	// Finding A in every month, B in months 1 and 3 (resolved in 2), C only in month 2.
	results := func(i int) []rules.Result {
		r := []rules.Result{fail("RDS-MODE-001", "H", rules.SevHigh, "a")}
		if i != 2 {
			r = append(r, fail("RDS-GRACE-001", "H", rules.SevLow, "b"))
		}
		if i == 2 {
			r = append(r, fail("RDS-GRACE-005", "H", rules.SevMedium, "c"))
		}
		return r
	}
	// record imports each month as a report without history: first-seen its own month.
	// Unverified imports (ImportOptions.Unverified) relink themselves as verified ones do.
	origin := OriginImport
	record := func(s *Store, i int) {
		rs := results(i)
		for j := range rs {
			at := month(i)
			rs[j].FirstSeen, rs[j].LastSeen, rs[j].Lifecycle = &at, &at, rules.StatusNew
		}
		f := hostFacts("H", 4, 50, month(0), "x")
		rec := RunRecord{ID: fmt.Sprintf("M%d", i), Started: month(7).Add(-time.Duration(i) * time.Hour), EvaluatedAt: month(i),
			Origin: origin, Results: rs, Hosts: []HostRecord{HostOf("x", month(i), f)}}
		rec.Hosts[0].Snapshot.RunID = rec.ID
		if err := s.Record(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	dump := func(s *Store) string {
		var b strings.Builder
		runs, _ := s.Runs(ctx)
		for _, r := range runs {
			fs, err := s.Findings(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				fmt.Fprintf(&b, "%s %s %s %s\n", r.ID, f.RuleID, f.Status(), f.FirstSeen.Format("2006-01"))
			}
		}
		return b.String()
	}
	inOrder, _ := openTemp(t)
	for i := 1; i <= 4; i++ {
		record(inOrder, i)
	}
	want := dump(inOrder)
	for _, line := range []string{
		"M4 RDS-MODE-001 persisting 2026-02", // A since month 1
		"M3 RDS-GRACE-001 new 2026-04",       // B back in month 3 after being resolved: new again
		"M4 RDS-GRACE-001 persisting 2026-04",
		"M2 RDS-GRACE-005 new 2026-03",
	} {
		if !strings.Contains(want, line+"\n") {
			t.Errorf("in order: no %q in\n%s", line, want)
		}
	}
	for _, o := range []string{OriginImport, OriginImportUnverified} {
		origin = o
		for _, order := range [][]int{{1, 2, 3, 4}, {4, 3, 2, 1}, {2, 4, 1, 3}, {3, 1, 4, 2}} {
			s, _ := openTemp(t)
			for _, i := range order {
				record(s, i)
			}
			if got := dump(s); got != want {
				t.Errorf("%s, order %v:\n%s\nwant (verified, in order):\n%s", o, order, got, want)
			}
		}
	}
}

// Import places a run at the evaluation time its report states; a report written
// before evaluated_at existed lands at its start.
func TestImportPlacesRunAtEvaluationTime(t *testing.T) {
	s, _ := openTemp(t)
	old := writeReport(t, "OLD", month(3), 50, nil) // no evaluated_at: evaluated at its start
	pin := writeReport(t, "PIN", month(6), 90, nil)
	rewriteReport(t, pin, func(r *report.Report) {
		r.Run.EvaluatedAt, r.Run.Pinned = month(1), true
		r.Run.CollectionWindow = &report.Window{Earliest: month(1).Add(-3 * time.Hour), Latest: month(1).Add(-2 * time.Hour)}
		r.Coverage.Hosts[0].CollectedAt = month(1).Add(-2 * time.Hour)
	})
	for _, d := range []string{old, pin} {
		if _, err := s.Import(ctx, d, ImportOptions{Unverified: true}); err != nil { // unsigned test reports
			t.Fatal(err)
		}
	}
	runs, err := s.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != "PIN" || !runs[0].EvaluatedAt.Equal(month(1)) || !runs[0].Pinned ||
		runs[0].Window == nil || !runs[0].Window.Latest.Equal(month(1).Add(-2*time.Hour)) ||
		runs[1].ID != "OLD" || !runs[1].EvaluatedAt.Equal(month(3)) || runs[1].Pinned {
		t.Fatalf("runs %+v", runs)
	}
	hist, err := s.Load(ctx, month(2), 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := hist.Previous("RDSH01", time.Time{})
	if len(prev) != 1 || prev[0].RunID != "PIN" || prev[0].CollectedAt == nil || !prev[0].CollectedAt.Equal(month(1).Add(-2*time.Hour)) {
		t.Fatalf("previous as of month 2: %+v", prev)
	}
}

// rewriteReport changes a run directory's report.json.
func rewriteReport(t *testing.T, dir string, change func(*report.Report)) {
	t.Helper()
	p := filepath.Join(dir, "report.json")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := report.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	change(rep)
	var b bytes.Buffer
	if err := (report.JSON{}).Write(ctx, &b, rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
