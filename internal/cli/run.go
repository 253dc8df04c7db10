package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// runFlags are the flags of `run` and `demo`.
type runFlags struct {
	config string
	asOf   string
	fs     *pflag.FlagSet
}

func (f *runFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.asOf, "as-of", "", "evaluate as of this UTC time (RFC 3339) instead of now: reproduces an audit of archived evidence")
	config.BindFlags(cmd.Flags())
	f.fs = cmd.Flags()
}

// pinned returns the --as-of evaluation time, or the zero time when not given.
func (f *runFlags) pinned() (time.Time, error) {
	if f.asOf == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, f.asOf)
	if err != nil {
		return time.Time{}, usageErr(fmt.Errorf("--as-of: %q is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)", f.asOf))
	}
	return t, nil
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	var record bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one audit: collect, evaluate, publish the run directory, record history",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asOf, err := f.pinned()
			if err != nil {
				return err
			}
			if record && asOf.IsZero() {
				return usageErr(errors.New("--record needs --as-of: a run evaluated now is always recorded"))
			}
			cfg, err := loadConfig(e, f.config, f.fs)
			if err != nil {
				return err
			}
			col, err := collectorFor(e, cfg)
			if err != nil {
				return err
			}
			e.stop = audit.NewStopper()
			defer stopOnSignal(e, e.stop)()
			res, err := runAudit(e, cfg, col, asOf, func(o *audit.Options) { o.Record = record })
			if err != nil {
				return err
			}
			return verdictErr(res)
		},
	}
	f.bind(cmd)
	cmd.Flags().BoolVar(&record, "record", false, "with --as-of: record the run in history at its evaluation time (backfill of archived evidence)")
	return cmd
}

// loadConfig loads the configuration (config.Load validates it), then re-creates the
// logger with the configured level and format unless flags chose them.
func loadConfig(e *env, path string, fs *pflag.FlagSet) (*config.Config, error) {
	if path == "" {
		return nil, usageErr(errors.New("--config: a configuration file is required (see samples/config.yaml)"))
	}
	cfg, err := config.Load(path, fs)
	if err != nil {
		return nil, usageErr(err)
	}
	lg, err := e.configLogger(cfg)
	if err != nil {
		return nil, usageErr(err)
	}
	e.log = lg
	return cfg, nil
}

// configLogger is the logger with the configured level and format, unless flags chose
// them.
func (e *env) configLogger(cfg *config.Config) (zerolog.Logger, error) {
	level, format := e.logLevel, e.logFormat
	if level == "" {
		level = cfg.Log.Level
	}
	if format == "" {
		format = cfg.Log.Format
	}
	return newLogger(e.stderr, level, format)
}

// verdictErr maps the audit's verdict to the documented exit code (through the errors
// exitCode knows): an incomplete audit (coverage below 100%) takes precedence over
// findings.
func verdictErr(r *audit.Result) error {
	if p := r.Report.Run.Partial; p != nil {
		return fmt.Errorf("%w: run %s is PARTIAL: %s", audit.ErrStopped, r.RunID, p.Summary())
	}
	v := r.Verdict()
	switch v.Status {
	case report.VerdictIncomplete:
		return fmt.Errorf("%w: %s", errCoverage, v.Reason())
	case report.VerdictFail:
		return fmt.Errorf("%w (%s)", errFindings, v.FailOn)
	}
	return nil
}

