package winrm

import (
	"context"
	"errors"
	"testing"
)

// TestCredGate drives the gate's states directly: one probe at a time, waiters honour
// their context, opening admits everyone, retiring refuses everyone.
func TestCredGate(t *testing.T) {
	g := newCredGate()
	release, err := g.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("second probe while the first is out: %v, want context.Canceled", err)
	}
	release()
	release() // idempotent: must not free a slot it does not hold
	r2, err := g.enter(context.Background())
	if err != nil {
		t.Fatalf("probe after release: %v", err)
	}
	waiting := make(chan error)
	go func() { _, err := g.enter(context.Background()); waiting <- err }()
	g.markOpen()
	if err := <-waiting; err != nil {
		t.Fatalf("waiter after open: %v", err)
	}
	r2()
	for i := 0; i < 3; i++ { // open: no limit, no wait (even on a done context)
		if _, err := g.enter(ctx); err != nil {
			t.Fatal(err)
		}
	}

	g = newCredGate()
	r3, _ := g.enter(context.Background())
	go func() { _, err := g.enter(context.Background()); waiting <- err }()
	g.retire()
	if err := <-waiting; !errors.Is(err, errCredentialRetired) {
		t.Fatalf("waiter after retire: %v", err)
	}
	r3()
	g.markOpen()
	if _, err := g.enter(context.Background()); !errors.Is(err, errCredentialRetired) {
		t.Fatalf("retired and open: %v, want retired", err)
	}
}
