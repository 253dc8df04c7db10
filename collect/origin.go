package collect

import "github.com/rdsaudit/rdsaudit/evidence"

// Origin is implemented by collectors that relay evidence collected elsewhere (the
// evidence-bundle source, collect/bundle): Origin is the source the report records for
// the host (e.g. "bundle:<site>/<bundle id>"), in place of the evidence's own
// collector, which the evidence document keeps unchanged.
type Origin interface {
	Origin(ev *evidence.Evidence) string
}
