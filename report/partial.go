package report

import (
	"fmt"
	"time"
)

// Partial marks a run that was stopped (SIGINT/SIGTERM) before every host was
// collected. Every targeted host is still in the report: those not collected because
// of the stop have failure class canceled. Such a run is published complete (manifest,
// evidence, workbook) and clearly marked: run.partial in report.json, a "Run status"
// row on the workbook's Summary sheet, exit code 7.
type Partial struct {
	Reason    string    `json:"reason"` // e.g. "stopped by SIGTERM"
	StoppedAt time.Time `json:"stopped_at"`
	// NotStarted counts the hosts never started; Canceled the hosts in flight canceled
	// after collection.stop_grace.
	NotStarted int `json:"not_started"`
	Canceled   int `json:"canceled"`
}

// Summary says in words what was stopped.
func (p *Partial) Summary() string {
	return fmt.Sprintf("%s at %s UTC; %d hosts not started, %d canceled in flight",
		p.Reason, p.StoppedAt.UTC().Format(time.DateTime), p.NotStarted, p.Canceled)
}
