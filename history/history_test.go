package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

var (
	ctx  = context.Background()
	jan1 = time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)
)

// month returns the start of the i-th monthly run (0-based).
func month(i int) time.Time { return jan1.AddDate(0, i, 0) }

func i64(v int64) *int64 { return &v }

func tp(t time.Time) *time.Time { return &t }

// hostFacts builds a collected session host's facts.
func hostFacts(name string, mode int64, days int64, keyWritten time.Time, tbHash string) *facts.Facts {
	yes := true
	f := &facts.Facts{Host: evidence.HostRef{Name: name, Group: "rdsh", Roles: []string{evidence.RoleSessionHost}},
		Status: evidence.StatusCollected, AppServer: &yes}
	f.Mode = facts.ModeFacts{Known: true, Policy: i64(mode), Effective: i64(mode), EffectiveSource: facts.SourcePolicy}
	f.LicenseServers = facts.LSFacts{Known: true, Effective: []string{"ls01.corp.example"}, Source: facts.SourcePolicy}
	f.Grace = facts.GraceFacts{DaysLeft: i64(days), MethodCalled: true, KeyKnown: true, KeyExists: true,
		KeyWritten: tp(keyWritten), Timebomb: &evidence.RegValue{Name: evidence.ValTimebomb, SHA256: tbHash}}
	inst := time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC)
	f.OS = facts.OSFacts{Known: true, Build: "20348", Version: "10.0.20348", Release: "2022", InstallDate: &inst}
	return f
}

func failed(name string) *facts.Facts {
	return &facts.Facts{Host: evidence.HostRef{Name: name}, Status: evidence.StatusFailed,
		Failure: &evidence.Failure{Class: evidence.FailConnect, Message: "connection refused"}}
}

func fail(rule, host string, sev rules.Severity, msg string) rules.Result {
	s := rules.Subject{Kind: rules.SubjectHost, Name: host, Group: "rdsh"}
	return rules.Result{ID: rules.FindingID(rule, s, ""), RuleID: rule, Severity: sev, Outcome: rules.Fail, Subject: s, Message: msg}
}

func pass(rule, host string) rules.Result {
	r := fail(rule, host, rules.SevInfo, "ok")
	r.Outcome = rules.Pass
	return r
}

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// runPipeline does what the pipeline does around the rules: load, annotate, record.
func runPipeline(t testing.TB, s *Store, id string, at time.Time, hosts []*facts.Facts, results []rules.Result) *rules.Drift {
	t.Helper()
	d, err := s.Annotate(ctx, results, at)
	if err != nil {
		t.Fatal(err)
	}
	rec := RunRecord{ID: id, Started: at, Ended: at.Add(time.Hour), ToolVersion: "test", RuleSetHash: "rs", ConfigHash: "cfg", Results: results}
	for _, f := range hosts {
		rec.Hosts = append(rec.Hosts, HostOf(id, at, f))
		rec.Coverage.Targeted++
		if f.Collected() {
			rec.Coverage.Collected++
		} else {
			rec.Coverage.Failed++
		}
	}
	if err := s.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenCreatesSchema(t *testing.T) {
	s, path := openTemp(t)
	var v, uv int
	var mode string
	if err := s.db.QueryRow("SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&uv); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion() || uv != SchemaVersion() || mode != "wal" {
		t.Fatalf("version %d user_version %d journal_mode %s, want %d %d wal", v, uv, mode, SchemaVersion(), SchemaVersion())
	}
	s.Close()
	// Reopening applies nothing and keeps the data.
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var n int
	s2.db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n)
	if n != SchemaVersion() {
		t.Fatalf("%d migration rows after reopen", n)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.db.Exec("INSERT INTO schema_migrations(version, applied_at) VALUES (99, 'x')"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, path)
	if !errors.Is(err, ErrTooNew) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrTooNew naming %s", err, path)
	}
}

