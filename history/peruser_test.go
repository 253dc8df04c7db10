package history

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// perUserDump is the store's Per User counts, one line per run and version, in the
// order PerUserCounts returns them.
func perUserDump(t *testing.T, s *Store) string {
	t.Helper()
	got, err := s.PerUserCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range got {
		fmt.Fprintf(&b, "%s %s %d/%d/%d %v;", c.RunID, c.Version, c.Active, c.Expired, c.Unknown, c.Complete)
	}
	return b.String()
}

// A run's Per User counts are recorded with it, in its transaction, and deleted with it
// by retention in the transaction of the run that prunes it.
func TestPerUserCountsPerRun(t *testing.T) {
	s, _ := openTemp(t)
	jan := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
	feb := jan.AddDate(0, 1, 0)
	mar := feb.AddDate(0, 1, 0)
	if err := s.Record(ctx, RunRecord{ID: "r1", Started: jan, Ended: jan, PerUser: []PerUserCount{
		{Version: "unknown version (7)", Active: 3, Complete: true}, {Version: "2012", VersionID: 4, Active: 10, Expired: 2, Complete: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, RunRecord{ID: "r2", Started: feb, Ended: feb, PerUser: []PerUserCount{{Version: "2012", VersionID: 4, Active: 14, Expired: 1, Unknown: 2}}}); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, s, "r0", jan.Add(-time.Hour), nil, nil) // no directory: no counts
	got, err := s.PerUserCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].Started.Equal(jan) || !got[0].EvaluatedAt.Equal(jan) || !got[2].EvaluatedAt.Equal(feb) {
		t.Fatalf("counts %+v", got)
	}
	if d, want := perUserDump(t, s), "r1 2012 10/2/0 true;r1 unknown version (7) 3/0/0 true;r2 2012 14/1/2 false;"; d != want {
		t.Fatalf("counts %s, want %s", d, want)
	}

	// A run whose counts cannot be written is not recorded at all.
	err = s.Record(ctx, RunRecord{ID: "bad", Started: mar, PerUser: []PerUserCount{{Version: "2012", Active: 1}, {Version: "2012", Active: 2}}})
	if err == nil {
		t.Fatal("run with a version counted twice recorded")
	}
	if ids := runIDs(t, s); ids != "r0 r1 r2" {
		t.Fatalf("runs after a failed record: %s", ids)
	}

	// Retention removes r0 and r1 with the next run, in its transaction; their counts go with them.
	if err := s.Record(ctx, RunRecord{ID: "r3", Started: mar, Ended: mar, Retention: Retention{KeepRuns: 2},
		PerUser: []PerUserCount{{Version: "2012", VersionID: 4, Active: 15, Complete: true}}}); err != nil {
		t.Fatal(err)
	}
	if d, want := perUserDump(t, s), "r2 2012 14/1/2 false;r3 2012 15/0/0 true;"; d != want {
		t.Fatalf("after retention %s, want %s", d, want)
	}
	// So does Prune.
	if n, err := s.Prune(ctx, 1, 0, mar); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	var rows int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM per_user_counts WHERE run_id <> 'r3'").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("rows of pruned runs left: %d %v", rows, err)
	}

	if PerUserOf(nil) != nil {
		t.Error("counts without a directory")
	}
}

// The counts follow the timeline of evaluation times: a backfill (run --as-of --record)
// made after a run but evaluated before it comes first.
func TestPerUserCountsInEvaluationOrder(t *testing.T) {
	s, _ := openTemp(t)
	made := month(6)
	if err := s.Record(ctx, RunRecord{ID: "JUL", Started: made, PerUser: []PerUserCount{{Version: "2019", VersionID: 5, Active: 70}}}); err != nil {
		t.Fatal(err)
	}
	// Made an hour later, evaluated as of March; its ID sorts after JUL's too.
	if err := s.Record(ctx, RunRecord{ID: "ZMAR", Started: made.Add(time.Hour), EvaluatedAt: month(2), Pinned: true,
		PerUser: []PerUserCount{{Version: "2019", VersionID: 5, Active: 30}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PerUserCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].RunID != "ZMAR" || got[1].RunID != "JUL" ||
		!got[0].EvaluatedAt.Equal(month(2)) || !got[0].Started.Equal(made.Add(time.Hour)) {
		t.Fatalf("counts %+v, want ZMAR (evaluated March) before JUL", got)
	}
	if ids := runIDs(t, s); ids != "ZMAR JUL" {
		t.Fatalf("runs %s: the counts' order must be the runs'", ids)
	}
}

// A store of schema 2 whose per_user_counts table was created on first use (before the
// table had a migration) is upgraded in place: counts of recorded runs kept, those of
// runs retention had removed dropped, and from then on counts go with their run.
func TestMigratePerUserFirstUseTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations()[0],
		migrations()[1],
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '2026-01-01T00:00:00.000000000Z'), (2, '2026-02-01T00:00:00.000000000Z')`,
		`PRAGMA user_version = 2`,
		// The table as the first-use code created it.
		`CREATE TABLE IF NOT EXISTS per_user_counts (
			run_id     TEXT NOT NULL,
			started_at TEXT NOT NULL,
			version    TEXT NOT NULL,
			version_id INTEGER NOT NULL DEFAULT 0,
			active     INTEGER NOT NULL,
			expired    INTEGER NOT NULL,
			unknown    INTEGER NOT NULL,
			complete   INTEGER NOT NULL,
			PRIMARY KEY (run_id, version)
		)`,
		`INSERT INTO runs(run_id, started_at, recorded_at, evaluated_at) VALUES
			('R1', '` + ts(month(0)) + `', '` + ts(month(0)) + `', '` + ts(month(0)) + `'),
			('R2', '` + ts(month(1)) + `', '` + ts(month(1)) + `', '` + ts(month(1)) + `')`,
		`INSERT INTO per_user_counts VALUES
			('GONE', '` + ts(month(0)) + `', '2019', 5, 1, 0, 0, 1),
			('R1', '` + ts(month(0)) + `', '2019', 5, 10, 1, 0, 1),
			('R2', '` + ts(month(1)) + `', '2019', 5, 12, 0, 3, 0),
			('R2', '` + ts(month(1)) + `', '2022', 6, 4, 0, 0, 0)`,
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
	var v int
	s.db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != SchemaVersion() || v < 3 {
		t.Fatalf("user_version %d", v)
	}
	if d, want := perUserDump(t, s), "R1 2019 10/1/0 true;R2 2019 12/0/3 false;R2 2022 4/0/0 false;"; d != want {
		t.Fatalf("migrated counts %s, want %s", d, want)
	}
	var n int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM pragma_table_info('per_user_counts') WHERE name = 'started_at'").Scan(&n); err != nil || n != 0 {
		t.Errorf("started_at still stored (%d, %v)", n, err)
	}
	if err := s.Record(ctx, RunRecord{ID: "R3", Started: month(2), Retention: Retention{KeepRuns: 1},
		PerUser: []PerUserCount{{Version: "2019", VersionID: 5, Active: 13, Complete: true}}}); err != nil {
		t.Fatal(err)
	}
	if d, want := perUserDump(t, s), "R3 2019 13/0/0 true;"; d != want {
		t.Fatalf("after retention %s, want %s", d, want)
	}
	if err := s.db.QueryRow("SELECT COUNT(*) FROM per_user_counts").Scan(&n); err != nil || n != 1 {
		t.Errorf("rows %d (%v), want R3's only", n, err)
	}
}
