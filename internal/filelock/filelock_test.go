package filelock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTryLockNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	started := time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)
	l, _, err := TryLock(path, Self("", started))
	if err != nil || l == nil {
		t.Fatalf("first lock: %v", err)
	}
	l.SetRunID("RUN-1")
	l2, holder, err := TryLock(path, Self("RUN-2", started))
	if err != nil || l2 != nil {
		t.Fatalf("second lock while held: %v %v", l2, err)
	}
	if holder.RunID != "RUN-1" || holder.PID != os.Getpid() || !holder.Started.Equal(started) {
		t.Fatalf("holder %+v", holder)
	}
	if got, want := holder.String(), "run RUN-1, pid "; len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("holder string %q", got)
	}
	if ReadOwner(path) != holder {
		t.Fatalf("ReadOwner %+v", ReadOwner(path))
	}
	l.Release()
	l.Release()
	if (ReadOwner(path) != Owner{}) {
		t.Fatalf("owner record left after release: %+v", ReadOwner(path))
	}
	l3, _, err := TryLock(path, Self("RUN-3", started))
	if err != nil || l3 == nil {
		t.Fatalf("lock after release: %v", err)
	}
	l3.Release()
}

func TestAcquireWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	l, _, _ := TryLock(path, Self("HOLDER", time.Now()))
	// wait 0: refused at once, naming the holder.
	got, holder, err := Acquire(context.Background(), path, Self("B", time.Now()), 0, nil)
	if got != nil || err != nil || holder.RunID != "HOLDER" {
		t.Fatalf("wait 0: %v %+v %v", got, holder, err)
	}
	// A wait that runs out.
	waited := 0
	begin := time.Now()
	got, _, err = Acquire(context.Background(), path, Self("B", time.Now()), 150*time.Millisecond, func(Owner) { waited++ })
	if got != nil || err != nil || waited != 1 || time.Since(begin) < 150*time.Millisecond {
		t.Fatalf("timed out wait: %v %v waited %d after %s", got, err, waited, time.Since(begin))
	}
	// A wait that succeeds once the holder releases.
	go func() { time.Sleep(100 * time.Millisecond); l.Release() }()
	got, _, err = Acquire(context.Background(), path, Self("B", time.Now()), 10*time.Second, nil)
	if got == nil || err != nil {
		t.Fatalf("wait for release: %v", err)
	}
	// A cancelled wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = Acquire(ctx, path, Self("C", time.Now()), time.Hour, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}
	got.Release()
}
