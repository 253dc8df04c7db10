package collect_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
)

func fleetHosts(n int) []evidence.HostRef {
	hosts := make([]evidence.HostRef, n)
	for i := range hosts {
		hosts[i] = evidence.HostRef{Name: fmt.Sprintf("h%03d", i)}
	}
	return hosts
}

func TestRunFleetEveryHostOnceAndBounded(t *testing.T) {
	const n, limit = 100, 7
	var inFlight, maxSeen atomic.Int64
	release := make(chan struct{})
	c := collect.Func("test", func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		cur := inFlight.Add(1)
		for {
			m := maxSeen.Load()
			if cur <= m || maxSeen.CompareAndSwap(m, cur) {
				break
			}
		}
		if h.Name == "h000" {
			<-release // the first host finishes last: results stream in completion order
		}
		defer inFlight.Add(-1)
		switch h.Name {
		case "h013":
			panic("boom")
		case "h014":
			return nil
		}
		return &evidence.Evidence{Schema: evidence.Schema, Host: h, Status: evidence.StatusCollected}
	})
	seen := map[string]int{}
	var order []string
	var logs bytes.Buffer
	log := zerolog.New(zerolog.SyncWriter(&logs))
	collect.RunFleet(context.Background(), c, fleetHosts(n), collect.FleetOptions{Concurrency: limit, Logger: log}, func(ev *evidence.Evidence) {
		seen[ev.Host.Name]++
		order = append(order, ev.Host.Name)
		if len(order) == n-1 {
			close(release)
		}
		switch ev.Host.Name {
		case "h013", "h014":
			if ev.Status != evidence.StatusFailed || ev.Failure.Class != evidence.FailInternal {
				t.Errorf("%s: want internal failure, got %+v", ev.Host.Name, ev.Failure)
			}
		}
		// A panic's stack goes to the log, never into the failure message (it ends up
		// in report.json, the workbook and the evidence).
		if ev.Host.Name == "h013" {
			if m := ev.Failure.Message; m != "collect h013: collector panicked: boom" {
				t.Errorf("panic message %q: want only the panic value", m)
			}
		}
	})
	if l := logs.String(); !strings.Contains(l, `"level":"error"`) || !strings.Contains(l, "goroutine") || !strings.Contains(l, `"host":"h013"`) {
		t.Errorf("panic stack not logged at error level with the host: %s", l)
	}
	if len(seen) != n {
		t.Fatalf("%d hosts emitted, want %d", len(seen), n)
	}
	for h, k := range seen {
		if k != 1 {
			t.Errorf("%s emitted %d times", h, k)
		}
	}
	if order[n-1] != "h000" {
		t.Errorf("results not streamed in completion order: last %s", order[n-1])
	}
	if m := maxSeen.Load(); m > limit {
		t.Errorf("%d in flight, limit %d", m, limit)
	}
}

func TestRunFleetCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var started sync.WaitGroup
	started.Add(2)
	c := collect.Func("test", func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		started.Done()
		<-ctx.Done()
		return evidence.NewFailure(h, "test", time.Now(), evidence.StatusFailed, evidence.FailCanceled, "canceled in flight")
	})
	go func() { started.Wait(); cancel() }()
	got := map[string]*evidence.Evidence{}
	collect.RunFleet(ctx, c, fleetHosts(10), collect.FleetOptions{Concurrency: 2}, func(ev *evidence.Evidence) { got[ev.Host.Name] = ev })
	if len(got) != 10 {
		t.Fatalf("%d hosts emitted, want 10", len(got))
	}
	for name, ev := range got {
		if ev.Status != evidence.StatusFailed || ev.Failure.Class != evidence.FailCanceled {
			t.Errorf("%s: %s %+v", name, ev.Status, ev.Failure)
		}
	}
}
