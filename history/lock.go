package history

import (
	"context"
	"fmt"

	"github.com/rdsaudit/rdsaudit/internal/filelock"
)

// LockOwner is what the run lock file says about the run holding it.
type LockOwner = filelock.Owner

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
	l, holder, err := filelock.TryLock(LockPath(s.path), filelock.Self(runID, s.now()))
	if err != nil {
		return nil, fmt.Errorf("lock history store %s: %w", s.path, err)
	}
	if l == nil {
		return nil, fmt.Errorf("history store %s is locked by %s: %w", s.path, holder, ErrLocked)
	}
	return l.Release, nil
}
