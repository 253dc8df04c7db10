package history

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/rules"
)

// BenchmarkRecord10k records one 10,000-host run (two findings and two passes per host:
// 10,000 host rows, 20,000 finding rows) into a store that already holds the previous
// month's run of the same fleet, in one transaction.
func BenchmarkRecord10k(b *testing.B) {
	dir := b.TempDir()
	prev := bigRun("PREV", month(0), 10000)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(ctx, filepath.Join(dir, fmt.Sprintf("h%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Record(ctx, prev); err != nil {
			b.Fatal(err)
		}
		rec := bigRun("CUR", month(1), 10000)
		b.StartTimer()
		if err := s.Record(ctx, rec); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkLoad10k loads the previous run's 10,000 host snapshots for the rules from a
// store holding six monthly runs of the fleet (window 0: the latest run only).
func BenchmarkLoad10k(b *testing.B) {
	s, _ := openTemp(b)
	for m := 0; m < 6; m++ {
		if err := s.Record(ctx, bigRun(fmt.Sprintf("R%d", m), month(m), 10000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := s.Load(ctx, month(6), 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(h.(rules.MemHistory)) != 10000 {
			b.Fatal("short load")
		}
	}
}

// BenchmarkLoad10kWindow loads six months of snapshots (60,000) for RDS-GRACE-008.
func BenchmarkLoad10kWindow(b *testing.B) {
	s, _ := openTemp(b)
	for m := 0; m < 6; m++ {
		if err := s.Record(ctx, bigRun(fmt.Sprintf("R%d", m), month(m), 10000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Load(ctx, month(6), 200*24*time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnnotate10k annotates 40,000 results (20,000 findings) against the previous
// 10,000-host run.
func BenchmarkAnnotate10k(b *testing.B) {
	s, _ := openTemp(b)
	if err := s.Record(ctx, bigRun("R0", month(0), 10000)); err != nil {
		b.Fatal(err)
	}
	rs := bigRun("R1", month(1), 10000).Results
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Annotate(ctx, rs, month(1)); err != nil {
			b.Fatal(err)
		}
	}
}
