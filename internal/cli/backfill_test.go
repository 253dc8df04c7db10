package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// graceState is one host's grace period in one month's evidence.
type graceState struct {
	days    int    // DaysLeft
	written string // GracePeriod key LastWriteTime
	absent  bool   // no evidence for the host this month (not collected)
	sample  bool   // the sample file as it is
}

// backfillMonths are four monthly audits of the sample fleet (as-of the first of the
// month, every export taken two hours before), with three hosts changed from month to
// month:
//   - RDSH-A05, topped up by a reset script: 30 → 113 (key rewritten 08-25) → 83 → 140
//     (the sample: key rewritten 10-28); two increases;
//   - RDSH-A07, counting down honestly from a key written 07-21: 110, 79, 49, 18;
//   - RDSH-B03, new in September (no evidence in August), grace started 08-31: 120, 90,
//     then reset the night after the October audit (key 10-01 02:00): 90 again in
//     November — not higher than before, but 31 days above what the countdown allows.
var backfillMonths = []struct {
	asOf  time.Time
	hosts map[string]graceState
}{
	{time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), map[string]graceState{
		"RDSH-A05": {days: 30, written: "2026-04-03T10:00:00Z"},
		"RDSH-A07": {days: 110, written: "2026-07-21T09:00:00Z"},
		"RDSH-B03": {absent: true},
	}},
	{time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), map[string]graceState{
		"RDSH-A05": {days: 113, written: "2026-08-25T03:00:00Z"},
		"RDSH-A07": {days: 79, written: "2026-07-21T09:00:00Z"},
		"RDSH-B03": {days: 120, written: "2026-08-31T20:00:00Z"},
	}},
	{time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), map[string]graceState{
		"RDSH-A05": {days: 83, written: "2026-08-25T03:00:00Z"},
		"RDSH-A07": {days: 49, written: "2026-07-21T09:00:00Z"},
		"RDSH-B03": {days: 90, written: "2026-08-31T20:00:00Z"},
	}},
	{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), map[string]graceState{
		"RDSH-A05": {sample: true},
		"RDSH-A07": {days: 18, written: "2026-07-21T09:00:00Z"},
		"RDSH-B03": {days: 90, written: "2026-10-01T02:00:00Z"},
	}},
}

var (
	reCollectedAt = regexp.MustCompile(`(?m)^collected_at: '[^']*'`)
	reDaysLeft    = regexp.MustCompile(`days_left: -?\d+`)
	reGraceKey    = regexp.MustCompile(`(RCM\\GracePeriod'\n\s+last_write_time: ')[^']*'`)
)

