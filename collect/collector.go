package collect

import (
	"context"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Collector reads one host's evidence. Collect never returns nil: a host that cannot be
// collected yields an Evidence with Status failed or skipped and a classified Failure.
// Implementations must be safe for concurrent use.
type Collector interface {
	Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence
}

// CollectorFunc adapts a function to Collector.
type CollectorFunc func(ctx context.Context, host evidence.HostRef) *evidence.Evidence

// Collect calls f.
func (f CollectorFunc) Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence {
	return f(ctx, host)
}
