package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/rdsaudit/rdsaudit/samples"
)

// BenchmarkRunOffline runs the whole pipeline over a generated fleet read from offline
// evidence files (samples.Scale): collect, evaluate, report, publish, record.
func BenchmarkRunOffline(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			f, err := samples.Scale(n)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.WriteEvidence(filepath.Join(dir, "fleet")); err != nil {
				b.Fatal(err)
			}
			refs := make([]evidence.HostRef, len(f.Evidence))
			for i, ev := range f.Evidence {
				refs[i] = ev.Host
			}
			rs, err := rules.LoadRuleSet(filepath.Join("..", "..", "samples", "rules.yaml"))
			if err != nil {
				b.Fatal(err)
			}
			ents, err := rules.LoadEntitlements(filepath.Join("..", "..", "samples", "entitlements.csv"))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := filepath.Join(dir, fmt.Sprintf("out%d", i))
				_, err := audit.Run(context.Background(), audit.Options{
					Hosts: refs, RuleSet: rs, Entitlements: ents, Ledger: true,
					Collector: offline.New(filepath.Join(dir, "fleet")), OutputDir: out,
					HistoryPath: filepath.Join(out, "history.db"), ToolVersion: "bench",
					Now: func() time.Time { return sampleNow }, Log: zerolog.Nop(),
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