// monthEvidence writes month m's evidence directory: a copy of samples/fleet, every
// export collected two hours before the month's first day, with the month's grace states.
func monthEvidence(t *testing.T, m int) string {
	t.Helper()
	mo := backfillMonths[m]
	dir := filepath.Join(t.TempDir(), "evidence-"+mo.asOf.Format("2006-01"))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("samples/fleet")
	if err != nil {
		t.Fatal(err)
	}
	collected := mo.asOf.Add(-2 * time.Hour).Format(time.RFC3339)
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() { // directory/: the Per User evidence, the same every month
			if err := os.CopyFS(filepath.Join(dir, name), os.DirFS(filepath.Join("samples/fleet", name))); err != nil {
				t.Fatal(err)
			}
			continue
		}
		host := strings.TrimSuffix(strings.TrimSuffix(name, ".host.yaml"), ".reg")
		st, changed := mo.hosts[host]
		if changed && st.absent {
			continue
		}
		b, err := os.ReadFile(filepath.Join("samples/fleet", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".host.yaml") {
			s := reCollectedAt.ReplaceAllString(string(b), "collected_at: '"+collected+"'")
			if changed && !st.sample {
				s = reDaysLeft.ReplaceAllString(s, fmt.Sprintf("days_left: %d", st.days))
				if !reGraceKey.MatchString(s) {
					t.Fatalf("%s: no GracePeriod key metadata to rewrite", name)
				}
				s = reGraceKey.ReplaceAllString(s, "${1}"+st.written+"'")
			}
			b = []byte(s)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var historyRules = map[string]bool{"RDS-GRACE-003": true, "RDS-GRACE-005": true, "RDS-GRACE-008": true}

// historyView is what a report says through history: every result of the history rules
// (outcome, messages, evidence strength, lifecycle), the lifecycle and first-seen of
// every finding, and the drift, with run IDs replaced by the month they evaluated.
func historyView(rep *report.Report, names map[string]string) []string {
	norm := func(s string) string {
		for id, month := range names {
			s = strings.ReplaceAll(s, id, month)
		}
		return s
	}
	seen := func(p *time.Time) string {
		if p == nil {
			return "-"
		}
		return p.UTC().Format(time.RFC3339)
	}
	var out []string
	for _, r := range rep.Results {
		if historyRules[r.RuleID] {
			out = append(out, norm(fmt.Sprintf("%s %s: %s %s | %s | observed %s | expected %s | strength %s",
				r.RuleID, r.Subject.Name, r.Outcome, r.Severity, r.Message, r.Observed, r.Expected, r.Strength)))
		}
		if r.IsFinding() {
			out = append(out, fmt.Sprintf("finding %s %s %s: %s first seen %s", r.ID, r.RuleID, r.Subject.Name, r.Status(), seen(r.FirstSeen)))
		}
	}
	if d := rep.Drift; d != nil {
		var resolved []string
		for _, r := range d.Resolved {
			resolved = append(resolved, r.ID)
		}
		out = append(out, fmt.Sprintf("drift previous %s at %s; new %v; persisting %v; resolved %v", norm(d.PreviousRunID),
			d.PreviousAt.UTC().Format(time.RFC3339), d.New, d.Persisting, resolved))
	}
	sort.Strings(out)
	return out
}

func diffLines(a, b []string) string {
	ma := map[string]bool{}
	for _, s := range a {
		ma[s] = true
	}
	mb := map[string]bool{}
	for _, s := range b {
		mb[s] = true
	}
	var d []string
	for _, s := range a {
		if !mb[s] {
			d = append(d, "- "+s)
		}
	}
	for _, s := range b {
		if !ma[s] {
			d = append(d, "+ "+s)
		}
	}
	return strings.Join(d, "\n")
}

// backfillRun runs one audit of month m's evidence at wall clock wall, with extra flags,
// and returns its run directory.
func backfillRun(t *testing.T, wall time.Time, out, evidence string, extra ...string) string {
	t.Helper()
	before := map[string]bool{}
	for _, d := range runDirs(t, out) {
		before[d] = true
	}
	args := append([]string{"run", "--config", "samples/config.yaml", "--output-dir", out, "--evidence-dir", evidence}, extra...)
	if code, stdout, stderr := rdsaudit(t, wall, args...); code != ExitCoverage {
		t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
	}
	for _, d := range runDirs(t, out) {
		if !before[d] {
			return d
		}
	}
	t.Fatalf("%v published no run directory", args)
	return ""
}

// TestBackfillMatchesLive is issue 17's acceptance test: four monthly evidence sets
// evaluated live (the clock at each month) and backfilled months later (run --as-of +
// import, and run --as-of --record) give the same history findings; importing the months
// out of order gives the same final history as importing them in order.
func TestBackfillMatchesLive(t *testing.T) {
	chdirRoot(t)
	// Every run is signed, and import checks the signature, as a backfill of archived
	// runs would (issue 14: import refuses what it cannot prove).
	keys := filepath.Join(t.TempDir(), "audit")
	if code, _, stderr := rdsaudit(t, backfillMonths[0].asOf, "keygen", "--out", keys); code != ExitOK {
		t.Fatalf("keygen: %s", stderr)
	}
	t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", keys+".key")
	months := make([]string, len(backfillMonths))
	for m := range backfillMonths {
		months[m] = monthEvidence(t, m)
	}
	label := func(m int) string { return "M" + backfillMonths[m].asOf.Format("2006-01") }

	// Live: one run a month, the clock at the month's first day.
	live := t.TempDir()
	liveNames := map[string]string{}
	var liveViews [][]string
	for m, mo := range backfillMonths {
		dir := backfillRun(t, mo.asOf, live, months[m])
		liveNames[filepath.Base(dir)] = label(m)
		rep := readReport(t, dir)
		if rep.Run.Pinned || !rep.Run.EvaluatedAt.Equal(mo.asOf) {
			t.Errorf("live run %s: evaluated_at %v pinned %v, want %v not pinned", dir, rep.Run.EvaluatedAt, rep.Run.Pinned, mo.asOf)
		}
		liveViews = append(liveViews, historyView(rep, liveNames))
	}

	// Backfill in December, the wall clock going backwards as the months go forwards, so
	// that nothing can order the runs by when they were made.
	wall := func(m int) time.Time {
		return time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).Add(-time.Duration(m) * time.Hour)
	}
	imported := t.TempDir()
	importedDB := filepath.Join(imported, "history.db")
	recorded := t.TempDir()
	importNames, recordNames := map[string]string{}, map[string]string{}
	var importDirs []string
	for m, mo := range backfillMonths {
		asOf := mo.asOf.Format(time.RFC3339)
		dir := backfillRun(t, wall(m), imported, months[m], "--as-of", asOf)
		importNames[filepath.Base(dir)] = label(m)
		importDirs = append(importDirs, dir)
		if code, stdout, stderr := rdsaudit(t, wall(m), "import", dir, "--db", importedDB, "--pubkey", keys+".pub"); code != ExitOK {
			t.Fatalf("import %s: exit %d\n%s%s", dir, code, stdout, stderr)
		}
		rep := readReport(t, dir)
		if !rep.Run.Pinned || !rep.Run.EvaluatedAt.Equal(mo.asOf) {
			t.Errorf("--as-of run %s: evaluated_at %v pinned %v, want %v pinned", dir, rep.Run.EvaluatedAt, rep.Run.Pinned, mo.asOf)
		}
		if w := rep.Run.CollectionWindow; w == nil || !w.Latest.Equal(mo.asOf.Add(-2*time.Hour)) {
			t.Errorf("--as-of run %s: collection window %+v", dir, w)
		}
		if got := historyView(rep, importNames); m > 0 && diffLines(liveViews[m], got) != "" {
			t.Errorf("%s: run --as-of + import differs from the live run:\n%s", label(m), diffLines(liveViews[m], got))
		}

		rdir := backfillRun(t, wall(m), recorded, months[m], "--as-of", asOf, "--record")
		recordNames[filepath.Base(rdir)] = label(m)
		if got := historyView(readReport(t, rdir), recordNames); diffLines(liveViews[m], got) != "" {
			t.Errorf("%s: run --as-of --record differs from the live run:\n%s", label(m), diffLines(liveViews[m], got))
		}
	}

	// What the last month must show (domain.md §3): the reset script, the honest
	// countdown, and the reset the night after an audit.
	last := liveViews[len(liveViews)-1]
	want := map[string]rules.Outcome{
		"RDS-GRACE-003 RDSH-A05": rules.Fail, "RDS-GRACE-005 RDSH-A05": rules.Fail, "RDS-GRACE-008 RDSH-A05": rules.Fail,
		"RDS-GRACE-003 RDSH-A07": rules.Pass, "RDS-GRACE-005 RDSH-A07": rules.Pass, "RDS-GRACE-008 RDSH-A07": rules.Pass,
		"RDS-GRACE-003 RDSH-B03": rules.Fail, "RDS-GRACE-005 RDSH-B03": rules.Fail, "RDS-GRACE-008 RDSH-B03": rules.Pass,
	}
	for key, outcome := range want {
		found := false
		for _, l := range last {
			if strings.HasPrefix(l, key+": ") {
				found = true
				if !strings.HasPrefix(l, key+": "+string(outcome)+" ") {
					t.Errorf("last month: %s, want %s", l, outcome)
				}
			}
		}
		if !found {
			t.Errorf("last month: no %s result", key)
		}
	}
	for _, l := range last {
		if strings.Contains(l, "no earlier run") && (strings.Contains(l, "RDSH-A05") || strings.Contains(l, "RDSH-A07")) {
			t.Errorf("last month: %s", l)
		}
	}
	var shown []string
	for _, l := range last {
		if strings.HasPrefix(l, "RDS-") && (strings.Contains(l, " RDSH-A05:") || strings.Contains(l, " RDSH-A07:") || strings.Contains(l, " RDSH-B03:")) {
			shown = append(shown, l)
		}
	}
	t.Logf("last month, live:\n%s", strings.Join(shown, "\n"))

	// --record without --as-of: a live run is always recorded.
	if code, _, stderr := rdsaudit(t, wall(0), "run", "--config", "samples/config.yaml", "--output-dir", t.TempDir(), "--record"); code != ExitUsage ||
		!strings.Contains(stderr, "--record needs --as-of") {
		t.Errorf("--record without --as-of: exit %d, %s", code, stderr)
	}

	// `history` shows when each run was evaluated and when it was made.
	code, stdout, stderr := rdsaudit(t, wall(0), "history", "--db", importedDB)
	if code != ExitOK || !strings.Contains(stdout, "EVALUATED") || !strings.Contains(stdout, "2026-08-01 00:00") ||
		!strings.Contains(stdout, wall(0).Format("2006-01-02 15:04")) {
		t.Errorf("history: exit %d\n%s%s", code, stdout, stderr)
	}

	// Out of order: the same run directories imported into a fresh store in another order
	// give the same history as in order.
	shuffled := filepath.Join(t.TempDir(), "history.db")
	for _, m := range []int{2, 0, 3, 1} {
		if code, stdout, stderr := rdsaudit(t, wall(0), "import", importDirs[m], "--db", shuffled, "--pubkey", keys+".pub"); code != ExitOK {
			t.Fatalf("import %s out of order: exit %d\n%s%s", importDirs[m], code, stdout, stderr)
		}
	}
	inOrder, outOfOrder := dumpStore(t, importedDB, importNames, nil), dumpStore(t, shuffled, importNames, nil)
	if d := diffLines(inOrder, outOfOrder); d != "" {
		t.Errorf("history imported out of order differs from in order:\n%s", d)
	}

	// Reports that carry no history of their own (each month evaluated --as-of against an
	// empty store, as a site without the central history would): the store alone orders
	// them. In order or not, the findings' first-seen and status are the live history's
	// (the history rules aside: without history their results differ).
	var lone []string
	loneNames := map[string]string{}
	for m, mo := range backfillMonths {
		dir := backfillRun(t, wall(m), t.TempDir(), months[m], "--as-of", mo.asOf.Format(time.RFC3339))
		loneNames[filepath.Base(dir)] = label(m)
		lone = append(lone, dir)
	}
	liveFindings := dumpStore(t, filepath.Join(live, "history.db"), liveNames, historyRules)
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 1, 0, 2}} {
		db := filepath.Join(t.TempDir(), "history.db")
		for _, m := range order {
			if code, stdout, stderr := rdsaudit(t, wall(0), "import", lone[m], "--db", db, "--pubkey", keys+".pub"); code != ExitOK {
				t.Fatalf("import %s: exit %d\n%s%s", lone[m], code, stdout, stderr)
			}
		}
		if d := diffLines(liveFindings, dumpStore(t, db, loneNames, historyRules)); d != "" {
			t.Errorf("reports without history imported in order %v: findings differ from the live history:\n%s", order, d)
		}
	}
}