// bigRun is a synthetic run of n hosts with two findings each (and passes).
func bigRun(id string, at time.Time, n int) RunRecord {
	rec := RunRecord{ID: id, Started: at, Ended: at.Add(2 * time.Hour), ToolVersion: "bench", RuleSetHash: "rs", ConfigHash: "cfg",
		Coverage: Coverage{Targeted: n, Collected: n}}
	rec.Hosts = make([]HostRecord, 0, n)
	rec.Results = make([]rules.Result, 0, 4*n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rdsh%05d.corp.example", i)
		f := hostFacts(name, 4, int64(10+i%100), at.Add(-time.Duration(i%50)*24*time.Hour), fmt.Sprintf("%064x", i))
		rec.Hosts = append(rec.Hosts, HostOf(id, at, f))
		rec.Results = append(rec.Results,
			fail("RDS-MODE-001", name, rules.SevHigh, "licensing mode not configured"),
			fail("RDS-GRACE-001", name, rules.SevMedium, "grace period active"),
			pass("RDS-LS-001", name), pass("RDS-LS-002", name))
	}
	rec.PerUser = []PerUserCount{{Version: "2019", VersionID: 5, Active: n, Expired: n / 10, Complete: true},
		{Version: "2022", VersionID: 6, Active: n / 2, Complete: true}}
	return rec
}

func TestCorruptionIsAnError(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := Open(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, bigRun("R1", month(0), 2000)); err != nil {
		t.Fatal(err)
	}
	s.Close() // the last connection checkpoints the WAL into the file
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 64<<10 {
		t.Fatalf("database only %d bytes; WAL not checkpointed?", len(data))
	}

	cases := map[string][]byte{
		"truncated-half":    data[:len(data)/2],
		"truncated-3q":      data[:len(data)*3/4],
		"truncated-page":    data[:len(data)-4096],
		"garbage":           bytes.Repeat([]byte("not a database, just garbage "), 1000),
		"header-only":       data[:100],
		"zeroed-middle":     zeroed(data, len(data)/3, 8192),
		"garbage-in-header": append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xA5}, 8192)...),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".db")
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, path)
			if err == nil {
				// It must not look like an empty (or partial) history.
				runs, lerr := s.Runs(ctx)
				s.Close()
				t.Fatalf("Open succeeded on a %s file (runs %d, err %v)", name, len(runs), lerr)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("err %q does not name the file", err)
			}
			t.Log(err)
		})
	}

	t.Run("foreign-sqlite", func(t *testing.T) {
		path := filepath.Join(dir, "foreign.db")
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		s.db.Exec("DROP TABLE schema_migrations")
		s.db.Exec("DROP TABLE findings")
		s.Close()
		_, err = Open(ctx, path)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not an rdsaudit history") {
			t.Fatalf("err = %v", err)
		}
	})
	// The intact original still opens with its run.
	s, err = Open(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if runs, _ := s.Runs(ctx); len(runs) != 1 {
		t.Fatalf("good store has %d runs", len(runs))
	}
}

// TestOpenUnfinishedFirstStore: a store file that is empty (0 bytes) never finished its
// first transaction (issue 14, defect 2: a first run killed while SQLite created the store
// left 0 bytes beside a 512-byte -journal, and every later run said "store is corrupt").
// It is no damage: Open creates the store in it, and the history is empty and works.
// (An empty file beside a journal left by SQLite itself is TestKillFirstTransaction.)
func TestOpenUnfinishedFirstStore(t *testing.T) {
	hdr := make([]byte, 512) // a rollback-journal header sector: magic, nRec 0, orig size 0
	copy(hdr, "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7")
	cases := map[string]map[string][]byte{
		"empty":                 {"": {}},
		"empty-journal-header":  {"": {}, "-journal": hdr},
		"empty-journal-zeroed":  {"": {}, "-journal": make([]byte, 512)},
		"empty-journal-0-bytes": {"": {}, "-journal": {}},
		"empty-wal-0-bytes":     {"": {}, "-wal": {}},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "history.db")
			for suffix, content := range files {
				if err := os.WriteFile(path+suffix, content, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			checkFreshStore(t, path)
		})
	}
}

