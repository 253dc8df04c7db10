package cli

import (
	"time"

	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/internal/monitor"
)

// afterRun reports one run, complete (res set, err nil) or failed, to monitoring: the
// metrics textfile and the webhook of cfg (monitor.AfterRun). It never fails: problems
// are logged. runAudit calls it; a driver that runs audits another way calls it once per
// run too.
func afterRun(e *env, cfg *config.Config, started time.Time, res *audit.Result, err error) {
	monitor.AfterRun(e.ctx, monitor.SettingsFrom(cfg, ToolVersion()),
		monitor.Outcome{Started: started, Finished: e.now(), Result: res, Err: err}, e.log)
}
