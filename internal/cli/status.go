package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// errStale: no recent complete run (exit ExitStale).
var errStale = errors.New("no recent complete run")

func newStatusCmd(e *env) *cobra.Command {
	var path, maxAge string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "The last run's outcome from latest.json and history; exit 0 when it is complete and recent (a monitoring check)",
		Long: `status reads <output_dir>/latest.json (written after each complete run) and the history
store, prints one line on the last run, and exits 0 when that run collected every host and
finished within --max-age; 3 when it did not collect every host (or was stopped early);
8 when there is no recent complete run (none yet, older than --max-age, or history holds
a newer run than latest.json: the last run did not finish). For a Nagios/Icinga check or
a Kubernetes probe.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			age, err := parseMaxAge(maxAge)
			if err != nil {
				return usageErr(err)
			}
			cfg, err := loadConfig(e, path, nil)
			if err != nil {
				return err
			}
			return runStatus(e, cfg.OutputDir, cfg.History.Path, age)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (its output_dir and history.path are read)")
	cmd.Flags().StringVar(&maxAge, "max-age", "", "the last run must have finished within this long, e.g. 32d, 36h, 90m (default: any age)")
	return cmd
}

// parseMaxAge reads a Go duration or a whole number of days ("32d"); "" is no limit.
func parseMaxAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err == nil && n > 0 && n <= 100*366 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("--max-age: %q is not a positive duration (e.g. 32d, 36h, 90m)", s)
}

// runStatus prints the last run's outcome and returns the error that maps to status's
// exit code.
func runStatus(e *env, outDir, historyPath string, maxAge time.Duration) error {
	l, err := audit.ReadLatest(outDir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(e.stdout, "STALE: no complete run in %s yet (no %s)\n", outDir, audit.LatestName)
		return fmt.Errorf("%w: no %s in %s", errStale, audit.LatestName, outDir)
	}
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	now := e.now().UTC()
	ago := now.Sub(l.FinishedAt).Truncate(time.Minute)
	line := fmt.Sprintf("run %s finished %s (%s ago): verdict %s (%s); %d of %d hosts collected",
		l.RunID, l.FinishedAt.UTC().Format(time.RFC3339), ago, l.Verdict.Status, l.Verdict.Reason, l.Coverage.Collected, l.Coverage.Targeted)
	if l.Partial != nil {
		line += "; PARTIAL: " + l.Partial.Summary()
	}

	// History: the run's findings, and whether a newer run was recorded since.
	var notes []string
	newer := ""
	if _, err := os.Stat(historyPath); err != nil {
		notes = append(notes, fmt.Sprintf("history: no store at %s", historyPath))
	} else if s, err := history.Open(e.ctx, historyPath); err != nil {
		notes = append(notes, fmt.Sprintf("history: %v", err))
	} else {
		runs, err := s.Runs(e.ctx)
		s.Close()
		found := false
		for _, r := range runs {
			switch {
			case r.ID == l.RunID:
				found = true
				notes = append(notes, fmt.Sprintf("history: findings critical %d, high %d, medium %d, low %d, info %d; waived %d; not checked %d",
					r.BySeverity[rules.SevCritical], r.BySeverity[rules.SevHigh], r.BySeverity[rules.SevMedium],
					r.BySeverity[rules.SevLow], r.BySeverity[rules.SevInfo], r.Waived, r.Errors))
			case !history.Imported(r.Origin) && !r.Pinned && r.Started.After(l.StartedAt): // a backfill (--as-of --record) is not the last run
				newer = r.ID
			}
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("history: %v", err))
		} else if !found {
			notes = append(notes, fmt.Sprintf("history: run %s is not recorded in %s", l.RunID, historyPath))
		}
	}

	var verdict string
	var outcome error
	switch {
	case maxAge > 0 && now.Sub(l.FinishedAt) > maxAge:
		verdict = "STALE"
		outcome = fmt.Errorf("%w: the last complete run, %s, finished %s ago (--max-age %s)", errStale, l.RunID, ago, maxAge)
	case newer != "":
		verdict = "STALE"
		outcome = fmt.Errorf("%w: history holds run %s, newer than %s in %s: the last run did not finish", errStale, newer, l.RunID, audit.LatestName)
	case l.Partial != nil || l.Verdict.Status == report.VerdictIncomplete || l.Coverage.Collected < l.Coverage.Targeted:
		verdict = "INCOMPLETE"
		why := fmt.Sprintf("collected %d of %d hosts", l.Coverage.Collected, l.Coverage.Targeted)
		if l.Verdict.Status == report.VerdictIncomplete && l.Verdict.Reason != "" {
			why = l.Verdict.Reason
		}
		outcome = fmt.Errorf("%w: run %s: %s", errCoverage, l.RunID, why)
	default:
		verdict = "OK"
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", verdict, line)
	for _, n := range notes {
		fmt.Fprintln(e.stdout, n)
	}
	if newer != "" {
		fmt.Fprintf(e.stdout, "history: run %s is newer than %s's\n", newer, audit.LatestName)
	}
	return outcome
}
