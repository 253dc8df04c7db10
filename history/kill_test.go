//go:build unix

package history

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kill and lock tests re-execute the test binary as a child process running
// TestHelperProcess, selected by HISTORY_HELPER.
const (
	envHelper = "HISTORY_HELPER"  // record | lock
	envDB     = "HISTORY_DB"      // store path
	envKillAt = "HISTORY_KILL_AT" // stage:n at which the child stops and waits to be killed
	bigHosts  = 10000             // hosts of the killed run (two findings each)
)

// TestHelperProcess is the child process; it does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper process only")
	}
	s, err := Open(ctx, os.Getenv(envDB))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	switch mode {
	case "record":
		killAt := os.Getenv(envKillAt)
		s.testHook = func(stage string, n int) {
			if fmt.Sprintf("%s:%d", stage, n) == killAt {
				fmt.Println("AT", killAt)
				select {} // wait for SIGKILL inside the transaction
			}
		}
		rec := bigRun("BIG", month(1), bigHosts)
		rec.Retention = Retention{KeepRuns: 1} // pruning deletes the prior run inside the transaction
		fmt.Println("START")
		if err := s.Record(ctx, rec); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		fmt.Println("DONE")
		select {}
	case "lock":
		if _, err := s.AcquireRunLock(ctx, "CHILD-RUN"); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		fmt.Println("LOCKED")
		select {}
	}
}

// child starts the helper and returns it with a reader of its stdout lines.
func child(t *testing.T, mode, db, killAt string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envDB+"="+db, envKillAt+"="+killAt)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

// waitLine reads lines until one starts with prefix (failing on ERROR or EOF).
func waitLine(t *testing.T, sc *bufio.Scanner, prefix string) string {
	t.Helper()
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, prefix):
			return l
		case strings.HasPrefix(l, "ERROR"):
			t.Fatalf("child: %s", l)
		}
	}
	t.Fatalf("child exited before %q", prefix)
	return ""
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed by SIGKILL: %v", err)
	}
}

// dump opens the store (which runs the integrity check) and returns its whole content.
func dump(t *testing.T, path string) string {
	t.Helper()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("store after kill: %v", err)
	}
	defer s.Close()
	var b strings.Builder
	for _, q := range []string{
		"SELECT version FROM schema_migrations ORDER BY version",
		"SELECT * FROM runs ORDER BY run_id",
		"SELECT * FROM hosts ORDER BY run_id, host",
		"SELECT * FROM findings ORDER BY run_id, finding_id",
	} {
		rows, err := s.db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		fmt.Fprintf(&b, "%s\n", q)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

func counts(t *testing.T, path string) string {
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var runs string
	var hosts, findings int
	s.db.QueryRow("SELECT group_concat(run_id, ' ') FROM runs").Scan(&runs)
	s.db.QueryRow("SELECT COUNT(*) FROM hosts").Scan(&hosts)
	s.db.QueryRow("SELECT COUNT(*) FROM findings").Scan(&findings)
	return fmt.Sprintf("runs %s hosts %d findings %d", runs, hosts, findings)
}

// TestKillMidRecord kills a child process recording a 10,000-host run at points inside
// the transaction (after the run row, during hosts, during findings, after pruning the
// prior run, just before commit) and at timed points; the store must then be intact and
// hold exactly what it held before.
func TestKillMidRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("kill test spawns processes")
	}
	path := t.TempDir() + "/history.db"
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, bigRun("PRIOR", month(0), 300)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := dump(t, path)
	complete := fmt.Sprintf("runs BIG hosts %d findings %d", bigHosts, 2*bigHosts)

	points := []string{"run:0", "hosts:1000", "hosts:7000", fmt.Sprintf("hosts:%d", bigHosts), "findings:5000",
		fmt.Sprintf("findings:%d", 2*bigHosts), "pruned:0", "commit:0"}
	for _, at := range points {
		t.Run(strings.ReplaceAll(at, ":", "-"), func(t *testing.T) {
			cmd, sc := child(t, "record", path, at)
			waitLine(t, sc, "AT "+at)
			kill(t, cmd)
			if after := dump(t, path); after != before {
				t.Fatalf("store changed by a run killed at %s: %s", at, counts(t, path))
			}
		})
	}
	for _, d := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond} {
		t.Run(fmt.Sprintf("after-%s", d), func(t *testing.T) {
			cmd, sc := child(t, "record", path, "")
			waitLine(t, sc, "START")
			time.Sleep(d)
			kill(t, cmd)
			after := dump(t, path)
			switch {
			case after == before:
			case counts(t, path) == complete:
				// The run committed before the kill; restore the prior state for the next case.
				t.Logf("run committed within %s", d)
				restore(t, path, before)
			default:
				t.Fatalf("partial run after kill at %s: %s", d, counts(t, path))
			}
		})
	}
	// Control: killed after the commit, the run is all there (and pruned the prior one).
	t.Run("after-commit", func(t *testing.T) {
		cmd, sc := child(t, "record", path, "committed:0")
		waitLine(t, sc, "AT committed:0")
		kill(t, cmd)
		if got := counts(t, path); got != complete {
			t.Fatalf("committed run: %s, want %s", got, complete)
		}
	})
}

// restore rebuilds the prior state after a timed child that committed.
func restore(t *testing.T, path, before string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Record(ctx, bigRun("PRIOR", month(0), 300))
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	// recorded_at differs; compare the rest.
	if a, b := stripRecordedAt(dump(t, path)), stripRecordedAt(before); a != b {
		t.Fatal("could not restore the prior state")
	}
}

func stripRecordedAt(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "PRIOR ") {
			f := strings.Fields(l)
			l = strings.Join(f[:len(f)-1], " ")
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestRunLockAcrossProcesses: a second run is refused while another process holds the
// lock, with a message naming the holder; the OS releases the lock when that process is
// killed, so no stale lock remains.
func TestRunLockAcrossProcesses(t *testing.T) {
	s, path := openTemp(t)
	cmd, sc := child(t, "lock", path, "")
	waitLine(t, sc, "LOCKED")
	_, err := s.AcquireRunLock(ctx, "SECOND")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "run CHILD-RUN") ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second run: %v", err)
	}
	t.Log(err)
	kill(t, cmd)
	release, err := s.AcquireRunLock(ctx, "SECOND")
	if err != nil {
		t.Fatalf("lock after the holder died: %v", err)
	}
	release()
}
