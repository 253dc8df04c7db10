package collect

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// DefaultConcurrency is the default number of hosts collected at once.
//
// WinRM's own limits (MaxShellsPerUser, MaxConcurrentOperationsPerUser) count per
// target host, and rdsaudit opens one shell per host, so they do not bound the fleet.
// The bound is about our side: open sockets, memory (a license server's output can be
// tens of MiB, held until decoded). The account-lockout window does not depend on it:
// the WinRM collector lets one host at a time try a credential until it has
// authenticated once (winrm.Collector.Collect), so a wrong password costs exactly
// LockoutThreshold failed logons at any concurrency.
const DefaultConcurrency = 16

// FleetOptions configure RunFleet.
type FleetOptions struct {
	Concurrency int            // default DefaultConcurrency
	Logger      zerolog.Logger // fields host, duration, status, class
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Stop, when closed, stops starting hosts (a graceful stop): hosts in flight go
	// on until ctx ends them; hosts not yet started get a canceled failure.
	Stop <-chan struct{}
}

// RunFleet collects every host with c, at most opts.Concurrency at a time, and calls
// emit once per host, in completion order, from one goroutine at a time. Every host gets
// exactly one Evidence: a collector that panics yields an internal failure for that host;
// after ctx is canceled, hosts not yet started get a canceled failure. RunFleet returns
// when every host was emitted.
func RunFleet(ctx context.Context, c Collector, hosts []evidence.HostRef, opts FleetOptions, emit func(*evidence.Evidence)) {
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	name := c.Name() // of the failures RunFleet records itself (canceled, internal)
	results := make(chan *evidence.Evidence)
	var emitWG sync.WaitGroup
	emitWG.Add(1)
	go func() {
		defer emitWG.Done()
		for ev := range results {
			emit(ev)
		}
	}()

	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, h := range hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		case <-opts.Stop:
		}
		if ctx.Err() != nil || stopped(opts.Stop) {
			why := "the audit was stopped"
			if ctx.Err() != nil {
				why = ctx.Err().Error()
			}
			results <- evidence.NewFailure(h, name, opts.Now(), evidence.StatusFailed, evidence.FailCanceled, fmt.Sprintf("collect %s: not started: %s", h.Name, why))
			continue
		}
		wg.Add(1)
		go func(h evidence.HostRef) {
			defer wg.Done()
			defer func() { <-sem }()
			start := opts.Now()
			ev := safeCollect(ctx, c, h, name, start, opts.Logger)
			opts.Logger.Info().Str("host", h.Name).Stringer("duration", opts.Now().Sub(start)).
				Str("status", string(ev.Status)).Str("class", failureClass(ev)).Msg("host done")
			results <- ev
		}(h)
	}
	wg.Wait()
	close(results)
	emitWG.Wait()
}

// stopped reports whether stop is closed (a nil channel never is).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func failureClass(ev *evidence.Evidence) string {
	if ev.Failure == nil {
		return ""
	}
	return string(ev.Failure.Class)
}

// safeCollect runs c.Collect, turning a panic or a nil result into an internal
// failure. A panic's stack goes to the log only: the failure message ends up in
// report.json, the workbook and the evidence, which must not carry stack traces.
func safeCollect(ctx context.Context, c Collector, h evidence.HostRef, name string, start time.Time, log zerolog.Logger) (ev *evidence.Evidence) {
	defer func() {
		if r := recover(); r != nil {
			log.Error().Str("host", h.Name).Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("collector panicked")
			ev = evidence.NewFailure(h, name, start, evidence.StatusFailed, evidence.FailInternal, fmt.Sprintf("collect %s: collector panicked: %v", h.Name, r))
		}
	}()
	ev = c.Collect(ctx, h)
	if ev == nil {
		ev = evidence.NewFailure(h, name, start, evidence.StatusFailed, evidence.FailInternal, fmt.Sprintf("collect %s: collector returned no evidence", h.Name))
	}
	return ev
}
