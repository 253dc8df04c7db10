// Package audit runs one audit from plain options: collect every host, interpret the
// evidence, evaluate the rule set against it and the history, build the report, publish
// the run directory atomically and record the run in history. The command line (run,
// demo) and any other driver call Run; nothing here knows about flags or config files.
package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// Options are the inputs of one audit, already loaded and checked.
type Options struct {
	// Hosts is the inventory, in inventory order.
	Hosts        []evidence.HostRef
	RuleSet      *rules.RuleSet
	Entitlements []rules.Entitlement
	Ledger       bool // an entitlement ledger was configured (even an empty one)

	Collector   collect.Collector
	Concurrency int // hosts in flight; 0: collect.DefaultConcurrency

	// OutputDir receives the run directory <OutputDir>/<run-id>/ (created if missing).
	OutputDir string
	// HistoryPath is the history store's file (created if missing).
	HistoryPath string
	Retention   history.Retention
	// Signer, when set, signs manifest.json.
	Signer ed25519.PrivateKey

	ToolVersion string
	ConfigHash  string

	// Now is the wall clock (default time.Now): run ID, start and finish times.
	Now func() time.Time
	// AsOf, when not zero, pins the evaluation time: the audit is evaluated and history
	// read as of AsOf, and the run is not recorded in history, so a re-evaluation of
	// archived evidence never rewrites the store's timeline.
	AsOf time.Time

	Log zerolog.Logger
	// Progress, when set, hears of every host as it completes.
	Progress Progress
}

// Progress receives the collection's progress (the CLI draws a bar from it). Calls come
// from one goroutine at a time.
type Progress interface {
	Start(total int)
	Host(ev *evidence.Evidence)
	Done()
}

// Result is what one audit produced.
type Result struct {
	RunID       string
	Dir         string // the published run directory
	Report      *report.Report
	Evaluation  *rules.Evaluation
	EvaluatedAt time.Time
	// Recorded says the run was recorded in history (false with AsOf).
	Recorded bool
}

// Verdict is the audit's outcome: coverage first, then findings at or above fail_on.
func (r *Result) Verdict() report.Verdict { return r.Report.Verdict() }

// historyWindow is how far back the history-dependent rules look. RDS-GRACE-008's
// window is a rule parameter; loading more than it needs costs little.
const historyWindow = 400 * 24 * time.Hour

// Run runs one audit. An error means no complete run was published, or (wrapped with
// the run directory) the run was published but history could not be written.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Collector == nil || o.RuleSet == nil {
		return nil, errors.New("audit: a collector and a rule set are required")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	started := now().UTC()
	evalAt := started
	pinned := !o.AsOf.IsZero()
	if pinned {
		evalAt = o.AsOf.UTC()
	}

	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("output_dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(o.HistoryPath), 0o755); err != nil {
		return nil, fmt.Errorf("history.path: %w", err)
	}
	store, err := history.Open(ctx, o.HistoryPath)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	defer store.Close()
	runID, err := newRunID(ctx, started, o.OutputDir, store)
	if err != nil {
		return nil, err
	}
	log := o.Log.With().Str("run_id", runID).Logger()
	release, err := store.AcquireRunLock(ctx, runID)
	if err != nil {
		return nil, err
	}
	defer release()
	prev, err := store.Load(ctx, evalAt, historyWindow)
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}

	evs, fs := collectFleet(ctx, o, log)

	ev := rules.Evaluate(rules.Input{
		Now:          evalAt,
		Hosts:        fs,
		Entitlements: o.Entitlements,
		Ledger:       o.Ledger,
		RuleSet:      o.RuleSet,
		History:      prev,
	})
	logRuleCounts(log, ev)
	drift, err := store.Annotate(ctx, ev.Results, evalAt)
	if err != nil {
		return nil, fmt.Errorf("annotate findings from history: %w", err)
	}
	finished := now().UTC()
	rep := report.Build(report.BuildInput{
		Run: report.RunInfo{
			ID:             runID,
			StartedAt:      started,
			FinishedAt:     finished,
			ToolVersion:    o.ToolVersion,
			RuleSetVersion: fmt.Sprint(o.RuleSet.Version),
			RuleSetHash:    o.RuleSet.Hash,
			ConfigHash:     o.ConfigHash,
			Collector:      o.Collector.Name(),
			FailOn:         ev.FailOn,
		},
		Evidence:   evs,
		Facts:      fs,
		Evaluation: report.FromEvaluation(ev, rules.Rules()),
		Drift:      drift,
	})
	dir, err := report.Publish(ctx, o.OutputDir, rep, evs, report.PublishOptions{Signer: o.Signer})
	if err != nil {
		return nil, fmt.Errorf("publish run %s: %w", runID, err)
	}
	res := &Result{RunID: runID, Dir: dir, Report: rep, Evaluation: ev, EvaluatedAt: evalAt}
	if pinned {
		return res, nil
	}
	hosts := make([]history.HostRecord, len(fs))
	for i, f := range fs {
		hosts[i] = history.HostOf(runID, started, f)
	}
	if err := store.Record(ctx, history.RunRecord{
		ID: runID, Started: started, Ended: finished, ToolVersion: o.ToolVersion,
		RuleSetHash: o.RuleSet.Hash, ConfigHash: o.ConfigHash,
		Coverage: history.Coverage{Targeted: rep.Coverage.Targeted, Collected: rep.Coverage.Collected,
			Failed: rep.Coverage.Targeted - rep.Coverage.Collected},
		Hosts: hosts, Results: ev.Results,
		Retention: o.Retention,
	}); err != nil {
		return nil, fmt.Errorf("record run %s in history (reports are published in %s): %w", runID, dir, err)
	}
	res.Recorded = true
	log.Info().Str("dir", dir).Dur("duration", finished.Sub(started)).Msg("run published")
	return res, nil
}

// collectFleet collects every inventory host (each ends with evidence or a classified
// failure) and interprets the evidence; both lists are in inventory order.
func collectFleet(ctx context.Context, o Options, log zerolog.Logger) ([]*evidence.Evidence, []*facts.Facts) {
	order := make(map[string]int, len(o.Hosts))
	for i, h := range o.Hosts {
		order[strings.ToLower(h.Name)] = i
	}
	log.Info().Int("hosts", len(o.Hosts)).Str("source", o.Collector.Name()).Msg("collecting")
	if o.Progress != nil {
		o.Progress.Start(len(o.Hosts))
	}
	evs := make([]*evidence.Evidence, 0, len(o.Hosts))
	collect.RunFleet(ctx, o.Collector, o.Hosts, collect.FleetOptions{
		Concurrency: o.Concurrency,
		Logger:      log,
		Now:         o.Now,
	}, func(ev *evidence.Evidence) {
		evs = append(evs, ev)
		if o.Progress != nil {
			o.Progress.Host(ev)
		}
	})
	if o.Progress != nil {
		o.Progress.Done()
	}
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
