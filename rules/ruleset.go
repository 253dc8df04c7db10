package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/internal/yamlbound"
)

// RuleSetVersion is the rule-set file format version this build reads.
const RuleSetVersion = 1

// RuleSet is a parsed rule-set file (samples/rules.yaml documents the format):
//
//	version: 1
//	fail_on: high
//	rules:
//	  RDS-GRACE-001: {severity: high, params: {critical_days: 7}}
//	  RDS-CLIENT-001: {enabled: false}
//	expected_modes: {farm-a: per_user}
//	waivers:
//	  - id: W-001
//	    rule: RDS-GRACE-007
//	    scope: {host: rdsh-01}        # or {group: farm-a}, {glob: "lab-*"}, {subject: "per_user/2019"}
//	    justification: ...
//	    owner: ...
//	    approver: ...
//	    ticket: ...
//	    expires: 2027-03-31           # valid through this day (UTC)
type RuleSet struct {
	Version int
	FailOn  Severity
	Rules   map[string]RuleConfig
	// ExpectedModes maps a group to the licensing mode its session hosts must use
	// (2 Per Device, 4 Per User, 6 AAD Per User).
	ExpectedModes map[string]int64
	Waivers       []Waiver
	// Source is the file name; Hash the SHA-256 of its bytes (hex), "" for the default.
	Source string
	Hash   string
}

// RuleConfig is one rule's settings in the rule set.
type RuleConfig struct {
	Enabled  *bool
	Severity *Severity
	Params   map[string]any
}

// Waiver accepts a rule's failures on a scope until it expires.
type Waiver struct {
	ID            string      `json:"id"`
	Rule          string      `json:"rule"`
	Scope         WaiverScope `json:"scope"`
	Justification string      `json:"justification"`
	Owner         string      `json:"owner"`
	Approver      string      `json:"approver,omitempty"`
	Ticket        string      `json:"ticket,omitempty"`
	Expires       time.Time   `json:"expires,omitempty"` // zero: no expiry given (a lint error)
	Line          int         `json:"line,omitempty"`
}

// WaiverScope is a waiver's scope: exactly one of Host (exact name), Group, Glob (path.Match
// pattern on host names, case-insensitive) or Subject (exact subject name of any kind,
// e.g. a fleet item "per_user/2019").
type WaiverScope struct {
	Host    string `json:"host,omitempty" yaml:"host"`
	Group   string `json:"group,omitempty" yaml:"group"`
	Glob    string `json:"glob,omitempty" yaml:"glob"`
	Subject string `json:"subject,omitempty" yaml:"subject"`
}

func (s WaiverScope) String() string {
	switch {
	case s.Host != "":
		return "host " + s.Host
	case s.Group != "":
		return "group " + s.Group
	case s.Glob != "":
		return "glob " + s.Glob
	case s.Subject != "":
		return "subject " + s.Subject
	}
	return "empty scope"
}

// matches reports whether the scope covers a result's subject.
func (s WaiverScope) matches(sub Subject) bool {
	switch {
	case s.Host != "":
		return sub.Kind == SubjectHost && strings.EqualFold(s.Host, sub.Name)
	case s.Group != "":
		return (sub.Kind == SubjectGroup && strings.EqualFold(s.Group, sub.Name)) ||
			(sub.Kind == SubjectHost && strings.EqualFold(s.Group, sub.Group))
	case s.Glob != "":
		ok, _ := path.Match(strings.ToLower(s.Glob), strings.ToLower(sub.Name))
		return sub.Kind == SubjectHost && ok
	case s.Subject != "":
		return strings.EqualFold(s.Subject, sub.Name)
	}
	return false
}

// expired reports whether the waiver has lapsed at now: it is valid through its expiry
// day (UTC).
func (w *Waiver) expired(now time.Time) bool {
	return !w.Expires.IsZero() && !now.Before(w.Expires.AddDate(0, 0, 1))
}

