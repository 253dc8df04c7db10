package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/internal/audit"
)

// hooks let tests drive what the process otherwise takes from the operating system:
// signals, the scheduler's timers, the random delay, the collector. They travel on the
// context given to Run (withHooks); without them everything is real.
type hooks struct {
	signals <-chan os.Signal                          // instead of signal.Notify
	clock   timerClock                                // the scheduler's timers
	jitter  func(max time.Duration) time.Duration     // the random delay in [0, max)
	wrap    func(collect.Collector) collect.Collector // wraps every audit's collector
}

type hooksKey struct{}

func withHooks(ctx context.Context, h *hooks) context.Context {
	return context.WithValue(ctx, hooksKey{}, h)
}

func hooksOf(ctx context.Context) *hooks {
	if ctx != nil {
		if h, ok := ctx.Value(hooksKey{}).(*hooks); ok && h != nil {
			return h
		}
	}
	return &hooks{}
}

// notifySignals delivers SIGINT, SIGTERM and SIGHUP (where the system has it) on the
// returned channel until stop is called.
func notifySignals(e *env) (sigs <-chan os.Signal, stop func()) {
	if h := hooksOf(e.ctx); h.signals != nil {
		return h.signals, func() {}
	}
	c := make(chan os.Signal, 4)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

func isStopSignal(s os.Signal) bool { return s == os.Interrupt || s == syscall.SIGTERM }

// signalName is "SIGINT", "SIGTERM", …
func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// stopOnSignal makes SIGINT/SIGTERM stop the audit of `run` gracefully: the first
// signal stops starting hosts (collection.stop_grace for those in flight), a second
// cancels the hosts in flight at once. SIGHUP is ignored. The returned function ends
// the watch.
func stopOnSignal(e *env, stopper *audit.Stopper) func() {
	sigs, stopNotify := notifySignals(e)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				if !isStopSignal(s) {
					continue
				}
				n++
				reason := "stopped by " + signalName(s)
				if n == 1 {
					e.log.Warn().Str("signal", signalName(s)).Msg("stop requested: finishing the hosts in flight (send it again to cancel them now)")
					stopper.Stop(reason, e.now())
				} else {
					stopper.Hurry(reason, e.now())
				}
			}
		}
	}()
	return func() {
		close(done)
		stopNotify()
	}
}

// stoppedErr says whether a run's error or result is a stop (exit 7).
func stoppedErr(err error) bool {
	return errors.Is(err, audit.ErrStopped)
}
