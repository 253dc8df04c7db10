// Package filelock is an exclusive OS file lock that names its holder: flock on Unix,
// LockFileEx on Windows. The OS releases the lock when the holding process dies, so a
// killed run never leaves a stale lock. The lock file records the owner (run ID, PID,
// host, start) for the message a second process gets. The history store's run lock and
// the output directory's lock are both this lock.
package filelock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Owner is what a lock file says about the process holding it.
type Owner struct {
	RunID   string    `json:"run_id"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

func (o Owner) String() string {
	if o.RunID == "" && o.PID == 0 {
		return "owner unknown"
	}
	run := o.RunID
	if run == "" {
		run = "(run ID not yet chosen)"
	}
	return fmt.Sprintf("run %s, pid %d on %s, started %s", run, o.PID, o.Host, o.Started.UTC().Format(time.RFC3339))
}

// Self is an Owner for this process: its PID and host, the given run ID and start.
func Self(runID string, started time.Time) Owner {
	host, _ := os.Hostname()
	return Owner{RunID: runID, PID: os.Getpid(), Host: host, Started: started.UTC()}
}

// Lock is a held lock. The lock is per open file, so two Locks of one path in one
// process exclude each other too.
type Lock struct {
	f        *os.File
	owner    Owner
	released bool
}

// TryLock takes the lock on path (created 0640 if missing) without waiting and records
// owner in it. When another holds it, it returns a nil Lock and the holder's Owner (as
// far as the file says).
func TryLock(path string, owner Owner) (*Lock, Owner, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, Owner{}, err
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, Owner{}, err
	}
	if !ok {
		// The holder writes its record right after it locks: a moment's retry spares
		// the message an "owner unknown" when both started at once.
		holder := readOwner(f)
		for i := 0; i < 10 && holder == (Owner{}); i++ {
			time.Sleep(10 * time.Millisecond)
			holder = readOwner(f)
		}
		f.Close()
		return nil, holder, nil
	}
	l := &Lock{f: f}
	l.SetOwner(owner)
	return l, Owner{}, nil
}

// Acquire takes the lock on path, waiting up to wait (polling) while another process
// holds it; wait 0 tries once. It returns a nil Lock and the last holder seen when the
// wait ran out, or the context's error when ctx ended first. onWait, when set, is called
// once, with the holder, when Acquire starts to wait.
func Acquire(ctx context.Context, path string, owner Owner, wait time.Duration, onWait func(Owner)) (*Lock, Owner, error) {
	deadline := time.Now().Add(wait)
	delay := 20 * time.Millisecond
	for first := true; ; first = false {
		if err := ctx.Err(); err != nil {
			return nil, Owner{}, err
		}
		l, holder, err := TryLock(path, owner)
		if err != nil || l != nil {
			return l, holder, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, holder, nil
		}
		if first && onWait != nil {
			onWait(holder)
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, Owner{}, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// SetOwner rewrites the owner record (e.g. once the run ID is known). Best effort: the
// record is for messages only, the OS lock is what excludes.
func (l *Lock) SetOwner(o Owner) {
	if l == nil || l.released {
		return
	}
	l.owner = o
	b, _ := json.Marshal(o)
	b = append(b, '\n')
	// Write, then cut what is left of a longer record: a reader never sees an empty
	// file meanwhile, and readOwner decodes only the first JSON value.
	if _, err := l.f.WriteAt(b, 0); err == nil {
		_ = l.f.Truncate(int64(len(b)))
	}
}

// SetRunID records the run ID in the owner record, keeping the rest.
func (l *Lock) SetRunID(id string) {
	if l == nil {
		return
	}
	o := l.owner
	o.RunID = id
	l.SetOwner(o)
}

// Release clears the owner record and unlocks; it is safe to call more than once.
func (l *Lock) Release() {
	if l == nil || l.released {
		return
	}
	l.released = true
	_ = l.f.Truncate(0)
	_ = unlock(l.f)
	_ = l.f.Close()
}

// ReadOwner returns what the lock file at path says about its holder, without locking
// (a zero Owner when nobody holds it or the file is missing).
func ReadOwner(path string) Owner {
	f, err := os.Open(path)
	if err != nil {
		return Owner{}
	}
	defer f.Close()
	return readOwner(f)
}

func readOwner(f *os.File) Owner {
	var o Owner
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil && len(b) == 0 {
		return o
	}
	if json.NewDecoder(bytes.NewReader(b)).Decode(&o) != nil {
		return Owner{}
	}
	return o
}
