package audit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/internal/filelock"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/samples"
)

// The concurrency test's children: TestOutdirHelper, selected by envOutChild.
const (
	envOutChild   = "RDSAUDIT_AUDIT_OUTDIR_CHILD" // the fleet directory
	envOutDir     = "RDSAUDIT_AUDIT_OUTDIR_OUT"
	envOutHistory = "RDSAUDIT_AUDIT_OUTDIR_HISTORY"
	envOutWait    = "RDSAUDIT_AUDIT_OUTDIR_WAIT"  // output_lock_wait
	envOutStartAt = "RDSAUDIT_AUDIT_OUTDIR_START" // unix nanoseconds: both children start then
	outHosts      = 40
)

// outClock is the children's clock: both runs start in the same second, every trial.
var outClock = time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)

// TestOutdirHelper is a child of TestTwoRunsOneOutputDir; it does nothing in a normal
// run. It prints DONE <run-id>, LOCKED <message> or ERROR <message>.
func TestOutdirHelper(t *testing.T) {
	fleetDir := os.Getenv(envOutChild)
	if fleetDir == "" {
		t.Skip("child process only")
	}
	wait, _ := time.ParseDuration(os.Getenv(envOutWait))
	at, _ := strconv.ParseInt(os.Getenv(envOutStartAt), 10, 64)
	inner := offline.New(fleetDir)
	col := collect.Func("offline", func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		time.Sleep(100 * time.Millisecond) // a run long enough for the other to meet its lock
		return inner.Collect(ctx, h)
	})
	o := scaledOptions(t, fleetDir, os.Getenv(envOutDir), scaledHosts(outHosts), col)
	o.HistoryPath = os.Getenv(envOutHistory)
	o.OutputLockWait = wait
	o.Concurrency = 4
	o.Now = func() time.Time { return outClock }
	time.Sleep(time.Until(time.Unix(0, at)))
	res, err := audit.Run(context.Background(), o)
	switch {
	case errors.Is(err, audit.ErrOutputLocked):
		fmt.Println("LOCKED", err)
	case err != nil:
		fmt.Println("ERROR", err)
	default:
		fmt.Println("DONE", res.RunID)
	}
}

