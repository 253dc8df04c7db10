package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/history"
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

// clock returns the evaluation clock: --as-of pinned, else nil (the injected clock).
func (f *runFlags) clock() (Clock, error) {
	if f.asOf == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, f.asOf)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--as-of: %q is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)", f.asOf))
	}
	return func() time.Time { return t }, nil
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one audit: collect, evaluate, publish the run directory, record history",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asOf, err := f.clock()
			if err != nil {
				return err
			}
			cfg, err := loadConfig(e, f.config, f.fs)
			if err != nil {
				return err
			}
			col, err := collectorFor(e, cfg)
			if err != nil {
				return err
			}
			res, err := audit(e.ctx, e, cfg, col, asOf)
			if err != nil {
				return err
			}
			return res.verdict()
		},
	}
	f.bind(cmd)
	return cmd
}

// loadConfig loads and validates the configuration, then re-creates the logger with the
// configured level and format unless flags chose them.
func loadConfig(e *env, path string, fs *pflag.FlagSet) (*config.Config, error) {
	if path == "" {
		return nil, usageErr(errors.New("--config: a configuration file is required (see samples/config.yaml)"))
	}
	cfg, err := config.Load(path, fs)
	if err != nil {
		return nil, usageErr(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, usageErr(err)
	}
	level, format := e.logLevel, e.logFormat
	if level == "" {
		level = cfg.Log.Level
	}
	if format == "" {
		format = cfg.Log.Format
	}
	lg, err := newLogger(e.stderr, level, format)
	if err != nil {
		return nil, usageErr(err)
	}
	e.log = lg
	return cfg, nil
}

// auditResult is what one audit produced.
type auditResult struct {
	RunID  string
	Dir    string
	Report *report.Report
	Eval   *rules.Evaluation
}

// verdict maps the outcome to the documented exit code: an incomplete audit (coverage
// below 100%) takes precedence over findings.
func (r *auditResult) verdict() error {
	c := r.Report.Coverage
	if c.Collected < c.Targeted {
		return fmt.Errorf("%w: %d of %d hosts collected", errCoverage, c.Collected, c.Targeted)
	}
	if r.Eval.Failed() {
		return fmt.Errorf("%w (%s)", errFindings, r.Eval.FailOn)
	}
	return nil
}

// inputs are the non-host inputs of an audit, loaded and checked before any host is
// contacted.
type inputs struct {
	hosts        []config.Host
	ruleSet      *rules.RuleSet
	entitlements []rules.Entitlement
	ledger       bool // an entitlement ledger was configured
	signer       ed25519.PrivateKey
}

func loadInputs(cfg *config.Config) (*inputs, error) {
	hosts, err := cfg.Hosts()
	if err != nil {
		return nil, usageErr(err)
	}
	rs := rules.DefaultRuleSet()
	if cfg.RulesFile != "" {
		if rs, err = rules.LoadRuleSet(cfg.RulesFile); err != nil {
			return nil, usageErr(err)
		}
	}
	in := &inputs{hosts: hosts, ruleSet: rs}
	if cfg.EntitlementsFile != "" {
		if in.entitlements, err = rules.LoadEntitlements(cfg.EntitlementsFile); err != nil {
			return nil, usageErr(err)
		}
		in.ledger = true
	}
	if in.signer, err = loadSigner(cfg); err != nil {
		return nil, usageErr(err)
	}
	return in, nil
}

// audit runs the pipeline: check every input, collect every host, interpret, evaluate
// against the rule set and history, publish the run directory atomically, then record
// the run in history in one transaction.
//
// asOf, when not nil, is the evaluation clock (--as-of): the audit is evaluated as of
// that time and history is read as of it, but the run is not recorded in history, so a
// re-evaluation of archived evidence never rewrites the store's timeline.
func audit(ctx context.Context, e *env, cfg *config.Config, col collect.Collector, asOf Clock) (*auditResult, error) {
	in, err := loadInputs(cfg)
	if err != nil {
		return nil, err
	}
	evalClock := e.now
	if asOf != nil {
		evalClock = asOf
	}
	started := e.now().UTC()
	evalAt := evalClock().UTC()

	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("output_dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(historyPath(cfg)), 0o755); err != nil {
		return nil, fmt.Errorf("history.path: %w", err)
	}
	store, err := history.Open(ctx, historyPath(cfg))
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	defer store.Close()
	runID, err := newRunID(ctx, started, cfg.OutputDir, store)
	if err != nil {
		return nil, err
	}
	log := e.log.With().Str("run_id", runID).Logger()
	release, err := store.AcquireRunLock(ctx, runID)
	if err != nil {
		return nil, err
	}
	defer release()
	prev, err := store.Load(ctx, evalAt, historyWindow)
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}

	evidence, facts := collectFleet(ctx, e, log, cfg, col, in.hosts)

	ev := rules.Evaluate(rules.Input{
		Now:          evalAt,
		Hosts:        facts,
		Entitlements: in.entitlements,
		Ledger:       in.ledger,
		RuleSet:      in.ruleSet,
		History:      prev,
	})
	logRuleCounts(log, ev)
	drift, err := store.Annotate(ctx, ev.Results, evalAt)
	if err != nil {
		return nil, fmt.Errorf("annotate findings from history: %w", err)
	}
	finished := e.now().UTC()
	rep := report.Build(report.BuildInput{
		Run: report.RunInfo{
			ID:             runID,
			StartedAt:      started,
			FinishedAt:     finished,
			ToolVersion:    ToolVersion(),
			RuleSetVersion: fmt.Sprint(in.ruleSet.Version),
			RuleSetHash:    in.ruleSet.Hash,
			ConfigHash:     cfg.Hash(),
			Collector:      collectorName(cfg),
			FailOn:         ev.FailOn,
		},
		Evidence:   evidence,
		Facts:      facts,
		Evaluation: report.FromEvaluation(ev, rules.Rules()),
		Drift:      drift,
	})
	dir, err := report.Publish(ctx, cfg.OutputDir, rep, evidence, report.PublishOptions{Signer: in.signer})
	if err != nil {
		return nil, fmt.Errorf("publish run %s: %w", runID, err)
	}
	res := &auditResult{RunID: runID, Dir: dir, Report: rep, Eval: ev}
	if asOf != nil {
		printSummary(e.stdout, res)
		fmt.Fprintf(e.stdout, "evaluated as of %s; not recorded in history\n", evalAt.Format(time.RFC3339))
		return res, nil
	}
	hosts := make([]history.HostRecord, len(facts))
	for i, f := range facts {
		hosts[i] = history.HostOf(runID, started, f)
	}
	if err := store.Record(ctx, history.RunRecord{
		ID: runID, Started: started, Ended: finished, ToolVersion: ToolVersion(),
		RuleSetHash: in.ruleSet.Hash, ConfigHash: cfg.Hash(),
		Coverage: history.Coverage{Targeted: rep.Coverage.Targeted, Collected: rep.Coverage.Collected,
			Failed: rep.Coverage.Targeted - rep.Coverage.Collected},
		Hosts: hosts, Results: ev.Results,
		Retention: history.Retention{KeepRuns: cfg.History.RetentionRuns, KeepMonths: cfg.History.RetentionMonths},
	}); err != nil {
		return nil, fmt.Errorf("record run %s in history (reports are published in %s): %w", runID, dir, err)
	}
	printSummary(e.stdout, res)
	log.Info().Str("dir", dir).Dur("duration", finished.Sub(started)).Msg("run published")
	return res, nil
}

