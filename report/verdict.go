package report

import (
	"fmt"

	"github.com/rdsaudit/rdsaudit/rules"
)

// VerdictStatus is an audit's outcome.
type VerdictStatus string

const (
	// VerdictPass: every targeted host was collected and no unwaived finding is at or
	// above fail_on.
	VerdictPass VerdictStatus = "pass"
	// VerdictFail: every targeted host was collected and unwaived findings are at or
	// above fail_on.
	VerdictFail VerdictStatus = "fail"
	// VerdictIncomplete: some targeted hosts were not collected. It takes precedence over
	// findings: an audit that did not see the whole fleet proves nothing about it.
	VerdictIncomplete VerdictStatus = "incomplete"
)

// Verdict is the outcome of one audit and why. The exit code and every writer take it
// from here, so they never disagree.
type Verdict struct {
	Status VerdictStatus
	FailOn rules.Severity
	// Targeted and Collected are the coverage the verdict was judged on.
	Targeted, Collected int
	// Blocking counts the unwaived failures at or above FailOn.
	Blocking int
}

// Verdict judges the report: coverage first, then findings at or above fail_on.
func (r *Report) Verdict() Verdict {
	v := Verdict{FailOn: r.Run.FailOn, Targeted: r.Coverage.Targeted, Collected: r.Coverage.Collected}
	for i := range r.Results {
		if res := &r.Results[i]; res.Outcome == rules.Fail && !res.Waived && res.Severity >= r.Run.FailOn {
			v.Blocking++
		}
	}
	switch {
	case v.Collected < v.Targeted:
		v.Status = VerdictIncomplete
	case v.Blocking > 0:
		v.Status = VerdictFail
	default:
		v.Status = VerdictPass
	}
	return v
}

// FindingsFail reports whether unwaived findings are at or above fail_on, whatever the
// coverage.
func (v Verdict) FindingsFail() bool { return v.Blocking > 0 }

// Reason says in words why the verdict is what it is.
func (v Verdict) Reason() string {
	switch v.Status {
	case VerdictIncomplete:
		return fmt.Sprintf("%d of %d hosts collected", v.Collected, v.Targeted)
	case VerdictFail:
		return fmt.Sprintf("unwaived findings at or above %s", v.FailOn)
	}
	return fmt.Sprintf("no unwaived finding at or above %s", v.FailOn)
}
