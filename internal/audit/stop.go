package audit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/report"
)

// ErrStopped: the audit was stopped before every host was collected and, as
// Options.DiscardOnStop asked, nothing was published.
var ErrStopped = errors.New("audit stopped before every host was collected")

// Stopper asks a running audit to stop gracefully (the CLI calls Stop on SIGINT or
// SIGTERM). After Stop, no host is started; hosts in flight may finish within
// Options.StopGrace, then their collection is canceled (a collector still closes what
// it opened: WinRM shells are deleted). Hosts not collected because of the stop get
// failure class canceled, and the run is published complete, marked partial
// (report.Partial), or not at all (Options.DiscardOnStop). A stop after the
// collection changes nothing: the run is complete. Safe for concurrent use.
type Stopper struct {
	once, hurryOnce sync.Once
	stop, hurry     chan struct{}

	mu     sync.Mutex
	reason string
	at     time.Time
}

// NewStopper returns a Stopper that was not stopped.
func NewStopper() *Stopper {
	return &Stopper{stop: make(chan struct{}), hurry: make(chan struct{})}
}

// Stop asks the audit to stop: reason says why ("stopped by SIGTERM"), at is when.
// Only the first call counts.
func (s *Stopper) Stop(reason string, at time.Time) {
	s.once.Do(func() {
		s.mu.Lock()
		s.reason, s.at = reason, at.UTC()
		s.mu.Unlock()
		close(s.stop)
	})
}

// Hurry ends the grace period now: hosts in flight are canceled at once (the CLI calls
// it on a second signal). It implies Stop.
func (s *Stopper) Hurry(reason string, at time.Time) {
	s.Stop(reason, at)
	s.hurryOnce.Do(func() { close(s.hurry) })
}

// Done is closed by Stop.
func (s *Stopper) Done() <-chan struct{} { return s.stop }

// Stopped reports whether Stop was called.
func (s *Stopper) Stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Reason returns why and when Stop was called.
func (s *Stopper) Reason() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason, s.at
}

// stopWatch applies a Stopper to one collection: it cancels the collection when the
// grace period after Stop ends, and counts the hosts the stop left uncollected.
type stopWatch struct {
	s    *Stopper
	done chan struct{} // closed when the collection ended

	notStarted, canceled int // emitted canceled failures, counted after Stop
}

// watchStop starts watching o.Stop for one collection; cancel cancels its context.
// end must be called when the collection returns.
func watchStop(o Options, cancel context.CancelFunc, log zerolog.Logger) *stopWatch {
	w := &stopWatch{s: o.Stop, done: make(chan struct{})}
	if w.s == nil {
		return w
	}
	go func() {
		select {
		case <-w.done:
			return
		case <-w.s.stop:
		}
		reason, _ := w.s.Reason()
		log.Warn().Str("reason", reason).Stringer("stop_grace", o.StopGrace).Msg("stopping: no more hosts are started; hosts in flight may finish within stop_grace")
		t := time.NewTimer(o.StopGrace)
		defer t.Stop()
		select {
		case <-w.done:
			return
		case <-t.C:
			log.Warn().Msg("stop_grace is over: canceling the hosts still in flight")
		case <-w.s.hurry:
			log.Warn().Msg("second stop: canceling the hosts still in flight")
		}
		cancel()
	}()
	return w
}

// stopCh is what the fleet runner watches (nil: never closed).
func (w *stopWatch) stopCh() <-chan struct{} {
	if w.s == nil {
		return nil
	}
	return w.s.stop
}

// count notes an emitted host; fleetMade says the fleet runner made its evidence
// (a host not started) rather than the collector. Called from one goroutine.
func (w *stopWatch) count(ev *evidence.Evidence, fleetMade bool) {
	if w.s == nil || ev.Failure == nil || ev.Failure.Class != evidence.FailCanceled || !w.s.Stopped() {
		return
	}
	if fleetMade {
		w.notStarted++
	} else {
		w.canceled++
	}
}

// end ends the watch and returns the run's partial mark: nil when no host was left
// uncollected by a stop (a complete run).
func (w *stopWatch) end() *report.Partial {
	close(w.done)
	if w.s == nil || w.notStarted+w.canceled == 0 {
		return nil
	}
	reason, at := w.s.Reason()
	return &report.Partial{Reason: reason, StoppedAt: at, NotStarted: w.notStarted, Canceled: w.canceled}
}

// fromCollector reports whether the collector produced ev (it was staged as it was
// collected), rather than the fleet runner (a host not started, a collector panic).
func (c *stagingCollector) fromCollector(ev *evidence.Evidence) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.staged[ev]
	return ok
}
