package winrm_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// What a collector builds once and shares between its hosts: the command line per
// distinct parameters.

// TestCollectorBuildsCommandOncePerParameters: hosts with the same roles run one
// command line, built once per collector; another role set gets its own.
func TestCollectorBuildsCommandOncePerParameters(t *testing.T) {
	evs := sessionHosts(6)
	evs["lic"] = virtualHost("lic", true, 3)
	env := newEnv(t, false, evs, nil)
	c := newCollector(t, env, winrm.Options{}, zerolog.Nop())
	if n := collectAll(t, c, env.list()); n != len(evs) {
		t.Fatalf("collected %d of %d hosts", n, len(evs))
	}
	if n := c.CommandBuilds(); n != 2 {
		t.Errorf("%d command lines built for 2 role sets", n)
	}
	if r := env.fleet.Rejected(); len(r) != 0 {
		t.Errorf("commands rejected: %+v", r)
	}
	collectAll(t, c, env.list())
	if n := c.CommandBuilds(); n != 2 {
		t.Errorf("second run: %d command lines built for 2 role sets", n)
	}
	// A collector with another issued-licence bound builds its own.
	other := newCollector(t, env, winrm.Options{MaxIssuedLicenses: 1}, zerolog.Nop())
	if ev := other.Collect(context.Background(), env.hosts["lic"]); ev.Status != evidence.StatusCollected || len(ev.LicenseServer.IssuedLicenses) != 1 {
		t.Fatalf("max issued 1: %s %+v", ev.Status, ev.Failure)
	}
	if n := other.CommandBuilds(); n != 1 {
		t.Errorf("%d command lines built", n)
	}
}
