package directory_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/directory/slapdtest"
)

// BenchmarkCollect reads the 2,600-holder fleet over ldaps (3 pages of 1,000) and
// summarises it: go test -run NONE -bench Collect -benchtime 10x ./directory/
func BenchmarkCollect(b *testing.B) {
	s := slapdtest.Start(b, slapdtest.Options{Users: fleet()})
	tg := target(s, s.LDAPSURL)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ev := directory.Collect(context.Background(), tg)
		if !ev.Collected() || len(ev.Users) != fleetSize {
			b.Fatal(fmt.Sprint(ev.Coverage))
		}
		directory.Summarise([]*directory.Evidence{ev}, evalAt, 0)
	}
}