// collectFleet collects every inventory host (each ends with evidence or a classified
// failure) and interprets the evidence; both lists are in inventory order.
func collectFleet(ctx context.Context, e *env, log zerolog.Logger, cfg *config.Config, col collect.Collector, hosts []config.Host) ([]*evidence.Evidence, []*facts.Facts) {
	refs := make([]evidence.HostRef, len(hosts))
	order := make(map[string]int, len(hosts))
	for i, h := range hosts {
		refs[i] = h.Ref()
		order[strings.ToLower(h.Name)] = i
	}
	log.Info().Int("hosts", len(refs)).Str("source", cfg.Collection.Source).Msg("collecting")
	evs := make([]*evidence.Evidence, 0, len(refs))
	collect.RunFleet(ctx, col, refs, collect.FleetOptions{
		Concurrency: cfg.Collection.Concurrency,
		Logger:      log,
		Progress:    progressWriter(e.stderr),
		Now:         e.now,
		Collector:   collectorName(cfg),
	}, func(ev *evidence.Evidence) { evs = append(evs, ev) })
	sort.Slice(evs, func(i, j int) bool {
		return order[strings.ToLower(evs[i].Host.Name)] < order[strings.ToLower(evs[j].Host.Name)]
	})
	fs := make([]*facts.Facts, len(evs))
	for i, ev := range evs {
		fs[i] = facts.Interpret(ev)
	}
	return evs, fs
}

