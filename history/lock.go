package history

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// LockOwner is what the run lock file says about the run holding it.
type LockOwner struct {
	RunID   string    `json:"run_id"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

func (o LockOwner) String() string {
	if o.RunID == "" && o.PID == 0 {
		return "owner unknown"
	}
	return fmt.Sprintf("run %s, pid %d on %s, started %s", o.RunID, o.PID, o.Host, o.Started.UTC().Format(time.RFC3339))
}

// LockPath is the run lock file of the store at path.
func LockPath(path string) string { return path + ".lock" }

// AcquireRunLock takes the store's run lock: an OS file lock (flock on Unix, LockFileEx
// on Windows) on <store>.lock, which the OS releases when the process dies, so a killed
// run never leaves a stale lock. The file records the owner (run ID, PID, host, start)
// for the message a second run gets: an error wrapping ErrLocked. release unlocks; it is
// safe to call more than once. The lock is per open file, so two Store handles in one
// process exclude each other too.
func (s *Store) AcquireRunLock(ctx context.Context, runID string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lp := LockPath(s.path)
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock history store %s: %w", s.path, err)
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock history store %s: %w", s.path, err)
	}
	if !ok {
		owner := readOwner(f)
		f.Close()
		return nil, fmt.Errorf("history store %s is locked by %s: %w", s.path, owner, ErrLocked)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(LockOwner{RunID: runID, PID: os.Getpid(), Host: host, Started: s.now().UTC()})
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(append(b, '\n'), 0)
	}
	released := false
	return func() {
		if released {
			return
		}
		released = true
		_ = f.Truncate(0)
		_ = unlock(f)
		_ = f.Close()
	}, nil
}

func readOwner(f *os.File) LockOwner {
	var o LockOwner
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil && len(b) == 0 {
		return o
	}
	_ = json.Unmarshal([]byte(strings.TrimSpace(string(b))), &o)
	return o
}
