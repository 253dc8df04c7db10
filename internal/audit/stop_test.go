package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/internal/filelock"
	"github.com/rdsaudit/rdsaudit/report"
)

// stoppingOptions: the sample fleet, two hosts at a time; the first host finishes
// within the grace period, the second only when canceled; the Stopper fires when both
// are in flight.
func stoppingOptions(t *testing.T, out string) (audit.Options, *audit.Stopper) {
	o := sampleOptions(t, out)
	o.Concurrency = 2
	o.StopGrace = 200 * time.Millisecond
	stop := audit.NewStopper()
	o.Stop = stop
	inner := o.Collector
	first, second := o.Hosts[0].Name, o.Hosts[1].Name
	started := make(chan struct{}, 2)
	go func() {
		<-started
		<-started
		stop.Stop("stopped by SIGTERM", sampleNow)
	}()
	o.Collector = collect.Func(inner.Name(), func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		switch h.Name {
		case first:
			started <- struct{}{}
			<-stop.Done()
		case second:
			started <- struct{}{}
			<-ctx.Done()
			return evidence.NewFailure(h, inner.Name(), sampleNow, evidence.StatusFailed, evidence.FailCanceled, "collect "+h.Name+": canceled")
		}
		return inner.Collect(ctx, h)
	})
	return o, stop
}

func TestStopPublishesPartialRun(t *testing.T) {
	out := t.TempDir()
	o, _ := stoppingOptions(t, out)
	res, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Report.Run.Partial
	want := report.Partial{Reason: "stopped by SIGTERM", StoppedAt: sampleNow, NotStarted: len(o.Hosts) - 2, Canceled: 1}
	if p == nil || *p != want {
		t.Fatalf("partial = %+v, want %+v", p, want)
	}
	canceled := 0
	for _, c := range res.Report.Coverage.ByClass {
		if c.Class == evidence.FailCanceled {
			canceled = c.Count
		}
	}
	if res.Report.Coverage.Targeted != len(o.Hosts) || canceled != want.NotStarted+want.Canceled {
		t.Errorf("coverage %+v", res.Report.Coverage)
	}
	if err := report.Verify(res.Dir, nil); err != nil {
		t.Errorf("partial run does not verify: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(res.Dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Run struct {
			Partial *report.Partial `json:"partial"`
		} `json:"run"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.Run.Partial == nil || *doc.Run.Partial != want {
		t.Errorf("report.json run.partial = %+v (%v)", doc.Run.Partial, err)
	}
}

func TestStopDiscardPublishesNothing(t *testing.T) {
	out := t.TempDir()
	o, _ := stoppingOptions(t, out)
	o.DiscardOnStop = true
	res, err := audit.Run(context.Background(), o)
	if !errors.Is(err, audit.ErrStopped) || res != nil {
		t.Fatalf("Run = %v, %v; want ErrStopped", res, err)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("discarded run left %s", e.Name())
		}
	}
	if !strings.Contains(err.Error(), "nothing published") {
		t.Errorf("error %v", err)
	}
}

// TestNoStopCompleteRun: a Stopper that never fires leaves the run complete.
func TestNoStopCompleteRun(t *testing.T) {
	o := sampleOptions(t, t.TempDir())
	o.Stop = audit.NewStopper()
	res, err := audit.Run(context.Background(), o)
	if err != nil || res.Report.Run.Partial != nil {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

// A stop while the run waits for the output directory's lock ends the wait: nothing is
// published or recorded (before, the run went on once it got the lock, started no host
// and published an empty partial run).
func TestStopWhileWaitingForOutputLock(t *testing.T) {
	out := t.TempDir()
	holder, _, err := filelock.TryLock(filepath.Join(out, audit.LockName), filelock.Self("OTHER", sampleNow))
	if err != nil || holder == nil {
		t.Fatalf("hold the output lock: %v", err)
	}
	defer holder.Release()
	o := sampleOptions(t, out)
	o.OutputLockWait = time.Minute
	o.Stop = audit.NewStopper()
	go func() {
		time.Sleep(200 * time.Millisecond)
		o.Stop.Stop("stopped by SIGTERM", sampleNow)
	}()
	start := time.Now()
	_, err = audit.Run(context.Background(), o)
	if !errors.Is(err, audit.ErrStopped) || !strings.Contains(err.Error(), "nothing published") {
		t.Fatalf("run stopped while waiting: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the stop did not end the wait (%s)", d)
	}
	if runs := published(t, out); len(runs) != 0 {
		t.Errorf("published %v", runs)
	}
}

// A stop that comes before collection starts publishes nothing, whatever on_stop says.
func TestStopBeforeCollection(t *testing.T) {
	out := t.TempDir()
	o := sampleOptions(t, out)
	o.Stop = audit.NewStopper()
	o.Stop.Stop("stopped by SIGTERM", sampleNow)
	if _, err := audit.Run(context.Background(), o); !errors.Is(err, audit.ErrStopped) {
		t.Fatalf("run: %v", err)
	}
	if runs := published(t, out); len(runs) != 0 {
		t.Errorf("published %v", runs)
	}
	s, err := history.Open(context.Background(), o.HistoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rs, err := s.Runs(context.Background()); err != nil || len(rs) != 0 {
		t.Errorf("history %v %+v", err, rs)
	}
}
