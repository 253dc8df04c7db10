package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/internal/filelock"
	"github.com/rdsaudit/rdsaudit/report"
)

// TestStatus: status's exit codes: 8 before any run, 3 after the sample run (two hosts
// not collected), 0 for a complete recent run whatever its findings, 8 when older than
// --max-age or behind the history, 2 on a bad --max-age.
func TestStatus(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	t.Setenv("RDSAUDIT_OUTPUT_DIR", out)
	status := func(now time.Time, extra ...string) (int, string, string) {
		t.Helper()
		return rdsaudit(t, now, append([]string{"status", "--config", "samples/config.yaml"}, extra...)...)
	}

	code, stdout, stderr := status(sampleNow)
	if code != ExitStale || !strings.HasPrefix(stdout, "STALE: no complete run") {
		t.Errorf("before any run: exit %d\n%s%s", code, stdout, stderr)
	}

	if code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml"); code != ExitCoverage {
		t.Fatalf("sample run: exit %d\n%s%s", code, stdout, stderr)
	}
	l, err := audit.ReadLatest(out)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = status(sampleNow.Add(3*time.Hour), "--max-age", "32d")
	if code != ExitCoverage || !strings.HasPrefix(stdout, "INCOMPLETE: run "+l.RunID+" finished 2026-11-01T00:00:00Z (3h0m0s ago): verdict incomplete") ||
		!strings.Contains(stdout, "22 of 24 hosts collected") || !strings.Contains(stdout, "history: findings critical ") {
		t.Errorf("after the sample run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = status(sampleNow.AddDate(0, 2, 0), "--max-age", "32d")
	if code != ExitStale || !strings.HasPrefix(stdout, "STALE: run "+l.RunID) {
		t.Errorf("two months on with --max-age 32d: exit %d\n%s", code, stdout)
	}

	// A complete run, findings or not, is OK while recent.
	fresh := t.TempDir()
	t.Setenv("RDSAUDIT_OUTPUT_DIR", fresh)
	done := sampleNow.Add(time.Hour)
	if err := audit.WriteLatest(fresh, audit.Latest{Schema: audit.LatestSchema, RunID: "20261101T000000Z", Dir: "20261101T000000Z",
		StartedAt: sampleNow, FinishedAt: done,
		Verdict:  audit.LatestVerdict{Status: report.VerdictFail, Reason: "unwaived findings at or above high", FailOn: "high", Blocking: 3},
		Coverage: audit.LatestCoverage{Targeted: 5, Collected: 5, ByClass: []report.ClassCount{}}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at     time.Time
		maxAge string
		code   int
	}{
		{done.Add(time.Minute), "", ExitOK},
		{done.Add(90 * 24 * time.Hour), "", ExitOK}, // no --max-age: any age
		{done.Add(47 * time.Hour), "2d", ExitOK},
		{done.Add(49 * time.Hour), "2d", ExitStale},
		{done.Add(31 * time.Minute), "30m", ExitStale},
		{done, "soon", ExitUsage},
		{done, "-1h", ExitUsage},
	} {
		var extra []string
		if tt.maxAge != "" {
			extra = []string{"--max-age", tt.maxAge}
		}
		if code, stdout, stderr := status(tt.at, extra...); code != tt.code {
			t.Errorf("at %s, --max-age %q: exit %d, want %d\n%s%s", tt.at, tt.maxAge, code, tt.code, stdout, stderr)
		} else if code == ExitOK && !strings.HasPrefix(stdout, "OK: run 20261101T000000Z finished") {
			t.Errorf("OK line: %s", stdout)
		}
	}

	// latest.json behind the history: the last run did not finish.
	t.Setenv("RDSAUDIT_OUTPUT_DIR", out)
	old := *l
	old.RunID, old.Dir = "20261001T000000Z", "20261001T000000Z"
	old.StartedAt, old.FinishedAt = sampleNow.AddDate(0, -1, 0), sampleNow.AddDate(0, -1, 0)
	old.Coverage.Collected = old.Coverage.Targeted
	if err := audit.WriteLatest(out, old); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = status(sampleNow)
	if code != ExitStale || !strings.Contains(stdout, "history: run "+l.RunID+" is newer than latest.json's") {
		t.Errorf("latest.json behind history: exit %d\n%s", code, stdout)
	}
	if err := os.WriteFile(filepath.Join(out, audit.LatestName), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := status(sampleNow); code != ExitInternal || !strings.Contains(stderr, "latest.json") {
		t.Errorf("unreadable latest.json: exit %d %s", code, stderr)
	}
}

// TestRunOutputLocked: run exits 6 naming the holder while another holds the output
// directory's lock.
func TestRunOutputLocked(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	started := time.Date(2026, 11, 1, 5, 59, 0, 0, time.UTC)
	l, _, err := filelock.TryLock(filepath.Join(out, audit.LockName), filelock.Self("20261101T055900Z", started))
	if err != nil || l == nil {
		t.Fatal(err)
	}
	defer l.Release()
	code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out)
	if code != ExitLocked || !strings.Contains(stderr, "pid ") || !strings.Contains(stderr, "started 2026-11-01T05:59:00Z") ||
		!strings.Contains(stderr, "20261101T055900Z") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	if len(runDirs(t, out)) != 0 {
		t.Error("a refused run published")
	}
}
