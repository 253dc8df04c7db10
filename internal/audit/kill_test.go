package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/rdsaudit/rdsaudit/samples"
)

const (
	envKillChild = "RDSAUDIT_AUDIT_KILL_CHILD" // the fleet directory
	envKillOut   = "RDSAUDIT_AUDIT_KILL_OUT"
	envKillAfter = "RDSAUDIT_AUDIT_KILL_AFTER" // hosts collected before the child says so
	killHosts    = 2000
)

// scaledOptions audits the generated fleet in fleetDir into out.
func scaledOptions(t testing.TB, fleetDir, out string, hosts []evidence.HostRef, col collect.Collector) audit.Options {
	t.Helper()
	rs, err := rules.LoadRuleSet(filepath.Join("..", "..", "samples", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return audit.Options{Hosts: hosts, RuleSet: rs, Collector: col, OutputDir: out,
		HistoryPath: filepath.Join(out, "history.db"), ToolVersion: "test", Log: zerolog.Nop()}
}

func scaledHosts(n int) []evidence.HostRef {
	hosts := make([]evidence.HostRef, 0, n)
	f, _ := samples.Scale(n)
	for _, ev := range f.Evidence {
		hosts = append(hosts, ev.Host)
	}
	return hosts
}

// TestKillHelper is the child of TestKillMidCollection; it does nothing in a normal run.
func TestKillHelper(t *testing.T) {
	fleetDir := os.Getenv(envKillChild)
	if fleetDir == "" {
		t.Skip("child process only")
	}
	after, _ := strconv.Atoi(os.Getenv(envKillAfter))
	var n atomic.Int64
	inner := offline.New(fleetDir)
	col := collect.Func("offline", func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		ev := inner.Collect(ctx, h)
		if n.Add(1) == int64(after) {
			fmt.Println("COLLECTING") // the parent kills us from here on
		}
		time.Sleep(time.Millisecond) // keep collection going while the parent kills
		return ev
	})
	_, err := audit.Run(context.Background(), scaledOptions(t, fleetDir, os.Getenv(envKillOut), scaledHosts(killHosts), col))
	fmt.Println("DONE", err)
	select {}
}

// A streaming run of 2,000 hosts killed mid-collection publishes nothing: no run
// directory under its final name, no run in history; the next run succeeds and
// verifies.
func TestKillMidCollection(t *testing.T) {
	if testing.Short() {
		t.Skip("kill test spawns processes")
	}
	dir := t.TempDir()
	fleetDir, out := filepath.Join(dir, "fleet"), filepath.Join(dir, "out")
	f, err := samples.Scale(killHosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WriteEvidence(fleetDir); err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{1, 700, 1900} {
		t.Run(fmt.Sprintf("after-%d-hosts", after), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestKillHelper$")
			cmd.Env = append(os.Environ(), envKillChild+"="+fleetDir, envKillOut+"="+out, envKillAfter+"="+strconv.Itoa(after))
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			for sc.Scan() && sc.Text() != "COLLECTING" {
				if strings.HasPrefix(sc.Text(), "DONE") {
					t.Fatalf("child finished before the kill: %s", sc.Text())
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if runs := published(t, out); len(runs) != 0 {
				t.Fatalf("killed run left published directories: %v", runs)
			}
			// It was streaming: the evidence of the hosts collected so far is staged.
			staged, _ := filepath.Glob(filepath.Join(out, ".*.partial", "evidence", "*.json"))
			if len(staged) < after-collect.DefaultConcurrency {
				t.Errorf("%d evidence files staged after %d hosts collected", len(staged), after)
			}
			if s, err := history.Open(context.Background(), filepath.Join(out, "history.db")); err == nil {
				rs, err := s.Runs(context.Background())
				s.Close()
				if err != nil || len(rs) != 0 {
					t.Fatalf("history after the kill: %v %+v", err, rs)
				}
			}
		})
	}
	// The next run succeeds, and its directory verifies.
	res, err := audit.Run(context.Background(), scaledOptions(t, fleetDir, out, scaledHosts(killHosts), offline.New(fleetDir)))
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Verify(res.Dir, nil); err != nil {
		t.Fatal(err)
	}
	if runs := published(t, out); len(runs) != 1 || runs[0] != res.RunID || res.Report.Coverage.Collected != res.Report.Coverage.Targeted {
		t.Fatalf("after the next run: %v, coverage %+v", runs, res.Report.Coverage)
	}
}

// published lists the run directories under their final names.
func published(t *testing.T, out string) []string {
	t.Helper()
	ents, err := os.ReadDir(out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var runs []string
	for _, e := range ents {
		if e.IsDir() && !report.IsPartial(e.Name()) {
			runs = append(runs, e.Name())
		}
	}
	return runs
}
