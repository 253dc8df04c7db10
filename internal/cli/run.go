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
	sel    selectionFlags
	fs     *pflag.FlagSet
}

func (f *runFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.asOf, "as-of", "", "evaluate as of this UTC time (RFC 3339) instead of now: reproduces an audit of archived evidence")
	config.BindFlags(cmd.Flags())
	f.sel.bind(cmd.Flags())
	f.fs = cmd.Flags()
}

// selectionFlags are --hosts and --group (run, demo, schedule, check, collect): which
// inventory hosts the command targets (config.Selection).
type selectionFlags struct{ hosts, groups []string }

func (s *selectionFlags) bind(fs *pflag.FlagSet) {
	fs.StringArrayVar(&s.hosts, "hosts", nil, "only these inventory hosts: names or globs (RDSH-A*), comma-separated or repeated")
	fs.StringArrayVar(&s.groups, "group", nil, "only the hosts of these inventory groups: names or globs, comma-separated or repeated")
}

func (s *selectionFlags) selection() config.Selection {
	return config.Selection{Hosts: config.ParseList(s.hosts), Groups: config.ParseList(s.groups)}
}

// apply restricts cfg's inventory to the selected hosts (a usage error when a pattern
// matches nothing) and logs the restriction.
func (s *selectionFlags) apply(e *env, cfg *config.Config) error {
	sel := s.selection()
	if sel.Empty() {
		return nil
	}
	all, err := cfg.Hosts()
	if err != nil {
		return usageErr(err)
	}
	if err := cfg.Restrict(sel); err != nil {
		return usageErr(err)
	}
	hosts, _ := cfg.Hosts()
	e.log.Info().Int("selected", len(hosts)).Int("inventory", len(all)).
		Strs("hosts", sel.Hosts).Strs("groups", sel.Groups).Msg("inventory restricted by --hosts/--group")
	return nil
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
			if err := applyBundlesFlag(cmd); err != nil {
				return err
			}
			if record && asOf.IsZero() {
				return usageErr(errors.New("--record needs --as-of: a run evaluated now is always recorded"))
			}
			cfg, err := loadConfig(e, f.config, f.fs)
			if err != nil {
				return err
			}
			if err := f.sel.apply(e, cfg); err != nil {
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
	bindBundlesFlag(cmd)
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

		Stop:          e.stop,
		StopGrace:     cfg.Collection.StopGrace,
		DiscardOnStop: cfg.Collection.OnStop == config.OnStopDiscard,
	}
	if wrap := hooksOf(e.ctx).wrap; wrap != nil {
		o.Collector = wrap(o.Collector)
	}
	if o.Collector != nil {
		prog := newProgress(e.stderr, e.log)
		o.Progress, o.Collector = prog, prog.track(o.Collector)
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
	offlineDir := e.directoryDir
	if cfg.Collection.Source == config.SourceOffline {
		offlineDir = cfg.Collection.EvidenceDir
	}
	if cfg.Directory.EvidenceDir != "" {
		offlineDir = cfg.Directory.EvidenceDir
	}
	if o.Directory, err = directorySource(cfg, offlineDir, e.now); err != nil {
		return o, usageErr(err)
	}
	o.ReclaimAfter = cfg.Directory.ReclaimAfter
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
	printBundles(e.stdout, res.Report.Coverage.Bundles)
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
	// The same counts as the workbook's Summary and the Findings sheet's rows
	// (report.FindingsBySeverity): failures (waived ones apart) and rules not checked on
	// a collected host; an uncollected host's unchecked rules are counted separately.
	var parts []string
	var tot report.SeverityRow
	for _, sr := range r.Report.FindingsBySeverity() {
		parts = append(parts, fmt.Sprintf("%s %d", sr.Severity, sr.Failed))
		tot.Listed, tot.Waived, tot.NotChecked = tot.Listed+sr.Listed, tot.Waived+sr.Waived, tot.NotChecked+sr.NotChecked
	}
	fmt.Fprintf(w, "findings: %d listed: failed %s; waived %d; not checked %d; rules not checked on uncollected hosts %d\n",
		tot.Listed, strings.Join(parts, ", "), tot.Waived, tot.NotChecked, c.NotChecked)
	// The verdict as report.json and the workbook's Summary state it (report.Verdict).
	v := r.Verdict()
	fmt.Fprintf(w, "verdict: %s — %s\n", v.Word(), strings.Join(v.Reasons(), "; "))
}
