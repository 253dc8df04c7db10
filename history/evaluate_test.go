package history

import (
	"fmt"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

// expectRule runs the rule engine over one host's current facts with the history loaded
// from the store and asserts the rule's outcome for that host.
func expectRule(t *testing.T, ruleID string, want rules.Outcome, h rules.History, now time.Time, cur *facts.Facts) {
	t.Helper()
	ev := rules.Evaluate(rules.Input{Now: now, Hosts: []*facts.Facts{cur}, History: h})
	for _, r := range ev.Results {
		if r.RuleID == ruleID && r.Subject.Name == cur.Host.Name {
			if r.Outcome != want {
				t.Fatalf("%s on %s: %s (%s), want %s", ruleID, cur.Host.Name, r.Outcome, r.Message, want)
			}
			t.Logf("%s %s: %s", ruleID, r.Outcome, r.Message)
			return
		}
	}
	t.Fatalf("%s produced no result for %s", ruleID, cur.Host.Name)
}

// TestMonthlyPipelineWithRules drives the whole history loop for six monthly audits:
// Load → rules.Evaluate → Annotate → Record. RDSH07 has a reset script (sawtooth);
// RDSH01 has one reset and is then licensed.
func TestMonthlyPipelineWithRules(t *testing.T) {
	s, _ := openTemp(t)
	saw := []int64{100, 70, 40, 118, 88, 117} // resets before months 3 and 5
	one := []int64{12, 118, 88, 0, 0, 0}      // reset before month 1; licensed from month 3
	var firstGrace003 *time.Time
	for i := 0; i < 6; i++ {
		now := month(i)
		h, err := s.Load(ctx, now, 200*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		hosts := []*facts.Facts{
			hostFacts("RDSH07", 4, saw[i], now.AddDate(0, 0, -3), fmt.Sprint("tb", i)),
			hostFacts("RDSH01", 4, one[i], month(0).AddDate(0, 0, -108), "one"),
		}
		ev := rules.Evaluate(rules.Input{Now: now, Hosts: hosts, History: h})
		drift := runPipeline(t, s, fmt.Sprintf("R%d", i+1), now, hosts, ev.Results)
		got := map[string]rules.Result{}
		for _, r := range ev.Results {
			if r.IsFinding() {
				got[r.RuleID+"/"+r.Subject.Name] = r
			}
		}
		g3 := got["RDS-GRACE-003/RDSH01"]
		switch i {
		case 1:
			if g3.Outcome != rules.Fail || g3.Lifecycle != rules.StatusNew {
				t.Fatalf("month 1: RDS-GRACE-003 on RDSH01 = %+v", g3)
			}
			firstGrace003 = g3.FirstSeen
		case 2:
			// The counter went down again: RDS-GRACE-003 passes and the finding is resolved.
			if g3.Outcome != "" {
				t.Fatalf("month 2: RDS-GRACE-003 on RDSH01 still %s", g3.Outcome)
			}
			found := false
			for _, r := range drift.Resolved {
				if r.RuleID == "RDS-GRACE-003" && r.Subject.Name == "RDSH01" && r.FirstSeen.Equal(*firstGrace003) {
					found = true
				}
			}
			if !found {
				t.Fatalf("month 2: RDS-GRACE-003 not resolved in drift: %+v", drift.Resolved)
			}
		}
		g8 := got["RDS-GRACE-008/RDSH07"]
		switch {
		case i < 5 && g8.Outcome == rules.Fail:
			t.Fatalf("month %d: RDS-GRACE-008 fired early: %s", i, g8.Message)
		case i == 5 && g8.Outcome != rules.Fail:
			t.Fatalf("month 5: RDS-GRACE-008 did not fire on the sawtooth")
		case i == 5:
			t.Logf("month 5: %s", g8.Message)
		}
		// RDS-GRACE-001 (grace active) on RDSH07 persists from the first run.
		if g1 := got["RDS-GRACE-001/RDSH07"]; g1.Outcome == rules.Fail && !g1.FirstSeen.Equal(month(0)) {
			t.Fatalf("month %d: RDS-GRACE-001 first seen %v, want %v", i, g1.FirstSeen, month(0))
		}
	}
}
