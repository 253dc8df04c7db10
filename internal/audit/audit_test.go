package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// sampleNow is the fixed clock the sample fleet was written against (samples/README.md).
var sampleNow = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// sampleOptions builds an audit of the sample fleet from plain values, as any driver of
// the pipeline does (no flags, no config file in the pipeline itself).
func sampleOptions(t *testing.T, out string) audit.Options {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "samples", "config.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := cfg.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	refs := make([]evidence.HostRef, len(hosts))
	for i, h := range hosts {
		refs[i] = h.Ref()
	}
	rs, err := rules.LoadRuleSet(cfg.RulesFile)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := rules.LoadEntitlements(cfg.EntitlementsFile)
	if err != nil {
		t.Fatal(err)
	}
	col := offline.New(cfg.Collection.EvidenceDir)
	col.Now = func() time.Time { return sampleNow }
	return audit.Options{
		Hosts: refs, RuleSet: rs, Entitlements: ents, Ledger: true,
		Collector: col, OutputDir: out, HistoryPath: filepath.Join(out, "history.db"),
		ToolVersion: "test", ConfigHash: cfg.Hash(),
		Now: func() time.Time { return sampleNow }, Log: zerolog.Nop(),
	}
}

type countingProgress struct{ total, hosts, done int }

func (p *countingProgress) Start(total int)            { p.total = total }
func (p *countingProgress) Host(ev *evidence.Evidence) { p.hosts++ }
func (p *countingProgress) Done()                      { p.done++ }

func TestRunSampleFleet(t *testing.T) {
	out := t.TempDir()
	o := sampleOptions(t, out)
	prog := &countingProgress{}
	o.Progress = prog
	res, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if prog.total != len(o.Hosts) || prog.hosts != len(o.Hosts) || prog.done != 1 {
		t.Errorf("progress %+v for %d hosts", prog, len(o.Hosts))
	}
	// Two sample hosts cannot be collected on purpose (samples/README.md): the verdict
	// is incomplete, whatever the findings, and it is the report's own verdict.
	v := res.Verdict()
	if v.Status != report.VerdictIncomplete || v.Targeted != len(o.Hosts) || v.Collected != len(o.Hosts)-2 || !v.FindingsFail() {
		t.Errorf("verdict %+v", v)
	}
	if v != res.Report.Verdict() || res.Report.Run.Collector != "offline" {
		t.Errorf("result verdict %+v, report's %+v, collector %q", v, res.Report.Verdict(), res.Report.Run.Collector)
	}
	if !res.Recorded || !res.EvaluatedAt.Equal(sampleNow) || res.Dir != filepath.Join(out, res.RunID) {
		t.Errorf("result %s recorded %v evaluated %v", res.Dir, res.Recorded, res.EvaluatedAt)
	}
	if err := report.Verify(res.Dir, nil); err != nil {
		t.Errorf("published run does not verify: %v", err)
	}

	// Pinned to a past time: evaluated as of then, published, not recorded.
	o.AsOf = sampleNow.AddDate(0, -1, 0)
	o.Now = func() time.Time { return sampleNow.Add(time.Hour) }
	pinned, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Recorded || !pinned.EvaluatedAt.Equal(o.AsOf) || pinned.RunID == res.RunID {
		t.Errorf("pinned run %s recorded %v evaluated %v", pinned.RunID, pinned.Recorded, pinned.EvaluatedAt)
	}
	s, err := history.Open(context.Background(), o.HistoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background())
	if err != nil || len(runs) != 1 || runs[0].ID != res.RunID {
		t.Errorf("history runs %+v (%v), want only %s", runs, err, res.RunID)
	}
	if _, err := os.Stat(filepath.Join(pinned.Dir, "report.json")); err != nil {
		t.Errorf("pinned run not published: %v", err)
	}
}

// A pinned run with Record is recorded at its evaluation time, marked pinned, with its
// evidence's collection window; latest.json stays the live run's (a backfill is not the
// latest run).
func TestPinnedRunRecorded(t *testing.T) {
	out := t.TempDir()
	o := sampleOptions(t, out)
	live, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := os.ReadFile(filepath.Join(out, audit.LatestName))
	if err != nil {
		t.Fatal(err)
	}
	o.AsOf, o.Record = sampleNow.AddDate(0, -1, 0), true
	o.Now = func() time.Time { return sampleNow.Add(time.Hour) }
	res, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recorded || !res.Report.Run.Pinned || !res.Report.Run.EvaluatedAt.Equal(o.AsOf) {
		t.Fatalf("pinned run recorded %v, report pinned %v evaluated %v", res.Recorded, res.Report.Run.Pinned, res.Report.Run.EvaluatedAt)
	}
	s, err := history.Open(context.Background(), o.HistoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background())
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs %+v (%v)", runs, err)
	}
	// Timeline order: the backfill (evaluated a month earlier) first, though made later.
	b, l := runs[0], runs[1]
	if b.ID != res.RunID || !b.EvaluatedAt.Equal(o.AsOf) || !b.Pinned || !b.Started.Equal(sampleNow.Add(time.Hour)) ||
		b.Window == nil || !b.Window.Latest.Equal(res.Report.Run.CollectionWindow.Latest) {
		t.Errorf("backfilled run %+v", b)
	}
	if l.ID != live.RunID || !l.EvaluatedAt.Equal(sampleNow) || l.Pinned {
		t.Errorf("live run %+v", l)
	}
	if after, _ := os.ReadFile(filepath.Join(out, audit.LatestName)); string(after) != string(latest) {
		t.Errorf("latest.json replaced by a backfill")
	}
}