// DefaultRuleSet enables every rule at its default severity and fails on high.
func DefaultRuleSet() *RuleSet {
	return &RuleSet{Version: RuleSetVersion, FailOn: SevHigh}
}

// Enabled reports whether the rule runs.
func (rs *RuleSet) Enabled(id string) bool {
	if rc, ok := rs.Rules[id]; ok && rc.Enabled != nil {
		return *rc.Enabled
	}
	return true
}

func (rs *RuleSet) severity(info RuleInfo) (Severity, bool) {
	if rc, ok := rs.Rules[info.ID]; ok && rc.Severity != nil {
		return *rc.Severity, true
	}
	return info.Severity, false
}

func (rs *RuleSet) param(ruleID, name string) any {
	if rc, ok := rs.Rules[ruleID]; ok {
		if v, ok := rc.Params[name]; ok {
			return v
		}
	}
	if info, ok := Lookup(ruleID); ok {
		for _, p := range info.Params {
			if p.Name == name {
				return p.Default
			}
		}
	}
	panic(fmt.Sprintf("rules: %s has no parameter %q", ruleID, name))
}

func (rs *RuleSet) intParam(ruleID, name string) int {
	v, _ := rs.param(ruleID, name).(int)
	return v
}

// LoadRuleSet reads and parses a rule-set file.
func LoadRuleSet(file string) (*RuleSet, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read rule set: %w", err)
	}
	return ParseRuleSet(file, data)
}

type ruleSetFile struct {
	Version       *int                      `yaml:"version"`
	FailOn        string                    `yaml:"fail_on"`
	Rules         map[string]ruleConfigFile `yaml:"rules"`
	ExpectedModes map[string]string         `yaml:"expected_modes"`
	Waivers       []waiverFile              `yaml:"waivers"`
}

type ruleConfigFile struct {
	Enabled  *bool          `yaml:"enabled"`
	Severity string         `yaml:"severity"`
	Params   map[string]any `yaml:"params"`
}

type waiverFile struct {
	ID            string      `yaml:"id"`
	Rule          string      `yaml:"rule"`
	Scope         WaiverScope `yaml:"scope"`
	Justification string      `yaml:"justification"`
	Owner         string      `yaml:"owner"`
	Approver      string      `yaml:"approver"`
	Ticket        string      `yaml:"ticket"`
	Expires       string      `yaml:"expires"`
}

