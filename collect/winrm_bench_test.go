package collect_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrmtest"
)

func BenchmarkBuildCommand(b *testing.B) {
	p := collect.ParamsFor(collect.HostRef{Roles: []string{collect.RoleSessionHost, collect.RoleLicenseServer}}, 0)
	for b.Loop() {
		if _, err := collect.BuildCommand(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollectLicenseServer: one license server with 20,000 issued CALs over HTTPS.
func BenchmarkCollectLicenseServer(b *testing.B) {
	env := newEnv(b, true, map[string]*collect.Evidence{"lic": virtualHost("lic", true, 20000)}, nil)
	c := newCollector(b, env, collect.WinRMOptions{}, zerolog.Nop())
	for b.Loop() {
		if ev := c.Collect(context.Background(), env.hosts["lic"]); ev.Status != collect.StatusCollected {
			b.Fatal(ev.Failure)
		}
	}
}

// BenchmarkRunFleet: 64 session hosts, 5 ms latency per POST, at several concurrencies.
func BenchmarkRunFleet(b *testing.B) {
	evs := map[string]*collect.Evidence{}
	faults := map[string]winrmtest.Faults{}
	for i := 0; i < 64; i++ {
		n := fmt.Sprintf("rdsh%02d", i)
		evs[n] = virtualHost(n, false, 0)
		faults[n] = winrmtest.Faults{Latency: 5 * time.Millisecond}
	}
	env := newEnv(b, false, evs, faults)
	c := newCollector(b, env, collect.WinRMOptions{}, zerolog.Nop())
	var hosts []collect.HostRef
	for _, h := range env.hosts {
		hosts = append(hosts, h)
	}
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			for b.Loop() {
				collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: conc}, func(ev *collect.Evidence) {
					if ev.Status != collect.StatusCollected {
						b.Error(ev.Failure)
					}
				})
			}
		})
	}
}