// checkFreshStore opens path, which must give an empty history that records and reads
// a run, and that reopens with that run.
func checkFreshStore(t *testing.T, path string) {
	t.Helper()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open an unfinished first store: %v", err)
	}
	runs, err := s.Runs(ctx)
	if err != nil || len(runs) != 0 {
		s.Close()
		t.Fatalf("fresh store: runs %v, err %v; want none", runs, err)
	}
	if err := s.Record(ctx, bigRun("R1", month(0), 3)); err != nil {
		s.Close()
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path + "-journal"); err == nil {
		t.Errorf("%s-journal still there", path)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if runs, err := s.Runs(ctx); err != nil || len(runs) != 1 || runs[0].ID != "R1" {
		t.Fatalf("after Record: runs %+v, err %v; want R1", runs, err)
	}
}

func zeroed(b []byte, off, n int) []byte {
	c := append([]byte(nil), b...)
	for i := off; i < off+n && i < len(c); i++ {
		c[i] = 0
	}
	return c
}

// TestGraceResetVisibleThroughLoad: a host's grace days go 12 → 118 between two monthly
// audits; the second audit's rules see the first audit's 12 through Load (RDS-GRACE-003).
func TestGraceResetVisibleThroughLoad(t *testing.T) {
	s, _ := openTemp(t)
	keyWritten := month(0).AddDate(0, 0, -108)
	runPipeline(t, s, "R1", month(0), []*facts.Facts{hostFacts("RDSH01", 4, 12, keyWritten, "aa")}, nil)

	// Second audit: the key was rewritten after the first audit and days went up.
	now := month(1)
	h, err := s.Load(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := h.Previous("rdsh01", time.Time{}) // case-insensitive
	if len(prev) != 1 {
		t.Fatalf("Previous = %+v, want one snapshot", prev)
	}
	p := prev[0]
	if p.RunID != "R1" || !p.At.Equal(month(0)) || p.GraceDays == nil || *p.GraceDays != 12 ||
		p.GraceKeyWritten == nil || !p.GraceKeyWritten.Equal(keyWritten) || p.TimebombSHA256 != "aa" || !p.Collected {
		t.Fatalf("previous snapshot %+v", p)
	}
	cur := SnapshotOf("R2", now, hostFacts("RDSH01", 4, 118, now.AddDate(0, 0, -2), "bb"))
	if !(*cur.GraceDays > *p.GraceDays+1) || !cur.GraceKeyWritten.After(p.At) {
		t.Fatalf("reset not visible: previous %d, current %d", *p.GraceDays, *cur.GraceDays)
	}
	expectRule(t, "RDS-GRACE-003", rules.Fail, h, now, hostFacts("RDSH01", 4, 118, now.AddDate(0, 0, -2), "bb"))
	// Counted down: 12 days a month ago are 0 now. 11 now would be above the countdown
	// (the expiry moved), though lower than before.
	expectRule(t, "RDS-GRACE-003", rules.Pass, h, now, hostFacts("RDSH01", 4, 0, month(0).AddDate(0, 0, -108), "aa"))
	expectRule(t, "RDS-GRACE-003", rules.Fail, h, now, hostFacts("RDSH01", 4, 11, month(0).AddDate(0, 0, -108), "aa"))
}

// TestGraceSawtoothSixMonths: a scheduled reset script keeps the grace period alive; six
// monthly audits show the sawtooth to RDS-GRACE-008 through Load's window.
func TestGraceSawtoothSixMonths(t *testing.T) {
	s, _ := openTemp(t)
	days := []int64{110, 80, 50, 118, 88, 58} // reset between months 3 and 4 ...
	written := month(0).AddDate(0, 0, -10)
	for i, d := range days {
		if i > 0 && d > days[i-1] {
			written = month(i).AddDate(0, 0, -2)
		}
		runPipeline(t, s, fmt.Sprintf("R%d", i+1), month(i), []*facts.Facts{
			hostFacts("RDSH07", 4, d, written, fmt.Sprintf("tb%d", i)), hostFacts("RDSH08", 4, 120-int64(i), month(0), "same"),
		}, nil)
	}
	// ... and again before the seventh audit.
	now := month(6)
	h, err := s.Load(ctx, now, 200*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	prev := h.Previous("RDSH07", now.AddDate(0, -6, 0))
	if len(prev) != 6 {
		t.Fatalf("got %d snapshots, want 6", len(prev))
	}
	var got []int64
	for i, p := range prev {
		got = append(got, *p.GraceDays)
		if want := fmt.Sprintf("R%d", 6-i); p.RunID != want {
			t.Errorf("snapshot %d is run %s, want %s (newest first)", i, p.RunID, want)
		}
	}
	resets := 0
	for i := 0; i+1 < len(prev); i++ { // newest first: a reset is days higher than the older audit
		if *prev[i].GraceDays > *prev[i+1].GraceDays+1 {
			resets++
		}
	}
	if fmt.Sprint(got) != "[58 88 118 50 80 110]" || resets != 1 {
		t.Fatalf("days %v (resets %d)", got, resets)
	}
	// The current audit adds the second reset: two resets in the window.
	cur := hostFacts("RDSH07", 4, 117, now.AddDate(0, 0, -1), "tb7")
	if *cur.Grace.DaysLeft <= *prev[0].GraceDays+1 {
		t.Fatal("second reset not visible")
	}
	// A narrower window trims older runs; the latest run is always loaded.
	h2, _ := s.Load(ctx, now, 65*24*time.Hour)
	if n := len(h2.Previous("RDSH07", time.Time{})); n != 2 {
		t.Fatalf("65-day window loaded %d runs, want 2", n)
	}
	h3, _ := s.Load(ctx, now.AddDate(1, 0, 0), 30*24*time.Hour)
	if p := h3.Previous("RDSH07", time.Time{}); len(p) != 1 || p[0].RunID != "R6" {
		t.Fatalf("a year later: %+v, want the latest run only", p)
	}
	expectRule(t, "RDS-GRACE-008", rules.Fail, h, now, cur)
	// Without the second reset only one increase is in the window: no finding.
	expectRule(t, "RDS-GRACE-008", rules.Pass, h, now, hostFacts("RDSH07", 4, 28, written, "tb5"))
}

// TestFirstSeenSurvivesRuns: a finding present in three runs keeps its first-seen and is
// persisting; after it disappears and comes back it is new again.
func TestFirstSeenSurvivesRuns(t *testing.T) {
	s, _ := openTemp(t)
	host := []*facts.Facts{hostFacts("RDSH02", 5, 100, month(0), "x")}
	var last []rules.Result
	for i := 0; i < 3; i++ {
		rs := []rules.Result{fail("RDS-MODE-001", "RDSH02", rules.SevHigh, "mode not configured"), pass("RDS-LS-001", "RDSH02")}
		d := runPipeline(t, s, fmt.Sprintf("R%d", i+1), month(i), host, rs)
		r := rs[0]
		wantLife := rules.StatusPersisting
		if i == 0 {
			wantLife = rules.StatusNew
			if len(d.New) != 1 || d.PreviousRunID != "" {
				t.Fatalf("run 1 drift %+v", d)
			}
		} else if len(d.Persisting) != 1 || d.PreviousRunID != fmt.Sprintf("R%d", i) {
			t.Fatalf("run %d drift %+v", i+1, d)
		}
		if r.Lifecycle != wantLife || r.Status() != wantLife || !r.FirstSeen.Equal(month(0)) || !r.LastSeen.Equal(month(i)) {
			t.Fatalf("run %d: lifecycle %s first %v last %v", i+1, r.Lifecycle, r.FirstSeen, r.LastSeen)
		}
		if rs[1].Lifecycle != "" || rs[1].FirstSeen != nil {
			t.Fatalf("a pass was annotated: %+v", rs[1])
		}
		last = rs
	}
	// Stored too: the third run's row carries the first run's date.
	var first string
	if err := s.db.QueryRow("SELECT first_seen FROM findings WHERE run_id = 'R3' AND finding_id = ?", last[0].ID).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if first != ts(month(0)) {
		t.Fatalf("stored first_seen %s", first)
	}
	// Without Annotate, Record carries first-seen itself.
	if err := s.Record(ctx, RunRecord{ID: "R4", Started: month(3), Results: []rules.Result{fail("RDS-MODE-001", "RDSH02", rules.SevHigh, "x")}}); err != nil {
		t.Fatal(err)
	}
	var status string
	s.db.QueryRow("SELECT first_seen, status FROM findings WHERE run_id = 'R4'").Scan(&first, &status)
	if first != ts(month(0)) || status != rules.StatusPersisting {
		t.Fatalf("R4 first_seen %s status %s", first, status)
	}
	// Gone in R5, back in R6: new again.
	runPipeline(t, s, "R5", month(4), host, nil)
	rs := []rules.Result{fail("RDS-MODE-001", "RDSH02", rules.SevHigh, "x")}
	runPipeline(t, s, "R6", month(5), host, rs)
	if rs[0].Lifecycle != rules.StatusNew || !rs[0].FirstSeen.Equal(month(5)) {
		t.Fatalf("reappeared finding: %s %v", rs[0].Lifecycle, rs[0].FirstSeen)
	}
}

// TestResolvedFindingInDrift: a finding of the previous run that is no longer a finding
// is listed as resolved, with its first/last seen.
func TestResolvedFindingInDrift(t *testing.T) {
	s, _ := openTemp(t)
	hosts := []*facts.Facts{hostFacts("A", 4, 100, month(0), "x"), hostFacts("B", 4, 100, month(0), "y")}
	runPipeline(t, s, "R1", month(0), hosts, []rules.Result{
		fail("RDS-LS-001", "A", rules.SevHigh, "no license server"),
		fail("RDS-MODE-001", "B", rules.SevCritical, "mode not configured"),
	})
	rs := []rules.Result{pass("RDS-LS-001", "A"), fail("RDS-MODE-001", "B", rules.SevCritical, "mode not configured"),
		fail("RDS-GRACE-001", "A", rules.SevMedium, "grace")}
	d := runPipeline(t, s, "R2", month(1), hosts, rs)
	if d.PreviousRunID != "R1" || !d.PreviousAt.Equal(month(0)) {
		t.Fatalf("previous %s %v", d.PreviousRunID, d.PreviousAt)
	}
	if len(d.Resolved) != 1 || d.Resolved[0].RuleID != "RDS-LS-001" || d.Resolved[0].Subject.Name != "A" ||
		d.Resolved[0].Severity != rules.SevHigh || !d.Resolved[0].FirstSeen.Equal(month(0)) || d.Resolved[0].ID != rs[0].ID {
		t.Fatalf("resolved %+v", d.Resolved)
	}
	if fmt.Sprint(d.New) != fmt.Sprint([]string{rs[2].ID}) || fmt.Sprint(d.Persisting) != fmt.Sprint([]string{rs[1].ID}) {
		t.Fatalf("new %v persisting %v", d.New, d.Persisting)
	}
	// The diff of the recorded runs shows the same.
	rd, err := s.DiffRuns(ctx, "R1", "R2")
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.Resolved) != 1 || rd.Resolved[0].RuleID != "RDS-LS-001" || len(rd.New) != 1 || rd.New[0].RuleID != "RDS-GRACE-001" {
		t.Errorf("diff: resolved %+v new %+v", rd.Resolved, rd.New)
	}
}

func TestRecordRefusesDuplicateRun(t *testing.T) {
	s, _ := openTemp(t)
	runPipeline(t, s, "R1", month(0), nil, nil)
	err := s.Record(ctx, RunRecord{ID: "R1", Started: month(1)})
	if !errors.Is(err, ErrRunExists) {
		t.Fatalf("err = %v", err)
	}
	// A failed Record leaves nothing behind.
	err = s.Record(ctx, RunRecord{ID: "R2", Started: month(1), Hosts: []HostRecord{{Name: "a"}, {Name: "A"}}})
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("err = %v", err)
	}
	if runs, _ := s.Runs(ctx); len(runs) != 1 {
		t.Fatalf("%d runs after failed record", len(runs))
	}
}

