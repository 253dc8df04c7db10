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
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/directory"
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
	// Directory, when set, reads Per User CALs from Active Directory (directory.go);
	// ReclaimAfter is the inactivity that makes a holder a reclaim candidate.
	Directory    directory.Source
	ReclaimAfter time.Duration

	// OutputDir receives the run directory <OutputDir>/<run-id>/ (created if missing).
	OutputDir string
	// OutputLockWait is how long to wait while another run holds OutputDir's lock
	// (outdir.go); 0 refuses at once (ErrOutputLocked).
	OutputLockWait time.Duration
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
	// read as of AsOf. Such a run is not recorded in history unless Record is set, so a
	// re-evaluation of archived evidence never rewrites the store's timeline by accident.
	AsOf time.Time
	// Record, with AsOf, records the pinned run in history at its evaluation time (a
	// backfill, as `import` would place it; runs evaluated later are relinked). latest.json
	// and the run-directory retention are left alone: a backfill is not the latest run.
	Record bool

	Log zerolog.Logger
	// Progress, when set, hears of every host as it completes.
	Progress Progress

	// Stop, when set, stops the audit gracefully (stop.go): no host started after
	// Stop; hosts in flight canceled StopGrace later; the run published marked
	// partial, or nothing published when DiscardOnStop (Run returns ErrStopped).
	Stop          *Stopper
	StopGrace     time.Duration
	DiscardOnStop bool
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
	// Recorded says the run was recorded in history (false with AsOf, unless Record).
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

	if err := os.MkdirAll(o.OutputDir, 0o750); err != nil {
		return nil, fmt.Errorf("output_dir: %w", err)
	}
	outLock, err := lockOutputDir(ctx, o)
	if err != nil {
		if stoppedBeforeStart(o) {
			return nil, fmt.Errorf("%w: stopped while waiting for the output directory; nothing published", ErrStopped)
		}
		return nil, err
	}
	defer outLock.Release() // after latest.json and retention
	if err := os.MkdirAll(filepath.Dir(o.HistoryPath), 0o750); err != nil {
		return nil, fmt.Errorf("history.path: %w", err)
	}
	store, err := history.Open(ctx, o.HistoryPath)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	defer store.Close()
	// The history lock before the run ID: two runs into different output directories
	// sharing one store never choose the same ID.
	release, err := store.AcquireRunLock(ctx, "")
	if err != nil {
		return nil, err
	}
	defer release()
	runID, err := newRunID(ctx, started, o.OutputDir, store)
	if err != nil {
		return nil, err
	}
	log := o.Log.With().Str("run_id", runID).Logger()
	claimOutputDir(outLock, o, runID, log)
	prev, err := store.Load(ctx, evalAt, historyWindow)
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}
	names := make([]string, len(o.Hosts))
	for i, h := range o.Hosts {
		names[i] = h.Name
	}
	stage, err := report.NewStage(o.OutputDir, runID, names)
	if err != nil {
		return nil, err
	}
	defer stage.Abort() // removes the staging directory unless it was published

	if stoppedBeforeStart(o) {
		return nil, fmt.Errorf("%w: stopped before any host was started; nothing published", ErrStopped)
	}
	var t timings
	mark := t.start(now)
	hosts, partial, err := collectFleet(ctx, o, stage, log)
	if err != nil {
		return nil, err
	}
	if partial != nil {
		if o.DiscardOnStop {
			log.Warn().Str("reason", partial.Reason).Msg("run stopped: nothing published (collection.on_stop: discard)")
			return nil, fmt.Errorf("%w: %s; nothing published (collection.on_stop: discard)", ErrStopped, partial.Summary())
		}
		log.Warn().Str("reason", partial.Reason).Int("not_started", partial.NotStarted).Int("canceled", partial.Canceled).Msg("run stopped: publishing it marked partial")
	}
	fs := make([]*facts.Facts, len(hosts))
	for i := range hosts {
		fs[i] = hosts[i].Facts
	}
	perUser, err := collectDirectory(ctx, o, stage, evalAt, log)
	if err != nil {
		return nil, err
	}
	t.Collect = mark()

	ev := rules.Evaluate(rules.Input{
		PerUser:      perUserSummary(perUser),
		Now:          evalAt,
		Hosts:        fs,
		Entitlements: o.Entitlements,
		Ledger:       o.Ledger,
		RuleSet:      o.RuleSet,
		History:      prev,
	})
	logRuleCounts(log, ev)
	t.Evaluate = mark()
	drift, err := store.Annotate(ctx, ev.Results, evalAt)
	if err != nil {
		return nil, fmt.Errorf("annotate findings from history: %w", err)
	}
	t.Annotate = mark()
	// The previous run's report gives the changes in key packs, issued CALs and CAL
	// position (issue 11); without it the drift has findings only.
	var previous *report.Report
	if drift != nil && drift.PreviousRunID != "" && filepath.Base(drift.PreviousRunID) == drift.PreviousRunID {
		if previous, err = report.ReadPrevious(filepath.Join(o.OutputDir, drift.PreviousRunID, "report.json")); err != nil {
			log.Warn().Err(err).Msg("drift without key-pack and CAL position changes")
			previous = nil
		}
	}
	// History's Per User counts of the previous run give the month-over-month change of
	// the users holding Per User CALs (issue 15).
	var prevPerUser []report.PerUserCount
	if drift != nil && perUser != nil {
		counts, err := store.PerUserCountsOf(ctx, drift.PreviousRunID)
		if err != nil {
			return nil, fmt.Errorf("read the previous run's Per User counts from history: %w", err)
		}
		prevPerUser = history.ReportCounts(counts)
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
			EvaluatedAt:    evalAt,
			Pinned:         pinned,
			Partial:        partial,
		},
		Hosts:           hosts,
		Evaluation:      report.FromEvaluation(ev, rules.Rules()),
		Drift:           drift,
		Previous:        previous,
		PerUser:         perUser,
		PreviousPerUser: prevPerUser,
	})
	if err := attachSource(o, rep, stage, log); err != nil {
		return nil, err
	}
	t.Report = mark()
	dir, err := stage.Publish(ctx, rep, report.PublishOptions{Signer: o.Signer})
	if err != nil {
		return nil, fmt.Errorf("publish run %s: %w", runID, err)
	}
	t.Publish = mark()
	res := &Result{RunID: runID, Dir: dir, Report: rep, Evaluation: ev, EvaluatedAt: evalAt}
	if pinned && !o.Record {
		t.log(log.Info().Str("dir", dir).Bool("recorded", false), now().Sub(started)).Msg("run published")
		return res, nil
	}
	records := make([]history.HostRecord, len(fs))
	for i, f := range fs {
		records[i] = history.HostOf(runID, evalAt, f)
	}
	if err := store.Record(ctx, history.RunRecord{
		ID: runID, Started: started, Ended: finished, ToolVersion: o.ToolVersion,
		EvaluatedAt: evalAt, Pinned: pinned, Window: rep.Run.CollectionWindow,
		RuleSetHash: o.RuleSet.Hash, ConfigHash: o.ConfigHash,
		Coverage: history.Coverage{Targeted: rep.Coverage.Targeted, Collected: rep.Coverage.Collected,
			Failed: rep.Coverage.Targeted - rep.Coverage.Collected},
		Hosts: records, Results: ev.Results,
		PerUser:   history.PerUserOf(perUser), // in the run's transaction
		Retention: o.Retention,
	}); err != nil {
		return nil, fmt.Errorf("record run %s in history (reports are published in %s): %w", runID, dir, err)
	}
	t.Record = mark()
	res.Recorded = true
	if pinned { // a backfill: latest.json and the run directories' retention untouched
		t.log(log.Info().Str("dir", dir).Bool("recorded", true).Time("evaluated_at", evalAt), now().Sub(started)).Msg("run published")
		return res, nil
	}
	if err := finishOutputDir(o, rep, finished, log); err != nil {
		return nil, fmt.Errorf("run %s is published in %s and recorded in history, but: %w", runID, dir, err)
	}
	t.log(log.Info().Str("dir", dir).Bool("recorded", true), now().Sub(started)).Msg("run published")
	return res, nil
}

