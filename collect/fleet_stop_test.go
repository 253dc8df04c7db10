package collect_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestRunFleetStop: after Stop is closed no host starts; hosts in flight finish with
// their own evidence; the rest get a canceled failure naming the stop.
func TestRunFleetStop(t *testing.T) {
	const n, limit = 20, 3
	stop := make(chan struct{})
	started := make(chan struct{}, n)
	release := make(chan struct{})
	c := collect.Func("test", func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		started <- struct{}{}
		<-release
		return &evidence.Evidence{Schema: evidence.Schema, Host: h, Status: evidence.StatusCollected}
	})
	var once sync.Once
	go func() {
		for range limit {
			<-started
		}
		once.Do(func() { close(stop) })
		close(release)
	}()
	var collected, canceled int
	collect.RunFleet(context.Background(), c, fleetHosts(n), collect.FleetOptions{Concurrency: limit, Logger: zerolog.Nop(), Stop: stop}, func(ev *evidence.Evidence) {
		switch {
		case ev.Status == evidence.StatusCollected:
			collected++
		case ev.Failure != nil && ev.Failure.Class == evidence.FailCanceled && strings.HasSuffix(ev.Failure.Message, "not started: the audit was stopped"):
			canceled++
		default:
			t.Errorf("%s: %+v", ev.Host.Name, ev.Failure)
		}
	})
	if collected != limit || canceled != n-limit {
		t.Errorf("collected %d, canceled %d; want %d, %d", collected, canceled, limit, n-limit)
	}
}
