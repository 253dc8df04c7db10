// Package rules evaluates interpreted host facts against the RDS licensing rule
// catalogue and yields one result per rule × subject: pass, fail, not applicable or
// error, so that a report proves coverage and not only failures. It also reads what the
// evaluation is configured by: the rule set (severities, parameters, waivers) and the
// CAL entitlement ledger.
package rules

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Severity of a rule or finding. The zero value is Info.
type Severity int

const (
	SevInfo Severity = iota
	SevLow
	SevMedium
	SevHigh
	SevCritical
)

func (s Severity) String() string {
	switch s {
	case SevInfo:
		return "info"
	case SevLow:
		return "low"
	case SevMedium:
		return "medium"
	case SevHigh:
		return "high"
	case SevCritical:
		return "critical"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity parses a severity name (case-insensitive).
func ParseSeverity(s string) (Severity, error) {
	var names []string
	for sev := SevInfo; sev <= SevCritical; sev++ {
		if strings.EqualFold(s, sev.String()) {
			return sev, nil
		}
		names = append(names, sev.String())
	}
	return 0, fmt.Errorf("unknown severity %q (want one of %s)", s, strings.Join(names, ", "))
}

// MarshalText writes the severity name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Outcome of one rule for one subject.
type Outcome string

const (
	Pass          Outcome = "pass"
	Fail          Outcome = "fail"
	NotApplicable Outcome = "not_applicable"
	Error         Outcome = "error" // the evidence the rule needs is missing
)

// SubjectKind says what a result is about.
type SubjectKind string

const (
	SubjectHost  SubjectKind = "host"
	SubjectGroup SubjectKind = "group"
	SubjectFleet SubjectKind = "fleet"
)

// Subject is what a result is about: a host, a group of session hosts, or a fleet-wide
// item (a CAL type × version, a key pack). Group is the host's group for host subjects.
type Subject struct {
	Kind  SubjectKind `json:"kind"`
	Name  string      `json:"name"`
	Group string      `json:"group,omitempty"`
}

func (s Subject) String() string { return string(s.Kind) + ":" + s.Name }

// EvidenceField is one piece of evidence a result rests on, named by where it was read.
type EvidenceField struct {
	Field string `json:"field"` // e.g. `registry:HKLM\SOFTWARE\Policies\...\LicensingMode`, `wmi:Win32_TerminalServiceSetting.LicensingType`
	Value string `json:"value"`
}

// Finding statuses beyond the outcome: how a failing result stands against waivers and
// history.
const (
	StatusNew           = "new"
	StatusPersisting    = "persisting"
	StatusWaived        = "waived"
	StatusExpiredWaiver = "expired_waiver"
)

// Result is one rule's verdict on one subject.
type Result struct {
	ID       string          `json:"id"` // stable finding ID: hash of rule, subject and key
	RuleID   string          `json:"rule_id"`
	Severity Severity        `json:"severity"`
	Outcome  Outcome         `json:"outcome"`
	Subject  Subject         `json:"subject"`
	Key      string          `json:"key,omitempty"` // distinguishes several results of one rule on one subject
	Message  string          `json:"message"`
	Observed string          `json:"observed,omitempty"`
	Expected string          `json:"expected,omitempty"`
	Source   string          `json:"source,omitempty"` // evidence source: policy, local, wmi, ledger...
	Evidence []EvidenceField `json:"evidence,omitempty"`
	// Strength states how strongly the evidence supports the finding when it does not
	// prove it on its own (domain.md §3: no single grace signal proves abuse).
	Strength string `json:"strength,omitempty"`

	// Set by waiver application; a waived failure stays a failure with Waived true.
	Waived   bool   `json:"waived,omitempty"`
	WaiverID string `json:"waiver_id,omitempty"`

	// Set from history: new or persisting, with first and last seen.
	Lifecycle string     `json:"lifecycle,omitempty"`
	FirstSeen *time.Time `json:"first_seen,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
}

// Status is the finding's status for reports: waived, new or persisting (expired waivers
// raise their own RDS-WAIVER finding).
func (r *Result) Status() string {
	switch {
	case r.Waived:
		return StatusWaived
	case r.Lifecycle != "":
		return r.Lifecycle
	}
	return StatusNew
}

// IsFinding reports whether the result belongs in the findings list (anything but a pass
// or not-applicable).
func (r *Result) IsFinding() bool { return r.Outcome == Fail || r.Outcome == Error }

// FindingID is the stable ID of a rule's result on a subject: the same rule, subject and
// key give the same ID in every run, so history can follow a finding across runs. It is
// "F-" and the first 5 bytes, in upper-case hex, of the SHA-256 of rule ID, subject kind,
// lower-cased subject name and key, separated by NUL bytes.
func FindingID(ruleID string, s Subject, key string) string {
	var id [findingIDLen]byte
	return string(appendFindingID(id[:0], ruleID, s, key))
}

// findingIDLen is the length of a finding ID: "F-" and 10 hex digits.
const findingIDLen = 12

// appendFindingID appends FindingID(ruleID, s, key) to dst.
func appendFindingID(dst []byte, ruleID string, s Subject, key string) []byte {
	var buf [128]byte // the hashed text, on the stack for the usual lengths
	b := append(buf[:0], ruleID...)
	b = append(b, 0)
	b = append(b, s.Kind...)
	b = append(b, 0)
	b = appendLower(b, s.Name)
	b = append(b, 0)
	b = append(b, key...)
	h := sha256.Sum256(b)
	const digits = "0123456789ABCDEF"
	dst = append(dst, 'F', '-')
	for _, x := range h[:5] {
		dst = append(dst, digits[x>>4], digits[x&0x0f])
	}
	return dst
}

// appendLower appends strings.ToLower(s), lowering ASCII in place.
func appendLower(b []byte, s string) []byte {
	n := len(b)
	b = append(b, s...)
	for i := n; i < len(b); i++ {
		switch c := b[i]; {
		case c >= utf8.RuneSelf:
			return append(b[:n], strings.ToLower(s)...)
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}
