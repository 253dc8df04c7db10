package rules

import (
	"fmt"
	"testing"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// BenchmarkEvaluate10k evaluates the whole catalogue over 10,000 session hosts in 100
// groups, 10 license servers and a ledger, with history for every host.
func BenchmarkEvaluate10k(b *testing.B) {
	const nHosts, nLS = 10000, 10
	var fs []*facts.Facts
	hist := MemHistory{}
	for i := 0; i < nLS; i++ {
		ls := lsEv(fmt.Sprintf("LS%02d", i))
		fs = append(fs, facts.Interpret(ls))
	}
	for i := 0; i < nHosts; i++ {
		h := rdshEv(fmt.Sprintf("RDSH%05d", i))
		h.Host.Group = fmt.Sprintf("farm%03d", i%100)
		setVal(h, evidence.KeyPolicy, sz(evidence.ValLicenseServers, fmt.Sprintf("LS%02d.corp.example", i%nLS)))
		fs = append(fs, facts.Interpret(h))
		hist.Add(h.Host.Name, snap("r1", now().AddDate(0, 0, -60), 110))
		hist.Add(h.Host.Name, snap("r2", now().AddDate(0, 0, -30), 80))
	}
	ents := []Entitlement{ent("per_user", 7, 500, 100), ent("per_device", 7, 400, 100)}
	in := Input{Now: now(), Hosts: fs, Entitlements: ents, Ledger: true, History: hist}
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for b.Loop() {
		n = len(Evaluate(in).Results)
	}
	b.ReportMetric(float64(n), "results")
}