func TestPrune(t *testing.T) {
	cases := []struct {
		name               string
		keepRuns, keepMons int
		want               string
	}{
		{"none", 0, 0, "R1 R2 R3 R4 R5 R6"},
		{"runs", 2, 0, "R5 R6"},
		{"months", 0, 3, "R4 R5 R6"},
		{"both-keeps-union", 4, 1, "R3 R4 R5 R6"},
		{"both-months-wider", 1, 4, "R3 R4 R5 R6"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openTemp(t)
			for i := 0; i < 6; i++ {
				runPipeline(t, s, fmt.Sprintf("R%d", i+1), month(i), []*facts.Facts{hostFacts("H", 4, 50, month(0), "x")},
					[]rules.Result{fail("RDS-MODE-001", "H", rules.SevHigh, "x")})
			}
			now := month(5).AddDate(0, 0, 1)
			if _, err := s.Prune(ctx, c.keepRuns, c.keepMons, now); err != nil {
				t.Fatal(err)
			}
			if got := runIDs(t, s); got != c.want {
				t.Fatalf("kept %s, want %s", got, c.want)
			}
			// Cascade: no orphan hosts or findings.
			var orphans int
			s.db.QueryRow("SELECT (SELECT COUNT(*) FROM hosts WHERE run_id NOT IN (SELECT run_id FROM runs)) + (SELECT COUNT(*) FROM findings WHERE run_id NOT IN (SELECT run_id FROM runs))").Scan(&orphans)
			if orphans != 0 {
				t.Fatalf("%d orphan rows", orphans)
			}
		})
	}
	t.Run("in-record", func(t *testing.T) {
		s, _ := openTemp(t)
		s.now = func() time.Time { return month(5) }
		for i := 0; i < 6; i++ {
			rec := RunRecord{ID: fmt.Sprintf("R%d", i+1), Started: month(i), Retention: Retention{KeepRuns: 3}}
			if err := s.Record(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		if got := runIDs(t, s); got != "R4 R5 R6" {
			t.Fatalf("kept %s", got)
		}
	})
}

func runIDs(t testing.TB, s *Store) string {
	runs, err := s.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, " ")
}

