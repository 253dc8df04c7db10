package winrm_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestWinRMMatchesOfflineSamples serves samples/fleet through the simulator and checks
// that collecting it over real WinRM yields the same evidence sections as loading it
// offline (what `rdsaudit demo` relies on).
func TestWinRMMatchesOfflineSamples(t *testing.T) {
	fleet, err := offline.LoadFleet(filepath.Join("..", "..", "samples", "fleet"))
	if err != nil {
		t.Fatalf("load samples/fleet: %v", err)
	}
	env := newEnv(t, true, fleet, nil)
	c := newCollector(t, env, winrm.Options{Retries: -1}, zerolog.Nop())
	var hosts []evidence.HostRef
	for name, off := range fleet {
		h := env.hosts[name]
		h.Roles = off.Host.Roles
		hosts = append(hosts, h)
	}
	var mu sync.Mutex
	got := map[string]*evidence.Evidence{}
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{}, func(ev *evidence.Evidence) {
		mu.Lock()
		got[ev.Host.Name] = ev
		mu.Unlock()
	})
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for name, off := range fleet {
		ev := got[name]
		if off.Status != evidence.StatusCollected {
			if ev.Status != off.Status || ev.Failure == nil || off.Failure == nil || ev.Failure.Class != off.Failure.Class {
				t.Errorf("%s: offline %s %+v, over WinRM %s %+v", name, off.Status, off.Failure, ev.Status, ev.Failure)
			}
			continue
		}
		if ev.Status != evidence.StatusCollected {
			t.Errorf("%s: %+v", name, ev.Failure)
			continue
		}
		for _, s := range []struct {
			what      string
			off, live any
		}{
			{"registry", off.Registry, ev.Registry},
			{"terminal_services", off.TerminalServices, ev.TerminalServices},
			{"license_server", off.LicenseServer, ev.LicenseServer},
			{"os", off.OS, ev.OS},
			{"deployment", off.Deployment, ev.Deployment},
		} {
			if a, b := js(s.off), js(s.live); a != b {
				t.Errorf("%s %s differs:\noffline %s\nwinrm   %s", name, s.what, a, b)
			}
		}
	}
}