// stoppedBeforeStart reports a stop requested before collection began: such a run has
// nothing to publish, whatever collection.on_stop says.
func stoppedBeforeStart(o Options) bool { return o.Stop != nil && o.Stop.Stopped() }

// timings are the durations of an audit's stages, logged with "run published".
type timings struct {
	Collect, Evaluate, Annotate, Report, Publish, Record time.Duration
}

// start returns a function that returns the time since the previous call (or start).
func (t *timings) start(now func() time.Time) func() time.Duration {
	last := now()
	return func() time.Duration {
		n := now()
		d := n.Sub(last)
		last = n
		return d
	}
}

// log adds the total and each stage's duration, with units (e.g. "1.5s", "22.5ms").
func (t *timings) log(e *zerolog.Event, total time.Duration) *zerolog.Event {
	return e.Stringer("duration", total).Stringer("collect", t.Collect).Stringer("evaluate", t.Evaluate).
		Stringer("annotate", t.Annotate).Stringer("report", t.Report).Stringer("publish", t.Publish).Stringer("record", t.Record)
}

// collectFleet collects every inventory host (each ends with evidence or a classified
// failure), stages each host's evidence as soon as it is collected, in the goroutine
// that collected it, and keeps only what the rules and the report need (facts, source,
// time, evidence reference), in inventory order. A staging failure (the disk) stops
// the collection: no complete run can be published.
func collectFleet(ctx context.Context, o Options, stage *report.Stage, log zerolog.Logger) ([]report.HostInput, *report.Partial, error) {
	order := make(map[string]int, len(o.Hosts))
	for i, h := range o.Hosts {
		order[strings.ToLower(h.Name)] = i
	}
	log.Info().Int("hosts", len(o.Hosts)).Str("source", o.Collector.Name()).Msg("collecting")
	if o.Progress != nil {
		o.Progress.Start(len(o.Hosts))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := &stagingCollector{Collector: o.Collector, stage: stage, cancel: cancel, staged: make(map[*evidence.Evidence]report.HostInput, len(o.Hosts))}
	hosts := make([]report.HostInput, 0, len(o.Hosts))
	stop := watchStop(o, cancel, log)
	collect.RunFleet(ctx, sc, o.Hosts, collect.FleetOptions{
		Concurrency: o.Concurrency,
		Logger:      log,
		Now:         o.Now,
		Stop:        stop.stopCh(),
	}, func(ev *evidence.Evidence) {
		if o.Progress != nil {
			o.Progress.Host(ev)
		}
		stop.count(ev, !sc.fromCollector(ev))
		if h, ok := sc.take(ev); ok {
			hosts = append(hosts, h)
		}
	})
	partial := stop.end()
	if o.Progress != nil {
		o.Progress.Done()
	}
	if sc.err != nil {
		return nil, nil, fmt.Errorf("stage evidence: %w", sc.err)
	}
	sort.Slice(hosts, func(i, j int) bool {
		return order[strings.ToLower(hosts[i].Facts.Host.Name)] < order[strings.ToLower(hosts[j].Facts.Host.Name)]
	})
	return hosts, partial, nil
}

// stagingCollector stages each host's evidence and interprets it right after it is
// collected, so the evidence document can be dropped before the next host.
type stagingCollector struct {
	collect.Collector
	stage  *report.Stage
	cancel context.CancelFunc

	mu     sync.Mutex
	staged map[*evidence.Evidence]report.HostInput // until the fleet runner emits it
	err    error                                   // the first staging failure
}

func (c *stagingCollector) Collect(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
	ev := c.Collector.Collect(ctx, h)
	if ev == nil {
		return nil
	}
	if in, ok := c.stageHost(ev); ok {
		c.mu.Lock()
		c.staged[ev] = in
		c.mu.Unlock()
	}
	return ev
}

// stageHost writes ev to the stage and interprets it; false after a staging failure
// (the first one is kept and stops the collection).
func (c *stagingCollector) stageHost(ev *evidence.Evidence) (report.HostInput, bool) {
	ref, err := c.stage.AddEvidence(ev)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
			c.cancel()
		}
		c.mu.Unlock()
		return report.HostInput{}, false
	}
	in := report.HostInput{Facts: facts.Interpret(ev), Collector: ev.Collector, CollectedAt: ev.CollectedAt, Evidence: ref}
	if o, ok := collect.As[collect.Origin](c.Collector); ok {
		in.Collector = o.Origin(ev) // relayed evidence (bundles): where it came from
	}
	return in, true
}

// take returns the staged form of an emitted host. Evidence the fleet runner made
// itself (a host not started, a collector that panicked) is staged here.
func (c *stagingCollector) take(ev *evidence.Evidence) (report.HostInput, bool) {
	c.mu.Lock()
	in, ok := c.staged[ev]
	delete(c.staged, ev)
	c.mu.Unlock()
	if ok {
		return in, true
	}
	return c.stageHost(ev)
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
// name is taken by a run directory or a recorded run (two runs within one second). It
// is called holding the output directory's lock, so two runs into one output directory
// never choose the same ID, whatever their history stores.
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