// The store's views (runs, a host's timeline, the diff of two runs) return what the
// history commands print (internal/cli renders them).
func TestViews(t *testing.T) {
	s, _ := openTemp(t)
	runPipeline(t, s, "2026-01-R1", month(0), []*facts.Facts{hostFacts("RDSH01", 4, 12, month(0).AddDate(0, 0, -100), "aa"), failed("RDSH09")},
		[]rules.Result{fail("RDS-GRACE-001", "RDSH01", rules.SevMedium, "grace period active: 12 days left")})
	r2 := []rules.Result{fail("RDS-GRACE-001", "RDSH01", rules.SevMedium, "grace"), fail("RDS-GRACE-003", "RDSH01", rules.SevCritical, "days went up")}
	r2 = append(r2, rules.Result{RuleID: "RDS-COLLECT", Outcome: rules.Error, Subject: rules.Subject{Kind: rules.SubjectHost, Name: "RDSH09"}, Message: "not collected"})
	runPipeline(t, s, "2026-02-R2", month(1), []*facts.Facts{hostFacts("RDSH01", 2, 118, month(1).AddDate(0, 0, -3), "bb"), failed("RDSH09")}, r2)

	runs, err := s.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("runs %+v", runs)
	}
	r := runs[1]
	got := fmt.Sprintf("%s %s %s %d %d %d %d %d %d %d %d %d %d", r.ID, r.Started.Format("2006-01-02 15:04"), r.Origin,
		r.Coverage.Targeted, r.Coverage.Collected, r.Coverage.Failed,
		r.BySeverity[rules.SevCritical], r.BySeverity[rules.SevHigh], r.BySeverity[rules.SevMedium],
		r.BySeverity[rules.SevLow], r.BySeverity[rules.SevInfo], r.Errors, r.Waived)
	if got != "2026-02-R2 2026-02-05 02:00 run 2 1 1 1 0 1 0 0 1 0" {
		t.Fatalf("second run: %s", got)
	}

	tl, err := s.Timeline(ctx, "rdsh01")
	if err != nil {
		t.Fatal(err)
	}
	if len(tl) != 2 || !tl[0].InRun || !tl[1].InRun {
		t.Fatalf("timeline %+v", tl)
	}
	if sn := tl[0].Host.Snapshot; facts.ModeName(sn.Mode) != "Per User (4)" || sn.GraceDays == nil || *sn.GraceDays != 12 {
		t.Errorf("first run: mode %s grace %v", facts.ModeName(sn.Mode), sn.GraceDays)
	}
	if sn := tl[1].Host.Snapshot; facts.ModeName(sn.Mode) != "Per Device (2)" || sn.GraceDays == nil || *sn.GraceDays != 118 {
		t.Errorf("second run: mode %s grace %v", facts.ModeName(sn.Mode), sn.GraceDays)
	}
	var fs []string
	for _, f := range tl[1].Findings {
		fs = append(fs, fmt.Sprintf("%s(%s,%s)", f.RuleID, f.Severity, f.Status()))
	}
	for _, want := range []string{"RDS-GRACE-003(critical,new)", "RDS-GRACE-001(medium,persisting)"} {
		if !strings.Contains(strings.Join(fs, " "), want) {
			t.Errorf("second run's findings %v lack %s", fs, want)
		}
	}
	if tl, err := s.Timeline(ctx, "RDSH09"); err != nil || len(tl) != 2 || tl[0].Host.Status != "failed" {
		t.Errorf("timeline of failed host: %v %+v", err, tl)
	}
	if _, err := s.Timeline(ctx, "nosuch"); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("unknown host: %v", err)
	}

	d, err := s.DiffRuns(ctx, "2026-01-R1", "2026-02-R2")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.New) != 2 || len(d.HostsRemoved) != 0 || len(d.HostChanges) != 4 {
		t.Fatalf("diff: new %d removed %d host changes %+v", len(d.New), len(d.HostsRemoved), d.HostChanges)
	}
	changes := fmt.Sprint(d.HostChanges)
	for _, want := range []string{"{RDSH01 grace_days 12 118}", "{RDSH01 mode Per User (4) Per Device (2)}", "{RDSH01 timebomb_sha256 aa bb}"} {
		if !strings.Contains(changes, want) {
			t.Errorf("host changes %s lack %s", changes, want)
		}
	}
	if _, err := s.DiffRuns(ctx, "2026-01-R1", "nope"); !errors.Is(err, ErrUnknownRun) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown run: %v", err)
	}
}

