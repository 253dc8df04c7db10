package report

import (
	"testing"

	"github.com/rdsaudit/rdsaudit/rules"
)

// The verdict: coverage first, then unwaived failures at or above fail_on.
func TestVerdict(t *testing.T) {
	fail := func(sev rules.Severity, waived bool) rules.Result {
		return rules.Result{RuleID: "R", Outcome: rules.Fail, Severity: sev, Waived: waived}
	}
	cases := []struct {
		name      string
		collected int
		results   []rules.Result
		want      VerdictStatus
		blocking  int
		reason    string
	}{
		{"clean", 3, nil, VerdictPass, 0, "no unwaived finding at or above high"},
		{"below fail_on", 3, []rules.Result{fail(rules.SevMedium, false)}, VerdictPass, 0, "no unwaived finding at or above high"},
		{"waived", 3, []rules.Result{fail(rules.SevCritical, true)}, VerdictPass, 0, "no unwaived finding at or above high"},
		{"errors do not fail", 3, []rules.Result{{Outcome: rules.Error, Severity: rules.SevCritical}}, VerdictPass, 0, "no unwaived finding at or above high"},
		{"at fail_on", 3, []rules.Result{fail(rules.SevHigh, false), fail(rules.SevCritical, false)}, VerdictFail, 2, "unwaived findings at or above high"},
		{"coverage first", 2, []rules.Result{fail(rules.SevCritical, false)}, VerdictIncomplete, 1, "2 of 3 hosts collected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Report{Run: Run{FailOn: rules.SevHigh}, Coverage: Coverage{Targeted: 3, Collected: c.collected}, Results: c.results}
			v := r.Verdict()
			if v.Status != c.want || v.Blocking != c.blocking || v.Reason() != c.reason || v.FindingsFail() != (c.blocking > 0) {
				t.Errorf("verdict %+v (%s), want %s with %d blocking (%s)", v, v.Reason(), c.want, c.blocking, c.reason)
			}
		})
	}
}
