//go:build unix

package history

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	switch mode {
	case "first-tx":
		firstTransaction(os.Getenv(envDB))
	case "create-loop":
		createLoop(os.Getenv(envDB))
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
	case "backfill":
		// A run evaluated a month before the store's only run: Record relinks that run's
		// findings inside the transaction.
		killAt := os.Getenv(envKillAt)
		s.testHook = func(stage string, n int) {
			if fmt.Sprintf("%s:%d", stage, n) == killAt {
				fmt.Println("AT", killAt)
				select {}
			}
		}
		rec := bigRun("OLDER", month(0).AddDate(0, -1, 0), relinkHosts)
		rec.Origin = OriginImport
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

// firstTransaction is SQLite creating a store and stopped inside its first transaction,
// where a killed first run stops: the database file exists and is empty, and the rollback
// journal holds its header (page 1 of a new file is not journaled; it reaches the file
// only at commit).
func firstTransaction(path string) {
	db, err := sql.Open("sqlite", path+"?_txlock=immediate&_journal_mode=DELETE")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err == nil {
		_, err = tx.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println("AT first-tx")
	select {} // wait for SIGKILL inside the transaction
}

// createLoop creates store after store (dir/NNNNN.db) through Open, as a first run does,
// until it is killed.
func createLoop(dir string) {
	fmt.Println("START")
	for i := 0; ; i++ {
		s, err := Open(ctx, filepath.Join(dir, fmt.Sprintf("%05d.db", i)))
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		s.Close()
	}
}

// TestKillFirstTransaction: a first run killed while SQLite creates the store leaves an
// empty history.db beside a -journal (issue 14, defect 2). That store never finished its
// first transaction; Open recovers it (SQLite discards the journal) into an empty, working
// history instead of calling it corrupt.
func TestKillFirstTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts child processes and SIGKILLs them at many points (tens of seconds); the full suite and CI run it")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	cmd, sc := child(t, "first-tx", path, "")
	waitLine(t, sc, "AT first-tx")
	kill(t, cmd)
	st, err := os.Stat(path)
	if err != nil || st.Size() != 0 {
		t.Fatalf("killed first transaction left %v, %v; want an empty file", st, err)
	}
	if j, err := os.Stat(path + "-journal"); err != nil || j.Size() == 0 {
		t.Fatalf("killed first transaction left no journal: %v", err)
	}
	checkFreshStore(t, path)
}

// TestKillFirstOpen kills a child that creates stores through Open in a loop, at several
// times; every store it leaves, the interrupted last one too, must open as a history
// (the finished ones and the unfinished one alike are empty).
func TestKillFirstOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts child processes and SIGKILLs them at many points (tens of seconds); the full suite and CI run it")
	}
	unfinished := 0
	for _, d := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 120 * time.Millisecond, 300 * time.Millisecond} {
		t.Run(fmt.Sprintf("after-%s", d), func(t *testing.T) {
			dir := t.TempDir()
			cmd, sc := child(t, "create-loop", dir, "")
			waitLine(t, sc, "START")
			time.Sleep(d)
			kill(t, cmd)
			dbs, err := filepath.Glob(filepath.Join(dir, "*.db"))
			if err != nil || len(dbs) == 0 {
				t.Fatalf("no store created in %s (%v)", d, err)
			}
			for _, db := range dbs {
				if st, err := os.Stat(db); err == nil && st.Size() == 0 {
					unfinished++
				}
				s, err := Open(ctx, db)
				if err != nil {
					t.Fatalf("store left by the killed child: %v", err)
				}
				runs, err := s.Runs(ctx)
				s.Close()
				if err != nil || len(runs) != 0 {
					t.Fatalf("%s: runs %v, err %v; want none", db, runs, err)
				}
			}
			t.Logf("%d stores created", len(dbs))
		})
	}
	t.Logf("%d interrupted while empty", unfinished)
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
		"SELECT * FROM per_user_counts ORDER BY run_id, version",
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
	var hosts, findings, perUser int
	s.db.QueryRow("SELECT group_concat(run_id, ' ') FROM runs").Scan(&runs)
	s.db.QueryRow("SELECT COUNT(*) FROM hosts").Scan(&hosts)
	s.db.QueryRow("SELECT COUNT(*) FROM findings").Scan(&findings)
	s.db.QueryRow("SELECT COUNT(*) FROM per_user_counts").Scan(&perUser)
	return fmt.Sprintf("runs %s hosts %d findings %d per-user %d", runs, hosts, findings, perUser)
}

// TestKillMidRecord kills a child process recording a 10,000-host run at points inside
// the transaction (after the run row and its Per User counts, during hosts, during
// findings, after pruning the prior run, just before commit) and at timed points; the
// store must then be intact and hold exactly what it held before.
func TestKillMidRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts child processes and SIGKILLs them at many points (tens of seconds); the full suite and CI run it")
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
	// The run's Per User counts are in its transaction; the prior run's go with it.
	complete := fmt.Sprintf("runs BIG hosts %d findings %d per-user 2", bigHosts, 2*bigHosts)

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

const relinkHosts = 2000

// TestKillMidRelink kills a child recording a backfilled run (evaluated before the
// store's run) while it recomputes the later run's first-seen dates, and just before the
// commit: the store must hold exactly what it held before. Killed after the commit, the
// later run's findings are persisting since the backfilled month.
func TestKillMidRelink(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts child processes and SIGKILLs them at many points (tens of seconds); the full suite and CI run it")
	}
	path := t.TempDir() + "/history.db"
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, bigRun("PRIOR", month(0), relinkHosts)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := dump(t, path)
	for _, at := range []string{"findings:1000", "relinked:1", "commit:0"} {
		t.Run(strings.ReplaceAll(at, ":", "-"), func(t *testing.T) {
			cmd, sc := child(t, "backfill", path, at)
			waitLine(t, sc, "AT "+at)
			kill(t, cmd)
			if after := dump(t, path); after != before {
				t.Fatalf("store changed by a backfill killed at %s: %s", at, counts(t, path))
			}
		})
	}
	cmd, sc := child(t, "backfill", path, "committed:0")
	waitLine(t, sc, "AT committed:0")
	kill(t, cmd)
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fs, err := s.Findings(ctx, "PRIOR")
	if err != nil || len(fs) != 2*relinkHosts {
		t.Fatalf("PRIOR findings %d (%v)", len(fs), err)
	}
	for _, f := range fs {
		if f.Status() != "persisting" || !f.FirstSeen.Equal(month(0).AddDate(0, -1, 0)) {
			t.Fatalf("after the backfill committed, PRIOR's %s is %s since %v", f.ID, f.Status(), f.FirstSeen)
		}
	}
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
		// The run row: run_id, started_at, ended_at, tool_version, ruleset_hash,
		// config_hash, targeted, collected, failed, origin, recorded_at (11th, none of
		// the earlier ones empty in bigRun), then schema 2's columns.
		if f := strings.Fields(l); strings.HasPrefix(l, "PRIOR ") && len(f) > 10 {
			l = strings.Join(append(f[:10:10], f[11:]...), " ")
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
