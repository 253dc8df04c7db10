package collect

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rs/zerolog"
	"golang.org/x/term"
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
	// Progress, when non-nil, receives a one-line progress bar redrawn with \r (give it
	// os.Stderr only when it is a terminal; see IsTerminal).
	Progress io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Collector is the Collector name used for failures RunFleet records itself
	// (canceled, internal); default "winrm".
	Collector string
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
	name := opts.Collector
	if name == "" {
		name = winrm.CollectorWinRM
	}
	results := make(chan *evidence.Evidence)
	var emitWG sync.WaitGroup
	emitWG.Add(1)
	go func() {
		defer emitWG.Done()
		bar := newProgress(opts.Progress, len(hosts))
		for ev := range results {
			bar.add(ev)
			emit(ev)
		}
		bar.done()
	}()

	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, h := range hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			results <- evidence.NewFailure(h, name, opts.Now(), evidence.StatusFailed, evidence.FailCanceled, fmt.Sprintf("collect %s: not started: %v", h.Name, ctx.Err()))
			continue
		}
		wg.Add(1)
		go func(h evidence.HostRef) {
			defer wg.Done()
			defer func() { <-sem }()
			start := opts.Now()
			ev := safeCollect(ctx, c, h, name, start, opts.Logger)
			opts.Logger.Info().Str("host", h.Name).Dur("duration", opts.Now().Sub(start)).
				Str("status", string(ev.Status)).Str("class", failureClass(ev)).Msg("host done")
			results <- ev
		}(h)
	}
	wg.Wait()
	close(results)
	emitWG.Wait()
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

// progress is a minimal one-line bar: "[#####.....] 12/40 ok 10 failed 2".
type progress struct {
	w                 io.Writer
	total, n, ok, bad int
}

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total} }

func (p *progress) add(ev *evidence.Evidence) {
	if p.w == nil {
		return
	}
	p.n++
	if ev.Status == evidence.StatusCollected {
		p.ok++
	} else {
		p.bad++
	}
	const width = 30
	filled := 0
	if p.total > 0 {
		filled = p.n * width / p.total
	}
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d collected %d failed %d ", bar, p.n, p.total, p.ok, p.bad)
}

func (p *progress) done() {
	if p.w != nil && p.n > 0 {
		fmt.Fprintln(p.w)
	}
}

// IsTerminal reports whether f is a terminal (use it to decide on FleetOptions.Progress).
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