// ParseRuleSet parses rule-set bytes strictly: unknown keys, unknown rule IDs, unknown
// parameters, bad severities and malformed waivers are errors naming the file and line.
func ParseRuleSet(name string, data []byte) (*RuleSet, error) {
	var raw ruleSetFile
	if err := decodeYAML(name, "rule set", data, &raw); err != nil {
		return nil, err
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lines := nodeLines(&root)
	at := func(p string) string {
		if l, ok := lines[p]; ok {
			return fmt.Sprintf("%s:%d", name, l)
		}
		return name
	}
	sum := sha256.Sum256(data)
	rs := &RuleSet{FailOn: SevHigh, Rules: map[string]RuleConfig{}, ExpectedModes: map[string]int64{},
		Source: name, Hash: hex.EncodeToString(sum[:])}
	if raw.Version == nil {
		return nil, fmt.Errorf("%s: version is required (want %d)", name, RuleSetVersion)
	}
	if *raw.Version != RuleSetVersion {
		return nil, fmt.Errorf("%s: version %d not supported (want %d)", at("version"), *raw.Version, RuleSetVersion)
	}
	rs.Version = *raw.Version
	if raw.FailOn != "" {
		sev, err := ParseSeverity(raw.FailOn)
		if err != nil {
			return nil, fmt.Errorf("%s: fail_on: %v", at("fail_on"), err)
		}
		rs.FailOn = sev
	}
	for _, id := range sortedKeys(raw.Rules) {
		rc := raw.Rules[id]
		info, ok := Lookup(id)
		if !ok {
			return nil, fmt.Errorf("%s: unknown rule ID %q", at("rules."+id), id)
		}
		out := RuleConfig{Enabled: rc.Enabled, Params: map[string]any{}}
		if rc.Severity != "" {
			sev, err := ParseSeverity(rc.Severity)
			if err != nil {
				return nil, fmt.Errorf("%s: rules.%s.severity: %v", at("rules."+id), id, err)
			}
			out.Severity = &sev
		}
		for _, pn := range sortedKeys(rc.Params) {
			var def *Param
			for i := range info.Params {
				if info.Params[i].Name == pn {
					def = &info.Params[i]
				}
			}
			if def == nil {
				return nil, fmt.Errorf("%s: rule %s has no parameter %q (known: %s)", at("rules."+id+".params."+pn), id, pn, paramNames(info))
			}
			v := rc.Params[pn]
			switch def.Default.(type) {
			case int:
				n, ok := v.(int)
				if !ok || n < 0 {
					return nil, fmt.Errorf("%s: rules.%s.params.%s: want a non-negative integer, got %v", at("rules."+id+".params."+pn), id, pn, v)
				}
			case string:
				if _, ok := v.(string); !ok {
					return nil, fmt.Errorf("%s: rules.%s.params.%s: want a string, got %v", at("rules."+id+".params."+pn), id, pn, v)
				}
			}
			out.Params[pn] = v
		}
		rs.Rules[id] = out
	}
	if err := validateGraceThresholds(rs); err != nil {
		return nil, fmt.Errorf("%s: %v", at("rules.RDS-GRACE-001"), err)
	}
	for _, g := range sortedKeys(raw.ExpectedModes) {
		m, err := parseMode(raw.ExpectedModes[g])
		if err != nil {
			return nil, fmt.Errorf("%s: expected_modes.%s: %v", at("expected_modes."+g), g, err)
		}
		rs.ExpectedModes[g] = m
	}
	seen := map[string]bool{}
	for i, wf := range raw.Waivers {
		loc := at(fmt.Sprintf("waivers.%d", i))
		w := Waiver{ID: wf.ID, Rule: wf.Rule, Scope: wf.Scope, Justification: wf.Justification,
			Owner: wf.Owner, Approver: wf.Approver, Ticket: wf.Ticket, Line: lines[fmt.Sprintf("waivers.%d", i)]}
		switch {
		case w.ID == "":
			return nil, fmt.Errorf("%s: waiver without id", loc)
		case seen[w.ID]:
			return nil, fmt.Errorf("%s: duplicate waiver id %q", loc, w.ID)
		case w.Rule == "":
			return nil, fmt.Errorf("%s: waiver %s: rule is required", loc, w.ID)
		case w.Rule == WaiverRuleID:
			return nil, fmt.Errorf("%s: waiver %s: %s cannot be waived", loc, w.ID, WaiverRuleID)
		case w.Justification == "":
			return nil, fmt.Errorf("%s: waiver %s: justification is required", loc, w.ID)
		case w.Owner == "":
			return nil, fmt.Errorf("%s: waiver %s: owner is required", loc, w.ID)
		}
		if _, ok := Lookup(w.Rule); !ok {
			return nil, fmt.Errorf("%s: waiver %s: unknown rule ID %q", loc, w.ID, w.Rule)
		}
		n := 0
		for _, s := range []string{w.Scope.Host, w.Scope.Group, w.Scope.Glob, w.Scope.Subject} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("%s: waiver %s: scope needs exactly one of host, group, glob, subject", loc, w.ID)
		}
		if w.Scope.Glob != "" {
			if _, err := path.Match(w.Scope.Glob, ""); err != nil {
				return nil, fmt.Errorf("%s: waiver %s: bad glob %q: %v", loc, w.ID, w.Scope.Glob, err)
			}
		}
		if wf.Expires != "" {
			t, err := time.Parse("2006-01-02", wf.Expires)
			if err != nil {
				return nil, fmt.Errorf("%s: waiver %s: expires %q: want a date YYYY-MM-DD", loc, w.ID, wf.Expires)
			}
			w.Expires = t
		}
		seen[w.ID] = true
		rs.Waivers = append(rs.Waivers, w)
	}
	return rs, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*?)( in type [\w.]+)?$`)

// yamlError turns a yaml.v3 error into "file:line: message" lines.
// decodeYAML decodes data, the file name, into v strictly: a key v has no field for is an
// error. Errors name the file and line; no document at all is "name: empty what".
func decodeYAML(name, what string, data []byte, v any) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil && len(root.Content) > 0 {
		if err := yamlbound.Check(root.Content[0], len(data)); err != nil {
			var be *yamlbound.Error
			if errors.As(err, &be) {
				return fmt.Errorf("%s:%d: %v", name, be.Line, err)
			}
			return fmt.Errorf("%s: %v", name, err)
		}
	} // a syntax error is reported by the decoder below
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty %s", name, what)
		}
		return yamlError(name, err)
	}
	return nil
}

func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var msgs []string
		for _, e := range te.Errors {
			if m := yamlLine.FindStringSubmatch(e); m != nil {
				msgs = append(msgs, fmt.Sprintf("%s:%s: %s", name, m[1], m[2]))
			} else {
				msgs = append(msgs, name+": "+e)
			}
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], m[2])
	}
	return fmt.Errorf("%s: %s", name, msg)
}

func paramNames(info RuleInfo) string {
	var n []string
	for _, p := range info.Params {
		n = append(n, p.Name)
	}
	return listOrNone(n)
}

func validateGraceThresholds(rs *RuleSet) error {
	cr, hi, me := rs.intParam("RDS-GRACE-001", "critical_days"), rs.intParam("RDS-GRACE-001", "high_days"), rs.intParam("RDS-GRACE-001", "medium_days")
	if !(cr <= hi && hi <= me) {
		return fmt.Errorf("RDS-GRACE-001 thresholds must satisfy critical_days <= high_days <= medium_days (got %d, %d, %d)", cr, hi, me)
	}
	return nil
}

func parseMode(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "per_device", "per device", "2":
		return facts.ModePerDevice, nil
	case "per_user", "per user", "4":
		return facts.ModePerUser, nil
	case "aad_per_user", "6":
		return facts.ModeAADPerUser, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want per_device, per_user or aad_per_user)", s)
}

// nodeLines maps dotted paths (rules.RDS-X, waivers.0, expected_modes.g) to the line of
// their key or item.
func nodeLines(root *yaml.Node) map[string]int {
	out := map[string]int{}
	var walk func(n *yaml.Node, prefix string, depth int)
	walk = func(n *yaml.Node, prefix string, depth int) {
		if depth > 4 {
			return
		}
		join := func(k string) string {
			if prefix == "" {
				return k
			}
			return prefix + "." + k
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix, depth)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := join(n.Content[i].Value)
				out[p] = n.Content[i].Line
				walk(n.Content[i+1], p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := join(strconv.Itoa(i))
				out[p] = c.Line
				walk(c, p, depth+1)
			}
		}
	}
	walk(root, "", 0)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// LintWaivers checks the waivers for `rdsaudit validate`: unknown rule IDs, missing
// approver or expiry, expiry in the past, scopes that match no host. hostNames are the
// inventory's host names, groups their groups (a group scope is checked against them).
func LintWaivers(rs *RuleSet, hosts []evidence.HostRef, now time.Time) []string {
	var out []string
	for _, w := range rs.Waivers {
		loc := rs.Source
		if w.Line > 0 {
			loc = fmt.Sprintf("%s:%d", rs.Source, w.Line)
		}
		p := func(f string, a ...any) { out = append(out, loc+": waiver "+w.ID+": "+fmt.Sprintf(f, a...)) }
		if _, ok := Lookup(w.Rule); !ok {
			p("unknown rule ID %q", w.Rule)
		}
		if strings.TrimSpace(w.Approver) == "" {
			p("no approver")
		}
		if w.Expires.IsZero() {
			p("no expiry")
		} else if w.expired(now) {
			p("expired on %s", w.Expires.Format("2006-01-02"))
		}
		if w.Scope.Subject != "" {
			continue // fleet subjects are not inventory hosts
		}
		matched := false
		for _, h := range hosts {
			if w.Scope.matches(Subject{Kind: SubjectHost, Name: h.Name, Group: h.Group}) {
				matched = true
				break
			}
		}
		if !matched {
			p("scope %s matches no host in the inventory", w.Scope)
		}
	}
	return out
}

// WaiverStatus is one waiver's standing in an evaluation.
type WaiverStatus struct {
	Waiver
	// Expired: the waiver has lapsed and no longer applies.
	Expired bool `json:"expired"`
	// Applied counts the failures it waived; Matched counts the failures in its scope
	// (for an expired waiver: the failures it would have waived).
	Applied int      `json:"applied"`
	Matched int      `json:"matched"`
	Results []string `json:"results,omitempty"` // finding IDs in scope
}

// applyWaivers marks failures covered by an unexpired waiver (the first in file order
// wins) and returns each waiver's status.
func applyWaivers(c *evalCtx, results []Result) []WaiverStatus {
	ws := make([]WaiverStatus, len(c.rs.Waivers))
	for i, w := range c.rs.Waivers {
		ws[i] = WaiverStatus{Waiver: w, Expired: w.expired(c.now)}
	}
	if len(ws) == 0 {
		return nil
	}
	for i := range results {
		r := &results[i]
		if r.Outcome != Fail {
			continue
		}
		for j := range ws {
			w := &ws[j]
			if w.Rule != r.RuleID || !w.Scope.matches(r.Subject) {
				continue
			}
			w.Matched++
			w.Results = append(w.Results, r.ID)
			if !w.Expired && !r.Waived {
				r.Waived, r.WaiverID = true, w.ID
				w.Applied++
			}
		}
	}
	for i := range ws {
		sort.Strings(ws[i].Results)
	}
	return ws
}

// checkWaivers is RDS-WAIVER-001: one result per waiver, failing when it has expired.
func checkWaivers(c *evalCtx, ws []WaiverStatus, s *sink) {
	for _, w := range ws {
		r := Result{Subject: Subject{Kind: SubjectFleet, Name: "waiver/" + w.ID}, Source: "ruleset",
			Evidence: []EvidenceField{{Field: fmt.Sprintf("ruleset:%s:%d", c.rs.Source, w.Line), Value: fmt.Sprintf("rule %s, %s, expires %s", w.Rule, w.Scope, expiresString(w.Waiver))}},
			Expected: "waiver valid through its expiry day (UTC)", Observed: "expires " + expiresString(w.Waiver)}
		if w.Expired {
			r.Outcome = Fail
			r.Message = fmt.Sprintf("waiver %s for %s (%s, owner %s, ticket %s) expired on %s and no longer applies; %d failure(s) in its scope count again",
				w.ID, w.Rule, w.Scope, w.Owner, orNone(w.Ticket), w.Expires.Format("2006-01-02"), w.Matched)
		} else {
			r.Outcome = Pass
			r.Message = fmt.Sprintf("waiver %s for %s (%s) is valid; it waived %d failure(s)", w.ID, w.Rule, w.Scope, w.Applied)
		}
		s.add(r)
	}
}

func expiresString(w Waiver) string {
	if w.Expires.IsZero() {
		return "never (no expiry given)"
	}
	return w.Expires.Format("2006-01-02")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