// logRuleCounts logs each rule's outcome counts at debug level (field rule).
func logRuleCounts(log zerolog.Logger, ev *rules.Evaluation) {
	if log.GetLevel() > zerolog.DebugLevel {
		return
	}
	type counts struct{ pass, fail, errs, na int }
	by := map[string]*counts{}
	var order []string
	for i := range ev.Results {
		r := &ev.Results[i]
		c := by[r.RuleID]
		if c == nil {
			c = &counts{}
			by[r.RuleID] = c
			order = append(order, r.RuleID)
		}
		switch r.Outcome {
		case rules.Pass:
			c.pass++
		case rules.Fail:
			c.fail++
		case rules.Error:
			c.errs++
		default:
			c.na++
		}
	}
	for _, id := range order {
		c := by[id]
		log.Debug().Str("rule", id).Int("pass", c.pass).Int("fail", c.fail).Int("error", c.errs).Int("not_applicable", c.na).Msg("rule evaluated")
	}
}

// newRunID names a run after its start (UTC, to the second), with a suffix when that
// name is taken by a run directory or a recorded run (two runs within one second).
func newRunID(ctx context.Context, started time.Time, outDir string, store *history.Store) (string, error) {
	runs, err := store.Runs(ctx)
	if err != nil {
		return "", fmt.Errorf("read history: %w", err)
	}
	taken := map[string]bool{}
	for _, r := range runs {
		taken[r.ID] = true
	}
	base := started.Format("20060102T150405Z")
	for i := 1; i < 1000; i++ {
		id := base
		if i > 1 {
			id = fmt.Sprintf("%s-%d", base, i)
		}
		if taken[id] {
			continue
		}
		if _, err := os.Stat(filepath.Join(outDir, id)); err == nil {
			continue
		}
		return id, nil
	}
	return "", fmt.Errorf("no free run ID for %s in %s", base, outDir)
}

// historyWindow is how far back the history-dependent rules look. RDS-GRACE-008's
// window is a rule parameter; loading more than it needs costs little.
const historyWindow = 400 * 24 * time.Hour

// historyPath is the history store's file (config.Load fills the default).
func historyPath(cfg *config.Config) string { return cfg.History.Path }

// progressWriter returns w for a progress bar when it is a terminal, else nil.
func progressWriter(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && collect.IsTerminal(f) {
		return w
	}
	return nil
}

// collectorName is the collector recorded in reports.
func collectorName(cfg *config.Config) string {
	if cfg.Collection.Source == config.SourceOffline {
		return "offline"
	}
	return winrm.CollectorWinRM
}

// printSummary writes the human summary of a run to w.
func printSummary(w io.Writer, r *auditResult) {
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
	for i := range r.Eval.Results {
		res := &r.Eval.Results[i]
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
	if r.Eval.Failed() {
		fmt.Fprintf(w, "verdict: FAIL (unwaived findings at or above %s)\n", r.Eval.FailOn)
	} else {
		fmt.Fprintf(w, "verdict: PASS (no unwaived finding at or above %s)\n", r.Eval.FailOn)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