func TestRunLockTwoHandles(t *testing.T) {
	s1, path := openTemp(t)
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	release, err := s1.AcquireRunLock(ctx, "R1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s2.AcquireRunLock(ctx, "R2")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "run R1") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	t.Log(err)
	release()
	release() // idempotent
	r2, err := s2.AcquireRunLock(ctx, "R2")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r2()
}

// TestConcurrentWriters: two handles (as two processes would) record runs at the same
// time; SQLite serialises them through the busy timeout and nothing is lost.
func TestConcurrentWriters(t *testing.T) {
	_, path := openTemp(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := Open(ctx, path)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			if _, err := s.Load(ctx, month(i), 365*24*time.Hour); err != nil {
				errs[i] = err
				return
			}
			errs[i] = s.Record(ctx, bigRun(fmt.Sprintf("R%d", i), month(i), 1500))
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var hosts int
	s.db.QueryRow("SELECT COUNT(*) FROM hosts").Scan(&hosts)
	if got := runIDs(t, s); got != "R0 R1 R2 R3" || hosts != 6000 {
		t.Fatalf("runs %s hosts %d", got, hosts)
	}
}

func TestSnapshotOf(t *testing.T) {
	f := hostFacts("H", 4, 33, month(0), "cafe")
	s := SnapshotOf("R", month(1).In(time.FixedZone("x", 3600)), f)
	if s.RunID != "R" || s.At.Location() != time.UTC || *s.Mode != 4 || s.ModeSource != "policy" || *s.GraceDays != 33 ||
		s.TimebombSHA256 != "cafe" || s.OSBuild != "20348" || s.InstallDate == nil || len(s.LicenseServers) != 1 || !s.Collected {
		t.Fatalf("%+v", s)
	}
	*f.Grace.DaysLeft = 1 // the snapshot does not alias the facts
	if *s.GraceDays != 33 {
		t.Fatal("snapshot aliases facts")
	}
	if s := SnapshotOf("R", month(1), failed("X")); s.Collected || s.Mode != nil {
		t.Fatalf("%+v", s)
	}
	h := HostOf("R", month(1), failed("X"))
	if h.Status != "failed" || h.Failure != "connect: connection refused" {
		t.Fatalf("%+v", h)
	}
}
