package history

import (
	"testing"
	"time"
)

func TestPerUserCountsPerRun(t *testing.T) {
	s, _ := openTemp(t)
	jan := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
	feb := jan.AddDate(0, 1, 0)
	mar := feb.AddDate(0, 1, 0)
	if err := s.RecordPerUser(ctx, "nope", jan, nil); err == nil {
		t.Fatal("counts of an unrecorded run accepted")
	}
	runPipeline(t, s, "r1", jan, nil, nil)
	runPipeline(t, s, "r2", feb, nil, nil)
	for id, c := range map[string][]PerUserCount{
		"r1": {{Version: "2012", VersionID: 4, Active: 10, Expired: 2, Complete: true}, {Version: "unknown version (7)", Active: 3, Complete: true}},
		"r2": {{Version: "2012", VersionID: 4, Active: 14, Expired: 1}},
	} {
		if err := s.RecordPerUser(ctx, id, map[string]time.Time{"r1": jan, "r2": feb}[id], c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.PerUserCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].RunID != "r1" || got[0].Version != "2012" || got[1].Version != "unknown version (7)" ||
		got[2].RunID != "r2" || got[2].Active != 14 || got[2].Complete || !got[0].Started.Equal(jan) {
		t.Fatalf("counts %+v", got)
	}
	// Retention removes r1 with the next run; its counts go with it.
	if err := s.Record(ctx, RunRecord{ID: "r3", Started: mar, Ended: mar, Retention: Retention{KeepRuns: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPerUser(ctx, "r3", mar, []PerUserCount{{Version: "2012", VersionID: 4, Active: 15, Complete: true}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.PerUserCounts(ctx)
	if len(got) != 2 || got[0].RunID != "r2" || got[1].RunID != "r3" {
		t.Fatalf("after retention %+v", got)
	}
	var orphans int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM per_user_counts WHERE run_id = 'r1'").Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("r1 rows left: %d %v", orphans, err)
	}
}