// dumpStore lists a store's runs in timeline order and each run's findings with their
// lifecycle and first-seen, run IDs replaced by names. With skip (rule IDs) only
// findings are listed, those of the skipped rules left out, and run metadata that
// differs between live and backfilled runs (ID, pinned, origin) is left out too.
func dumpStore(t *testing.T, path string, names map[string]string, skip map[string]bool) []string {
	t.Helper()
	ctx := context.Background()
	s, err := history.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, r := range runs {
		name := names[r.ID]
		if name == "" {
			t.Fatalf("run %s: no name", r.ID)
		}
		if skip == nil {
			out = append(out, fmt.Sprintf("run %d %s evaluated %s pinned %v origin %s window %s", i, name,
				r.EvaluatedAt.Format(time.RFC3339), r.Pinned, r.Origin, window(r.Window)))
		} else {
			out = append(out, fmt.Sprintf("run %d %s evaluated %s", i, name, r.EvaluatedAt.Format(time.RFC3339)))
		}
		fs, err := s.Findings(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if skip[f.RuleID] {
				continue
			}
			out = append(out, fmt.Sprintf("run %s finding %s %s %s: %s first %s last %s", name, f.ID, f.RuleID, f.Subject.Name,
				f.Status(), f.FirstSeen.Format(time.RFC3339), f.LastSeen.Format(time.RFC3339)))
		}
	}
	return out
}
