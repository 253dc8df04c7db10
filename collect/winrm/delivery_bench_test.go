package winrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// BenchmarkCollectDelivery: one session host over plain HTTP with Basic and 5 ms per
// POST (a LAN round trip plus the listener's work), collected again and again: what
// the script's delivery costs per host, in POSTs (every request the listener
// received, divided by the hosts collected) and time (docs/benchmarks.md).
func BenchmarkCollectDelivery(b *testing.B) {
	s := winrmtest.NewServer("rdsh01", virtualHost("rdsh01", false, 0), winrmtest.ServerOptions{
		Users: map[string]string{testUser: testPassword}, Faults: winrmtest.Faults{Latency: 5 * time.Millisecond}})
	defer s.Close()
	c := labCollector(b, testUser, testPassword, winrm.Options{Scheme: "http", Port: s.Port, Auth: winrm.AuthBasic, AllowBasicOverHTTP: true})
	host := evidence.HostRef{Name: "rdsh01", Address: "127.0.0.1", Roles: []string{evidence.RoleSessionHost}}
	n := 0
	for b.Loop() {
		if ev := c.Collect(context.Background(), host); ev.Status != evidence.StatusCollected {
			b.Fatal(ev.Failure)
		}
		n++
	}
	posts := 0
	for _, a := range []string{"Create", "Command", "Send", "Receive", "Signal", "Delete"} {
		posts += s.Stats()[a]
	}
	b.ReportMetric(float64(posts)/float64(n), "POSTs/host")
	b.ReportMetric(float64(s.Stats()["Send"])/float64(n), "Sends/host")
}