// auditOptions loads what an audit needs besides hosts and the collector (rule set,
// ledger, signing key) and maps the configuration to the pipeline's plain options.
// Everything is checked before any host is contacted.
func auditOptions(e *env, cfg *config.Config, col collect.Collector, asOf time.Time) (audit.Options, error) {
	o := audit.Options{
		Collector:   col,
		Concurrency: cfg.Collection.Concurrency,
		OutputDir:   cfg.OutputDir,
		HistoryPath: cfg.History.Path,
		Retention:   history.Retention{KeepRuns: cfg.History.RetentionRuns, KeepMonths: cfg.History.RetentionMonths},
		ToolVersion: ToolVersion(),
		ConfigHash:  cfg.Hash(),
		Now:         e.now,
		AsOf:        asOf,
		Log:         e.log,
		Progress:    newProgressBar(e.stderr),

		Stop:          e.stop,
		StopGrace:     cfg.Collection.StopGrace,
		DiscardOnStop: cfg.Collection.OnStop == config.OnStopDiscard,
	}
	if wrap := hooksOf(e.ctx).wrap; wrap != nil {
		o.Collector = wrap(o.Collector)
	}
	hosts, err := cfg.Hosts()
	if err != nil {
		return o, usageErr(err)
	}
	o.Hosts = make([]evidence.HostRef, len(hosts))
	for i, h := range hosts {
		o.Hosts[i] = h.Ref()
	}
	o.RuleSet = rules.DefaultRuleSet()
	if cfg.RulesFile != "" {
		if o.RuleSet, err = rules.LoadRuleSet(cfg.RulesFile); err != nil {
			return o, usageErr(err)
		}
	}
	if cfg.EntitlementsFile != "" {
		if o.Entitlements, err = rules.LoadEntitlements(cfg.EntitlementsFile); err != nil {
			return o, usageErr(err)
		}
		o.Ledger = true
	}
	if o.Signer, err = loadSigner(cfg); err != nil {
		return o, usageErr(err)
	}
	o.OutputLockWait = cfg.OutputLockWait
	return o, nil
}

// runAudit runs the pipeline for a loaded configuration and prints the summary. Then,
// complete or failed, it reports the run to monitoring (afterRun), unless it was an
// --as-of re-evaluation. set, if any, adjusts the options (run --record).
func runAudit(e *env, cfg *config.Config, col collect.Collector, asOf time.Time, set ...func(*audit.Options)) (res *audit.Result, err error) {
	started := e.now()
	defer func() {
		if asOf.IsZero() {
			afterRun(e, cfg, started, res, err)
		}
	}()
	o, err := auditOptions(e, cfg, col, asOf)
	if err != nil {
		return nil, err
	}
	for _, f := range set {
		f(&o)
	}
	setMemoryLimit(len(o.Hosts))
	res, err = audit.Run(e.ctx, o)
	if err != nil {
		return nil, err
	}
	printSummary(e.stdout, res)
	if p := res.Report.Run.Partial; p != nil {
		fmt.Fprintf(e.stdout, "run is PARTIAL: %s\n", p.Summary())
	}
	switch {
	case !res.Recorded:
		fmt.Fprintf(e.stdout, "evaluated as of %s; not recorded in history\n", res.EvaluatedAt.Format(time.RFC3339))
	case !asOf.IsZero():
		fmt.Fprintf(e.stdout, "evaluated as of %s; recorded in history at that time\n", res.EvaluatedAt.Format(time.RFC3339))
	}
	return res, nil
}

// printSummary writes the human summary of a run to w.
func printSummary(w io.Writer, r *audit.Result) {
	c := r.Report.Coverage
	fmt.Fprintf(w, "run %s published in %s\n", r.RunID, r.Dir)
	fmt.Fprintf(w, "coverage: %d of %d hosts collected", c.Collected, c.Targeted)
	if c.Collected < c.Targeted {
		var parts []string
		for _, cc := range c.ByClass {
			parts = append(parts, fmt.Sprintf("%s %d", cc.Class, cc.Count))
		}
		fmt.Fprintf(w, " (not collected: %s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	counts := map[string]int{}
	waived, errs := 0, 0
	for i := range r.Evaluation.Results {
		res := &r.Evaluation.Results[i]
		if !res.IsFinding() {
			continue
		}
		switch {
		case res.Waived:
			waived++
		case res.Outcome == rules.Error:
			errs++
		default:
			counts[res.Severity.String()]++
		}
	}
	fmt.Fprintf(w, "findings: critical %d, high %d, medium %d, low %d, info %d; waived %d; not checked (evidence missing) %d\n",
		counts["critical"], counts["high"], counts["medium"], counts["low"], counts["info"], waived, errs)
	// The findings' verdict; coverage is on its own line above.
	if v := r.Verdict(); v.FindingsFail() {
		fmt.Fprintf(w, "verdict: FAIL (unwaived findings at or above %s)\n", v.FailOn)
	} else {
		fmt.Fprintf(w, "verdict: PASS (no unwaived finding at or above %s)\n", v.FailOn)
	}
}
