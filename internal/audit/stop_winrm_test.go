package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/samples"
)

// TestStopOverWinRMDeletesShells: a stop while a host's script runs over WinRM cancels
// that host after stop_grace, and its shell is still deleted; the hosts not started
// are canceled; the run is published marked partial.
func TestStopOverWinRMDeletesShells(t *testing.T) {
	sf, err := samples.Scale(4)
	if err != nil {
		t.Fatal(err)
	}
	evs := map[string]*evidence.Evidence{}
	for _, ev := range sf.Evidence {
		evs[ev.Host.Name] = ev
	}
	slow := sf.Evidence[0].Host.Name
	fleet, err := winrmtest.NewFleet(evs, winrmtest.FleetServerOptions{
		Users:  map[string]string{"lab": "pw"},
		Faults: map[string]winrmtest.Faults{slow: {ScriptDelay: time.Minute}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	col, err := winrm.New(winrm.Options{Scheme: "http", Auth: winrm.AuthBasic, AllowBasicOverHTTP: true, HostTimeout: 2 * time.Minute, RetryBackoff: 5 * time.Millisecond},
		winrm.CredentialMap{"*": {Name: "lab", Username: "lab", Password: "pw"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}

	o := sampleOptions(t, t.TempDir())
	o.Hosts = nil
	for _, ev := range sf.Evidence {
		h, err := fleet.HostRef(ev.Host.Name, ev.Host.Roles...)
		if err != nil {
			t.Fatal(err)
		}
		o.Hosts = append(o.Hosts, h)
	}
	o.Collector, o.Concurrency, o.StopGrace = col, 1, 100*time.Millisecond
	stop := audit.NewStopper()
	o.Stop = stop
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for fleet.OpenShells() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		stop.Stop("stopped by SIGTERM", sampleNow)
	}()
	start := time.Now()
	res, err := audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the stop took %s", d)
	}
	want := report.Partial{Reason: "stopped by SIGTERM", StoppedAt: sampleNow, NotStarted: len(o.Hosts) - 1, Canceled: 1}
	if p := res.Report.Run.Partial; p == nil || *p != want {
		t.Errorf("partial = %+v, want %+v", p, want)
	}
	if n := fleet.OpenShells(); n != 0 {
		t.Errorf("%d shells left open after the stop", n)
	}
	if err := report.Verify(res.Dir, nil); err != nil {
		t.Errorf("partial run does not verify: %v", err)
	}
}
