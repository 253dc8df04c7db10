package report

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/directory"
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

// A configured directory domain that was not read leaves the Per User figures unknown:
// the audit is incomplete (exit 3), whatever the hosts and findings, and every writer
// says which domain and why.
func TestVerdictDirectoryNotRead(t *testing.T) {
	pu := func(statuses ...string) *PerUser {
		s := &directory.Summary{Complete: true}
		for i, st := range statuses {
			d := directory.DomainCoverage{Domain: fmt.Sprintf("d%d.example.com", i+1), Status: st}
			if st != directory.StatusCollected {
				d.Class, s.Complete = "tls", false
			}
			s.Domains = append(s.Domains, d)
		}
		return &PerUser{Summary: s}
	}
	base := func(p *PerUser) *Report {
		return &Report{Run: Run{FailOn: rules.SevHigh}, Coverage: Coverage{Targeted: 3, Collected: 3}, PerUser: p}
	}
	v := base(pu(directory.StatusCollected, directory.StatusFailed)).Verdict()
	if v.Status != VerdictIncomplete || v.Word() != "FAIL (coverage)" || v.Reason() != "1 of 2 directory domains read" ||
		v.Domains != 2 || v.DomainsRead != 1 || v.DomainsNotRead != "d2.example.com (tls)" {
		t.Errorf("one domain not read: %+v %q %q", v, v.Word(), v.Reason())
	}
	if rs := strings.Join(v.Reasons(), " | "); !strings.Contains(rs, "directory: 1 of 2 configured domains read (not read: d2.example.com (tls)); the Per User figures are unknown") ||
		!strings.Contains(rs, "coverage: all 3 targeted hosts collected") {
		t.Errorf("reasons: %s", rs)
	}
	if rec := v.Record(); rec.Domains != 2 || rec.DomainsRead != 1 || rec.Status != VerdictIncomplete {
		t.Errorf("record: %+v", rec)
	}
	v = base(pu(directory.StatusCollected, directory.StatusCollected)).Verdict()
	if v.Status != VerdictPass || !strings.Contains(strings.Join(v.Reasons(), " | "), "directory: all 2 configured domains read") {
		t.Errorf("all read: %+v %v", v, v.Reasons())
	}
	r := base(pu(directory.StatusFailed))
	r.Coverage.Collected = 2
	if v := r.Verdict(); v.Reason() != "2 of 3 hosts collected; 0 of 1 directory domains read" {
		t.Errorf("both: %q", v.Reason())
	}
	if v := base(nil).Verdict(); v.Status != VerdictPass || len(v.Reasons()) != 2 || v.Domains != 0 {
		t.Errorf("no directory: %+v %v", v, v.Reasons())
	}
}
