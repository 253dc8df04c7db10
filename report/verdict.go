package report

import (
	"fmt"
	"strings"

	"github.com/rdsaudit/rdsaudit/directory"
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
	// VerdictIncomplete: some targeted hosts were not collected, or a configured
	// directory domain was not read (the Per User figures are unknown). It takes
	// precedence over findings: an audit that did not see the whole fleet proves
	// nothing about it.
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
	// NotCollected names the failure classes of the hosts not collected, as
	// "connect 1, unsupported_os 1".
	NotCollected string
	// Domains and DomainsRead count the configured directory domains (directory.domains)
	// and those read; DomainsNotRead names the others with their class, as
	// "corp2.example.com (tls)". All zero without a directory.
	Domains, DomainsRead int
	DomainsNotRead       string
}

// Complete reports whether every targeted host was collected and every configured
// directory domain read.
func (v Verdict) Complete() bool { return v.Collected >= v.Targeted && v.DomainsRead >= v.Domains }

// Verdict judges the report: coverage first, then findings at or above fail_on.
func (r *Report) Verdict() Verdict {
	v := Verdict{FailOn: r.Run.FailOn, Targeted: r.Coverage.Targeted, Collected: r.Coverage.Collected}
	for i := range r.Results {
		if res := &r.Results[i]; res.Outcome == rules.Fail && !res.Waived && res.Severity >= r.Run.FailOn {
			v.Blocking++
		}
	}
	var classes []string
	for _, c := range r.Coverage.ByClass {
		classes = append(classes, fmt.Sprintf("%s %d", c.Class, c.Count))
	}
	v.NotCollected = strings.Join(classes, ", ")
	if pu := r.PerUser; pu != nil && pu.Summary != nil {
		var notRead []string
		for _, d := range pu.Domains {
			v.Domains++
			if d.Status == directory.StatusCollected {
				v.DomainsRead++
			} else {
				notRead = append(notRead, fmt.Sprintf("%s (%s)", d.Domain, d.Class))
			}
		}
		v.DomainsNotRead = strings.Join(notRead, ", ")
	}
	switch {
	case !v.Complete():
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
		var parts []string
		if v.Collected < v.Targeted {
			parts = append(parts, fmt.Sprintf("%d of %d hosts collected", v.Collected, v.Targeted))
		}
		if v.DomainsRead < v.Domains {
			parts = append(parts, fmt.Sprintf("%d of %d directory domains read", v.DomainsRead, v.Domains))
		}
		return strings.Join(parts, "; ")
	case VerdictFail:
		return fmt.Sprintf("unwaived findings at or above %s", v.FailOn)
	}
	return fmt.Sprintf("no unwaived finding at or above %s", v.FailOn)
}

// Word is the verdict as a reader signs it: PASS, or FAIL with what failed. An
// incomplete audit does not pass: its exit code is the coverage one.
func (v Verdict) Word() string {
	switch {
	case v.Status == VerdictPass:
		return "PASS"
	case v.Status == VerdictIncomplete && v.FindingsFail():
		return "FAIL (coverage and findings)"
	case v.Status == VerdictIncomplete:
		return "FAIL (coverage)"
	}
	return "FAIL (findings)"
}

// Reasons states both grounds of the verdict, coverage first, then findings against
// fail_on, each in one sentence.
func (v Verdict) Reasons() []string {
	var out []string
	if v.Collected < v.Targeted {
		s := fmt.Sprintf("coverage: %d of %d targeted hosts collected", v.Collected, v.Targeted)
		if v.NotCollected != "" {
			s += " (not collected: " + v.NotCollected + ")"
		}
		out = append(out, s+"; an audit that did not see every host cannot pass")
	} else {
		out = append(out, fmt.Sprintf("coverage: all %d targeted hosts collected", v.Targeted))
	}
	switch {
	case v.Domains == 0:
	case v.DomainsRead < v.Domains:
		out = append(out, fmt.Sprintf("directory: %d of %d configured domains read (not read: %s); the Per User figures are unknown, so the audit cannot pass",
			v.DomainsRead, v.Domains, v.DomainsNotRead))
	default:
		out = append(out, fmt.Sprintf("directory: all %d configured %s read", v.Domains, plural(v.Domains, "domain")))
	}
	if v.Blocking > 0 {
		out = append(out, fmt.Sprintf("findings: %d unwaived %s at or above fail_on = %s", v.Blocking, plural(v.Blocking, "finding"), v.FailOn))
	} else {
		out = append(out, fmt.Sprintf("findings: no unwaived finding at or above fail_on = %s", v.FailOn))
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// VerdictRecord is the verdict as report.json carries it ("verdict").
type VerdictRecord struct {
	Status    VerdictStatus  `json:"status"`
	Word      string         `json:"word"`
	FailOn    rules.Severity `json:"fail_on"`
	Reason    string         `json:"reason"`
	Reasons   []string       `json:"reasons"`
	Targeted  int            `json:"targeted"`
	Collected int            `json:"collected"`
	Blocking  int            `json:"blocking"`
	// Directory domains configured and read (absent without a directory).
	Domains     int `json:"directory_domains,omitempty"`
	DomainsRead int `json:"directory_domains_read,omitempty"`
}

// Record is the verdict as report.json records it.
func (v Verdict) Record() VerdictRecord {
	return VerdictRecord{Status: v.Status, Word: v.Word(), FailOn: v.FailOn, Reason: v.Reason(), Reasons: v.Reasons(),
		Targeted: v.Targeted, Collected: v.Collected, Blocking: v.Blocking, Domains: v.Domains, DomainsRead: v.DomainsRead}
}
