package rules

import (
	"fmt"
	"testing"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// benchInput is a fleet of nHosts session hosts in groups of groupSize, 10 license
// servers and a ledger, with two earlier runs of history for every host.
func benchInput(nHosts, groupSize int) Input {
	const nLS = 10
	var fs []*facts.Facts
	hist := MemHistory{}
	for i := 0; i < nLS; i++ {
		ls := lsEv(fmt.Sprintf("LS%02d", i))
		fs = append(fs, facts.Interpret(ls))
	}
	nGroups := nHosts / groupSize
	for i := 0; i < nHosts; i++ {
		h := rdshEv(fmt.Sprintf("RDSH%05d", i))
		h.Host.Group = fmt.Sprintf("farm%03d", i%nGroups)
		setVal(h, evidence.KeyPolicy, sz(evidence.ValLicenseServers, fmt.Sprintf("LS%02d.corp.example", i%nLS)))
		fs = append(fs, facts.Interpret(h))
		hist.Add(h.Host.Name, snap("r1", now().AddDate(0, 0, -60), 110))
		hist.Add(h.Host.Name, snap("r2", now().AddDate(0, 0, -30), 80))
	}
	ents := []Entitlement{ent("per_user", 7, 500, 100), ent("per_device", 7, 400, 100)}
	return Input{Now: now(), Hosts: fs, Entitlements: ents, Ledger: true, History: hist}
}

func benchEvaluate(b *testing.B, nHosts, groupSize int) {
	in := benchInput(nHosts, groupSize)
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for b.Loop() {
		n = len(Evaluate(in).Results)
	}
	b.ReportMetric(float64(n), "results")
}

// BenchmarkEvaluate10k evaluates the whole catalogue over 10,000 session hosts in 100
// groups of 100, 10 license servers and a ledger, with history for every host.
func BenchmarkEvaluate10k(b *testing.B) { benchEvaluate(b, 10000, 100) }

// BenchmarkEvaluate20k is twice the fleet with the same group size (200 groups of 100):
// linear evaluation takes twice the 10k time.
func BenchmarkEvaluate20k(b *testing.B) { benchEvaluate(b, 20000, 100) }

// BenchmarkEvaluate20kBigGroups is twice the fleet in groups twice as large (100 groups
// of 200): group rules linear in group size keep it at twice the 10k time too.
func BenchmarkEvaluate20kBigGroups(b *testing.B) { benchEvaluate(b, 20000, 200) }