// TestTwoRunsOneOutputDir starts two real processes at once, each running an audit into
// one output directory with its own history store, six times: with output_lock_wait 0
// exactly one publishes and the other is refused naming the holder's PID and start;
// with a wait both publish, one after the other, under distinct run IDs although they
// started in the same second. Every published run verifies, latest.json names the last
// one, and no staging directory is left, a dead run's included.
func TestTwoRunsOneOutputDir(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	fleetDir, out := filepath.Join(dir, "fleet"), filepath.Join(dir, "out")
	f, err := samples.Scale(outHosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WriteEvidence(fleetDir); err != nil {
		t.Fatal(err)
	}
	// A dead run's staging leftover: the first run removes it, holding the lock.
	dead := filepath.Join(out, ".20261001T060000Z.4242-deadbeef.partial")
	if err := os.MkdirAll(filepath.Join(dead, "evidence"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "evidence", "x.json"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	published := map[string]bool{}
	for trial := 1; trial <= 6; trial++ {
		wait := "0s"
		if trial%2 == 0 {
			wait = "2m"
		}
		t.Run(fmt.Sprintf("trial-%d-wait-%s", trial, wait), func(t *testing.T) {
			start := time.Now().Add(1500 * time.Millisecond).UnixNano()
			type child struct {
				cmd  *exec.Cmd
				line chan string
			}
			var kids []child
			for i, h := range []string{"a.db", "b.db"} {
				cmd := exec.Command(os.Args[0], "-test.run=^TestOutdirHelper$", "-test.v=false")
				cmd.Env = append(os.Environ(), envOutChild+"="+fleetDir, envOutDir+"="+out,
					envOutHistory+"="+filepath.Join(dir, h), envOutWait+"="+wait, envOutStartAt+"="+strconv.FormatInt(start, 10))
				cmd.Stderr = os.Stderr
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				c := child{cmd, make(chan string, 1)}
				go func() {
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						if l := sc.Text(); strings.HasPrefix(l, "DONE") || strings.HasPrefix(l, "LOCKED") || strings.HasPrefix(l, "ERROR") {
							c.line <- l
							return
						}
					}
					c.line <- fmt.Sprintf("ERROR child %d exited without a result", i)
				}()
				kids = append(kids, c)
			}
			var done []string
			var locked []string
			var donePID int
			for _, c := range kids {
				var l string
				select {
				case l = <-c.line:
				case <-time.After(3 * time.Minute):
					t.Fatal("child did not finish")
				}
				switch {
				case strings.HasPrefix(l, "DONE "):
					done = append(done, strings.TrimPrefix(l, "DONE "))
					donePID = c.cmd.Process.Pid
				case strings.HasPrefix(l, "LOCKED "):
					locked = append(locked, l)
				default:
					t.Fatalf("child: %s", l)
				}
				_ = c.cmd.Wait()
			}
			if wait == "0s" {
				if len(done) != 1 || len(locked) != 1 {
					t.Fatalf("wait 0: %d published (%v), %d refused (%v); want one of each", len(done), done, len(locked), locked)
				}
				// The holder's run ID is there once it has chosen one; its PID and start always.
				if !strings.Contains(locked[0], fmt.Sprintf("pid %d on ", donePID)) || !strings.Contains(locked[0], ", started 20") {
					t.Errorf("refusal does not name the holder (pid %d): %s", donePID, locked[0])
				}
				t.Log(locked[0])
			} else if len(done) != 2 || done[0] == done[1] {
				t.Fatalf("with a wait: published %v, refused %v; want two distinct runs", done, locked)
			}
			for _, id := range done {
				if published[id] {
					t.Fatalf("run ID %s published twice", id)
				}
				published[id] = true
			}
			// latest.json names the run that took the lock last: the higher suffix.
			sort.Slice(done, func(i, j int) bool { return runSeq(done[i]) < runSeq(done[j]) })
			l, err := audit.ReadLatest(out)
			if err != nil || l.RunID != done[len(done)-1] || l.Dir != l.RunID {
				t.Errorf("latest.json %+v (%v), want run %s", l, err, done[len(done)-1])
			}
		})
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		switch {
		case e.IsDir() && strings.HasPrefix(e.Name(), "."):
			t.Errorf("staging directory left: %s", e.Name())
		case e.IsDir():
			dirs = append(dirs, e.Name())
			if err := report.Verify(filepath.Join(out, e.Name()), nil); err != nil {
				t.Errorf("published run does not verify: %v", err)
			}
			if !published[e.Name()] {
				t.Errorf("run directory %s was not reported published", e.Name())
			}
		}
	}
	if len(dirs) != len(published) || len(dirs) != 3+2*3 {
		t.Errorf("run directories %v, published %v; want 9", dirs, published)
	}
}

// runSeq is the run ID's suffix number (1 without a suffix).
func runSeq(id string) int {
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		n, _ := strconv.Atoi(id[i+1:])
		return n
	}
	return 1
}

// TestLatestAndRetention: each complete run replaces latest.json and applies the
// history retention to the run directories, never to the run just written; pinned runs
// touch neither; a held output directory lock refuses a run naming the holder.
func TestLatestAndRetention(t *testing.T) {
	out := t.TempDir()
	o := sampleOptions(t, out)
	o.Retention = history.Retention{KeepRuns: 2}
	notes := filepath.Join(out, "notes")
	if err := os.Mkdir(notes, 0o750); err != nil { // not a run directory: left alone
		t.Fatal(err)
	}
	// A dead run's latest.json temporary: removed under the lock.
	if err := os.WriteFile(filepath.Join(out, ".latest.json.123.tmp"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 4; i++ {
		at := sampleNow.AddDate(0, i, 0)
		o.Now = func() time.Time { return at }
		res, err := audit.Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.RunID)
		l, err := audit.ReadLatest(out)
		if err != nil {
			t.Fatal(err)
		}
		v := res.Verdict()
		if l.RunID != res.RunID || l.Dir != res.RunID || !l.FinishedAt.Equal(at) || l.Verdict.Status != v.Status ||
			l.Verdict.Blocking != v.Blocking || l.Verdict.FailOn != v.FailOn.String() || l.Verdict.Reason != v.Reason() ||
			l.Coverage.Targeted != res.Report.Coverage.Targeted || l.Coverage.Collected != res.Report.Coverage.Collected ||
			len(l.Coverage.ByClass) != len(res.Report.Coverage.ByClass) || l.Schema != audit.LatestSchema {
			t.Errorf("run %d: latest.json %+v for result %s %+v", i, l, res.RunID, v)
		}
		want := ids[max(0, len(ids)-2):]
		if got := published(t, out); strings.Join(got, " ") != strings.Join(append(append([]string(nil), want...), "notes"), " ") {
			t.Errorf("run %d: run directories %v, want %v and notes", i, got, want)
		}
	}
	fi, err := os.Stat(filepath.Join(out, audit.LatestName))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Errorf("latest.json: %v %v", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".latest.json*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A pinned re-evaluation neither replaces latest.json nor prunes.
	o.AsOf = sampleNow
	o.Now = func() time.Time { return sampleNow.AddDate(1, 0, 0) }
	pinned, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := audit.ReadLatest(out); l.RunID != ids[3] {
		t.Errorf("pinned run %s replaced latest.json: %s", pinned.RunID, l.RunID)
	}
	if got := published(t, out); len(got) != 4 {
		t.Errorf("after the pinned run: %v", got)
	}

	// A run while another holds the output directory's lock is refused, naming it.
	o.AsOf = time.Time{}
	holder := filelock.Self("HOLDER-RUN", time.Date(2026, 12, 24, 6, 0, 0, 0, time.UTC))
	l, _, err := filelock.TryLock(filepath.Join(out, audit.LockName), holder)
	if err != nil || l == nil {
		t.Fatal(err)
	}
	o.OutputLockWait = 100 * time.Millisecond
	_, err = audit.Run(context.Background(), o)
	if !errors.Is(err, audit.ErrOutputLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) ||
		!strings.Contains(err.Error(), "started 2026-12-24T06:00:00Z") || !strings.Contains(err.Error(), "HOLDER-RUN") {
		t.Errorf("run under a held lock: %v", err)
	}
	l.Release()
}

// TestPruneRunDirsMonths: keep N months, both limits (a run goes only outside both),
// the kept run, and directories without a manifest.
func TestPruneRunDirsMonths(t *testing.T) {
	out := t.TempDir()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mk := func(name string, started time.Time) {
		d := filepath.Join(out, name)
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		man := fmt.Sprintf(`{"schema":%q,"run":{"id":%q,"started_at":%q},"files":[]}`, report.ManifestSchema, name, started.Format(time.RFC3339))
		if err := os.WriteFile(filepath.Join(d, report.ManifestName), []byte(man), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for m := 0; m < 6; m++ {
		mk(fmt.Sprintf("M%d", m), now.AddDate(0, -m, 0))
	}
	mk("OLD-KEPT", now.AddDate(-2, 0, 0))
	if err := os.Mkdir(filepath.Join(out, "no-manifest"), 0o750); err != nil {
		t.Fatal(err)
	}
	removed, err := audit.PruneRunDirs(out, "OLD-KEPT", history.Retention{KeepMonths: 3}, now)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if want := []string{filepath.Join(out, "M4"), filepath.Join(out, "M5")}; strings.Join(removed, ",") != strings.Join(want, ",") {
		t.Errorf("removed %v, want %v", removed, want)
	}
	// Both limits: 1 run or 1 month; M2 and M3 are outside both.
	removed, err = audit.PruneRunDirs(out, "", history.Retention{KeepRuns: 1, KeepMonths: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	want := []string{filepath.Join(out, "M2"), filepath.Join(out, "M3"), filepath.Join(out, "OLD-KEPT")}
	if strings.Join(removed, ",") != strings.Join(want, ",") {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if got := published(t, out); strings.Join(got, ",") != "M0,M1,no-manifest" {
		t.Errorf("left %v", got)
	}
	if removed, _ := audit.PruneRunDirs(out, "", history.Retention{}, now); len(removed) != 0 {
		t.Errorf("no retention removed %v", removed)
	}
}
