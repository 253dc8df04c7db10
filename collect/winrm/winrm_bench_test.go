package winrm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

func BenchmarkBuildCollection(b *testing.B) {
	p := winrm.ParamsFor(evidence.HostRef{Roles: []string{evidence.RoleSessionHost, evidence.RoleLicenseServer}}, 0)
	for b.Loop() {
		if _, err := winrm.BuildCollection(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollectLicenseServer: one license server with winrm.DefaultMaxIssued
// (100,000) issued CALs of realistic size over HTTPS, default limits. It reports the
// script's output size (output-MiB), which must stay within DefaultMaxOutputBytes.
func BenchmarkCollectLicenseServer(b *testing.B) {
	lic := realisticLicenseServer(winrm.DefaultMaxIssued)
	env := newEnv(b, true, map[string]*evidence.Evidence{"lic": lic}, nil)
	c := newCollector(b, env, winrm.Options{}, zerolog.Nop())
	var ev *evidence.Evidence
	for b.Loop() {
		if ev = c.Collect(context.Background(), env.hosts["lic"]); ev.Status != evidence.StatusCollected {
			b.Fatal(ev.Failure)
		}
	}
	if ls := ev.LicenseServer; ls == nil || len(ls.IssuedLicenses) != winrm.DefaultMaxIssued || ls.IssuedTruncated {
		b.Fatalf("issued licences not all collected")
	}
	out, _ := json.Marshal(ev)
	b.ReportMetric(float64(len(out))/(1<<20), "output-MiB")
}

// BenchmarkRunFleet: 64 session hosts, 5 ms latency per POST, at several concurrencies.
func BenchmarkRunFleet(b *testing.B) {
	evs := sessionHosts(64)
	faults := map[string]winrmtest.Faults{}
	for n := range evs {
		faults[n] = winrmtest.Faults{Latency: 5 * time.Millisecond}
	}
	env := newEnv(b, false, evs, faults)
	c := newCollector(b, env, winrm.Options{}, zerolog.Nop())
	hosts := env.list()
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			for b.Loop() {
				collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: conc}, func(ev *evidence.Evidence) {
					if ev.Status != evidence.StatusCollected {
						b.Error(ev.Failure)
					}
				})
			}
		})
	}
}

// realisticLicenseServer is a license server whose n issued Per Device CALs look like
// real ones (domain user, FQDN, hardware id, CIM datetimes): about 300 bytes of JSON each.
func realisticLicenseServer(n int) *evidence.Evidence {
	ev := virtualHost("lic", true, 0)
	ls := ev.LicenseServer
	ls.IssuedLicenses = make([]evidence.IssuedLicense, n)
	for i := range ls.IssuedLicenses {
		ls.IssuedLicenses[i] = evidence.IssuedLicense{
			LicenseID: int64(i + 1), KeyPackID: 4,
			IssuedToUser: fmt.Sprintf(`CONTOSO\user%06d`, i), IssuedToComp: fmt.Sprintf("WKS-%06d.corp.contoso.com", i),
			HardwareID: fmt.Sprintf("0x%08x, 0x%08x, 0x%08x, 0x%08x, 0x%08x", i, i*7, i*13, i*17, i*31),
			IssueDate:  "20240115093012.000000-000", ExpirationDate: "20240517093012.000000-000", LicenseStatus: ptr(int64(2)),
		}
	}
	ls.IssuedTotal = n
	return ev
}

// BenchmarkCollectNTLMHTTPS: session hosts over HTTPS with NTLMv2, as `rdsaudit run`
// collects them from `rdsaudit simulate --ntlm` (bench/winrm.sh), without latency. The
// CPU profile holds the simulator's work too: read the collector's side of it
// (-focus 'collect/winrm\.|masterzen|crypto/tls.\(\*Conn\).clientHandshake').
func BenchmarkCollectNTLMHTTPS(b *testing.B) {
	const hosts = 64
	env := newNTLMEnv(b, true, sessionHosts(hosts), nil)
	c := ntlmCollector(b, env, testUser, testPassword, winrm.Options{})
	list := env.list()
	for b.Loop() {
		collect.RunFleet(context.Background(), c, list, collect.FleetOptions{Concurrency: 16}, func(ev *evidence.Evidence) {
			if ev.Status != evidence.StatusCollected {
				b.Error(ev.Failure)
			}
		})
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*hosts), "µs/host")
}
