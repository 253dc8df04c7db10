// Package collect runs collectors over a fleet: the Collector interface every evidence
// source implements (WinRM in collect/winrm, files in collect/offline) and the fleet
// runner that gives every targeted host exactly one evidence document or classified
// failure, with bounded concurrency.
package collect

import (
	"context"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Collector reads one host's evidence. Collect never returns nil: a host that cannot be
// collected yields an Evidence with Status failed or skipped and a classified Failure.
// Implementations must be safe for concurrent use.
type Collector interface {
	// Name is the source recorded in reports and in failures the fleet runner records
	// itself ("winrm", "offline").
	Name() string
	Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence
}

// Func returns a Collector named name that calls fn: for wrappers (the demo routes
// inventory hosts to simulator endpoints) and tests.
func Func(name string, fn func(ctx context.Context, host evidence.HostRef) *evidence.Evidence) Collector {
	return funcCollector{name: name, fn: fn}
}

type funcCollector struct {
	name string
	fn   func(ctx context.Context, host evidence.HostRef) *evidence.Evidence
}

func (f funcCollector) Name() string { return f.name }
func (f funcCollector) Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence {
	return f.fn(ctx, host)
}

// Wrap returns a collector that collects through fn around inner (a decorator: progress
// tracking, metrics); As still finds the capabilities inner has besides Collector.
func Wrap(inner Collector, fn func(ctx context.Context, host evidence.HostRef) *evidence.Evidence) Collector {
	return wrapped{funcCollector: funcCollector{name: inner.Name(), fn: fn}, inner: inner}
}

type wrapped struct {
	funcCollector
	inner Collector
}

func (w wrapped) Unwrap() Collector { return w.inner }

// As finds in c, or in the collectors c wraps (Wrap), the first that implements T:
// optional capabilities (Origin, attaching bundle files) survive decoration.
func As[T any](c Collector) (T, bool) {
	for c != nil {
		if t, ok := c.(T); ok {
			return t, true
		}
		u, ok := c.(interface{ Unwrap() Collector })
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	var zero T
	return zero, false
}
