// Package report renders one audit run as a single Report value, judges it (Verdict),
// writes it as an Excel workbook and as JSON (schema rdsaudit.report/v1), and publishes
// the run directory atomically with a signed, hash-verified manifest.
//
// Data flows one way: collect (evidence) → facts → rules (results) → report. Writers
// take an io.Writer; Publish owns the files.
package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

// Schema is the version tag of report.json. Bump it on any change an older reader would
// misread; report/schema/report.schema.json describes it.
const Schema = "rdsaudit.report/v1"

// ScoreFormula states how Score.Value is computed; it is printed in both outputs.
const ScoreFormula = "score = 100 × passed ÷ (passed + failed + errors), over every rule × subject result; " +
	"waived failures and not-applicable results are left out of both terms; rounded to one decimal; " +
	"null when nothing was evaluated"

// Report is one audit run, rendered identically by every writer.
type Report struct {
	Schema string `json:"schema"`
	Run    Run    `json:"run"`
	// Judged is the verdict as report.json records it. Writers never read it: they
	// compute Verdict(), the one function the exit code comes from; Decode fills it.
	Judged         *VerdictRecord  `json:"verdict,omitempty"`
	Coverage       Coverage        `json:"coverage"`
	Score          Score           `json:"score"`
	Severities     []SeverityCount `json:"severities"`
	Results        []rules.Result  `json:"results"`
	RuleCoverage   []RuleCoverage  `json:"rule_coverage"`
	Hosts          []Host          `json:"hosts"`
	LicenseServers []LicenseServer `json:"license_servers"`
	Position       []PositionRow   `json:"position"`
	IssuedCALs     []IssuedCAL     `json:"issued_cals"`
	Drift          *rules.Drift    `json:"drift"`
	// Changes since the previous run besides findings (key packs, issued CALs, CAL
	// position); absent without a previous report (BuildInput.Previous).
	Changes   []Change      `json:"changes,omitempty"`
	Waivers   []Waiver      `json:"waivers"`
	Catalogue []RuleInfo    `json:"catalogue"`
	Evidence  []EvidenceRef `json:"evidence"`
	PerUser   *PerUser      `json:"per_user,omitempty"` // peruser.go
}

// Run is the run's metadata.
type Run struct {
	ID             string         `json:"id"`
	StartedAt      time.Time      `json:"started_at"`
	FinishedAt     time.Time      `json:"finished_at"`
	ToolVersion    string         `json:"tool_version"`
	RuleSetVersion string         `json:"rule_set_version"`
	RuleSetHash    string         `json:"rule_set_hash"`
	ConfigHash     string         `json:"config_hash"`
	Collector      string         `json:"collector"`
	FailOn         rules.Severity `json:"fail_on"`
	// EvaluatedAt is the time the rules were evaluated as of: the --as-of time when
	// Pinned, else when the run evaluated. Zero only in reports written before it existed.
	EvaluatedAt time.Time `json:"evaluated_at"`
	// Pinned says EvaluatedAt was set by the user (--as-of), not taken from the clock.
	Pinned bool `json:"pinned"`
	// CollectionWindow spans the collected_at times of the evidence of collected hosts;
	// nil when no host was collected.
	CollectionWindow *Window `json:"collection_window,omitempty"`
	// SigningKey is the fingerprint of the public key that signs the run's manifest
	// (KeyFingerprint), set when the run is published signed; empty when unsigned.
	SigningKey string `json:"signing_key,omitempty"`
	// Partial is set only on a run stopped before every host was collected
	// (report/partial.go); a complete run has no "partial" key.
	Partial *Partial `json:"partial,omitempty"`
}

// Coverage says which targeted hosts were collected.
type Coverage struct {
	Targeted  int          `json:"targeted"`
	Collected int          `json:"collected"`
	Failed    int          `json:"failed"`
	Skipped   int          `json:"skipped"`
	ByClass   []ClassCount `json:"by_class"`
	Hosts     []HostStatus `json:"hosts"`
	// NotChecked counts the rule results that could not be evaluated because their host
	// was not collected (outcome error). They are in results, never listed as findings:
	// the host's one finding is RDS-COLLECT-001 or RDS-COLLECT-002.
	NotChecked int `json:"not_checked"`
	// Bundles is set on a run evaluated from evidence bundles (bundles.go).
	Bundles *BundleCoverage `json:"bundles,omitempty"`
}

// Window is a closed time interval.
type Window struct {
	Earliest time.Time `json:"earliest"`
	Latest   time.Time `json:"latest"`
}

// ClassCount counts hosts not collected by failure class.
type ClassCount struct {
	Class evidence.FailureClass `json:"class"`
	Count int                   `json:"count"`
}

// HostStatus is one targeted host's collection status.
type HostStatus struct {
	Name          string                  `json:"name"`
	Group         string                  `json:"group,omitempty"`
	Roles         []string                `json:"roles,omitempty"`
	Status        evidence.Status         `json:"status"`
	FailureClass  evidence.FailureClass   `json:"failure_class,omitempty"`
	Message       string                  `json:"message,omitempty"`
	Attempts      int                     `json:"attempts,omitempty"`
	Collector     string                  `json:"collector,omitempty"`
	CollectedAt   time.Time               `json:"collected_at"`
	SectionErrors []evidence.SectionError `json:"section_errors,omitempty"`
	// NotChecked counts this uncollected host's rule results that are errors (evidence
	// missing); see Coverage.NotChecked.
	NotChecked int `json:"not_checked,omitempty"`
}

// Score is the compliance score with its formula.
type Score struct {
	Value   *float64 `json:"value"`
	Formula string   `json:"formula"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Errors  int      `json:"errors"`
	Waived  int      `json:"waived"`
}

// SeverityCount counts failures of one severity (errors are counted in Score.Errors).
type SeverityCount struct {
	Severity rules.Severity `json:"severity"`
	Findings int            `json:"findings"` // not waived
	Waived   int            `json:"waived"`
}

// RuleCoverage counts one rule's results by outcome, so a report proves what was checked.
type RuleCoverage struct {
	RuleID        string         `json:"rule_id"`
	Title         string         `json:"title,omitempty"`
	Severity      rules.Severity `json:"severity"`
	Subjects      int            `json:"subjects"`
	Pass          int            `json:"pass"`
	Fail          int            `json:"fail"`
	Error         int            `json:"error"`
	NotApplicable int            `json:"not_applicable"`
	Waived        int            `json:"waived"`
}

// Host is one session host's interpreted licensing configuration.
type Host struct {
	Name                 string          `json:"name"`
	Group                string          `json:"group,omitempty"`
	Roles                []string        `json:"roles,omitempty"`
	Status               evidence.Status `json:"status"`
	Mode                 *int64          `json:"mode,omitempty"`
	ModeName             string          `json:"mode_name"`
	ModeSource           string          `json:"mode_source,omitempty"`
	PolicyMode           *int64          `json:"policy_mode,omitempty"`
	LocalMode            *int64          `json:"local_mode,omitempty"`
	WMIMode              *int64          `json:"wmi_mode,omitempty"`
	LicenseServers       []string        `json:"license_servers,omitempty"`
	LicenseServerSource  string          `json:"license_server_source,omitempty"`
	PolicyLicenseServers []string        `json:"policy_license_servers,omitempty"`
	LocalLicenseServers  []string        `json:"local_license_servers,omitempty"`
	WMILicenseServers    []string        `json:"wmi_license_servers,omitempty"`
	GraceDays            *int64          `json:"grace_days,omitempty"`
	GraceError           string          `json:"grace_error,omitempty"`
	GraceKeyWritten      *time.Time      `json:"grace_key_written,omitempty"`
	OSCaption            string          `json:"os_caption,omitempty"`
	OSVersion            string          `json:"os_version,omitempty"`
	OSBuild              string          `json:"os_build,omitempty"`
	Release              string          `json:"release,omitempty"`
	InstallDate          *time.Time      `json:"install_date,omitempty"`
	Domain               string          `json:"domain,omitempty"`
}

// Count is a licence count; nil where used means unknown.
type Count struct {
	Value     int64 `json:"value"`
	Unlimited bool  `json:"unlimited,omitempty"`
}

func (c *Count) String() string {
	switch {
	case c == nil:
		return "unknown"
	case c.Unlimited:
		return "unlimited"
	}
	return fmt.Sprint(c.Value)
}

func countOf(c facts.Count) *Count {
	if !c.Known {
		return nil
	}
	return &Count{Value: c.Value, Unlimited: c.Unlimited}
}

// LicenseServer is what one license server holds.
type LicenseServer struct {
	Name            string          `json:"name"`
	Status          evidence.Status `json:"status"`
	Activation      *int64          `json:"activation,omitempty"`
	ActivationName  string          `json:"activation_name"`
	ActivationError string          `json:"activation_error,omitempty"`
	KeyPacks        []KeyPack       `json:"key_packs,omitempty"`
	IssuedTotal     int             `json:"issued_total"`
	IssuedTruncated bool            `json:"issued_truncated,omitempty"`
}

// KeyPack is one key pack on a license server.
type KeyPack struct {
	ID           int64      `json:"id"`
	Description  string     `json:"description,omitempty"`
	TypeAndModel string     `json:"type_and_model,omitempty"`
	PackType     string     `json:"pack_type"`
	CALType      string     `json:"cal_type"`
	VersionID    *int64     `json:"version_id,omitempty"`
	Version      string     `json:"version,omitempty"`
	Total        *Count     `json:"total,omitempty"`
	Issued       *Count     `json:"issued,omitempty"`
	Available    *Count     `json:"available,omitempty"`
	Expires      *time.Time `json:"expires,omitempty"`
	ExpiresRaw   string     `json:"expires_raw,omitempty"`
	BuiltIn      bool       `json:"built_in,omitempty"`
	Temporary    bool       `json:"temporary,omitempty"`
}

// IssuedCAL is one issued Per Device CAL.
type IssuedCAL struct {
	Server    string     `json:"server"`
	LicenseID int64      `json:"license_id"`
	KeyPackID int64      `json:"key_pack_id"`
	Computer  string     `json:"computer,omitempty"`
	User      string     `json:"user,omitempty"`
	Status    string     `json:"status"`
	Temporary bool       `json:"temporary,omitempty"`
	Issued    *time.Time `json:"issued,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"`
}

// PositionRow is the CAL position of one CAL type × version (for true-up), from the
// rule engine's rules.PositionRow. Shortfall is positive when usage exceeds the
// entitlement, negative for a surplus.
type PositionRow struct {
	CALType       string   `json:"cal_type"`
	VersionID     *int64   `json:"version_id,omitempty"`
	Version       string   `json:"version"`
	Entitled      *int64   `json:"entitled,omitempty"`
	Installed     *Count   `json:"installed,omitempty"`
	Issued        *Count   `json:"issued,omitempty"`
	Used          *int64   `json:"used,omitempty"`  // Per User usage from license-server reports
	Usage         *int64   `json:"usage,omitempty"` // what the shortfall is computed from
	UsageSource   string   `json:"usage_source,omitempty"`
	Shortfall     *int64   `json:"shortfall,omitempty"`
	UnitCost      *float64 `json:"unit_cost,omitempty"`
	EstimatedCost *float64 `json:"estimated_cost,omitempty"`
	Currency      string   `json:"currency,omitempty"`
	Complete      bool     `json:"complete"` // every license server collected: figures are totals, not lower bounds
	// UsageLowerBound: the directory's Per User figure leaves out holders it could not
	// place (unmapped version, unreadable expiry): usage is at least Usage (Note says).
	UsageLowerBound bool   `json:"usage_lower_bound,omitempty"`
	Note            string `json:"note,omitempty"`
}

// Waiver is one configured waiver and how it applied (from rules.WaiverStatus).
type Waiver struct {
	ID       string     `json:"id"`
	RuleID   string     `json:"rule_id"`
	Scope    string     `json:"scope"`
	Owner    string     `json:"owner,omitempty"`
	Approver string     `json:"approver,omitempty"`
	Ticket   string     `json:"ticket,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Expires  *time.Time `json:"expires,omitempty"`
	Expired  bool       `json:"expired,omitempty"`
	Applied  int        `json:"applied"`           // failures it waived
	Matched  int        `json:"matched"`           // failures in its scope (for an expired waiver: those it would have waived)
	Results  []string   `json:"results,omitempty"` // finding IDs in its scope
}

// RuleInfo is one rule catalogue entry.
type RuleInfo struct {
	ID          string         `json:"id"`
	Severity    rules.Severity `json:"severity"`
	Title       string         `json:"title"`
	Rationale   string         `json:"rationale,omitempty"`
	Remediation string         `json:"remediation,omitempty"`
	References  []string       `json:"references,omitempty"`
}

// EvidenceRef points at one host's raw evidence file in the run directory.
type EvidenceRef struct {
	Host   string `json:"host"`
	Path   string `json:"path"` // evidence/<file>.json
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// RunInfo is what the caller knows about the run.
type RunInfo struct {
	ID             string
	StartedAt      time.Time
	FinishedAt     time.Time
	ToolVersion    string
	RuleSetVersion string
	RuleSetHash    string
	ConfigHash     string
	Collector      string
	FailOn         rules.Severity
	// EvaluatedAt is the evaluation time; zero means StartedAt. Pinned: set by --as-of.
	EvaluatedAt time.Time
	Pinned      bool
	Partial     *Partial // nil for a complete run
}

// Evaluation is what the rule engine produced. It mirrors rules.Evaluation.
type Evaluation struct {
	// RuleSetVersion, RuleSetHash and FailOn fill the run metadata where RunInfo leaves
	// them empty.
	RuleSetVersion string
	RuleSetHash    string
	FailOn         *rules.Severity
	Results        []rules.Result
	Waivers        []Waiver
	Position       []PositionRow
	Catalogue      []RuleInfo
}

// BuildInput is everything Build renders.
type BuildInput struct {
	Run RunInfo
	// Hosts is what the report needs of each host. A pipeline that streams evidence
	// to a Stage keeps only this; without it, Build derives it from Evidence (and Facts).
	Hosts    []HostInput
	Evidence []*evidence.Evidence
	// Facts per host; when nil, Build interprets the evidence itself.
	Facts      []*facts.Facts
	Evaluation Evaluation
	Drift      *rules.Drift // nil without history
	// Previous is the previous run's report (its report.json, decoded), for the changes
	// in key packs, issued CALs and CAL position; nil when there is none or it is
	// unreadable.
	Previous *Report
	PerUser  *PerUser // nil without a directory (peruser.go)
	// PreviousPerUser are the previous run's Per User counts as history recorded them
	// (nil when it recorded none), for the per_user changes.
	PreviousPerUser []PerUserCount
}

// HostInput is what the report needs of one host once its evidence is staged: its
// facts, where the evidence came from, and the staged evidence file.
type HostInput struct {
	Facts       *facts.Facts
	Collector   string
	CollectedAt time.Time
	Evidence    EvidenceRef
}

// hostInputs derives the hosts' inputs from whole evidence documents.
func hostInputs(evs []*evidence.Evidence, fs []*facts.Facts) []HostInput {
	byHost := map[string]*facts.Facts{}
	for _, f := range fs {
		if f != nil {
			byHost[strings.ToLower(f.Host.Name)] = f
		}
	}
	names := EvidenceFileNames(hostNames(evs))
	out := make([]HostInput, len(evs))
	for i, ev := range evs {
		f := byHost[strings.ToLower(ev.Host.Name)]
		if f == nil {
			f = facts.Interpret(ev)
		}
		out[i] = HostInput{Facts: f, Collector: ev.Collector, CollectedAt: ev.CollectedAt, Evidence: evidenceRef(ev, names[ev.Host.Name])}
	}
	return out
}

// Build renders the run into a Report. Every list is sorted deterministically; the
// result does not depend on the order of the inputs. The report shares the
// evaluation's results slice: Build sorts it in place and fills missing finding IDs.
func Build(in BuildInput) *Report {
	r := &Report{
		Schema: Schema,
		Run: Run{ID: in.Run.ID, StartedAt: in.Run.StartedAt.UTC(), FinishedAt: in.Run.FinishedAt.UTC(),
			ToolVersion: in.Run.ToolVersion, RuleSetVersion: in.Run.RuleSetVersion, RuleSetHash: in.Run.RuleSetHash,
			ConfigHash: in.Run.ConfigHash, Collector: in.Run.Collector, FailOn: in.Run.FailOn, Partial: in.Run.Partial,
			EvaluatedAt: in.Run.EvaluatedAt.UTC(), Pinned: in.Run.Pinned},
		Results: []rules.Result{}, RuleCoverage: []RuleCoverage{}, Hosts: []Host{}, LicenseServers: []LicenseServer{},
		Position: []PositionRow{}, IssuedCALs: []IssuedCAL{}, Waivers: []Waiver{}, Catalogue: []RuleInfo{},
		Evidence: []EvidenceRef{}, Drift: in.Drift, PerUser: in.PerUser,
	}
	if r.Run.EvaluatedAt.IsZero() {
		r.Run.EvaluatedAt = r.Run.StartedAt
	}
	hosts := in.Hosts
	if hosts == nil {
		hosts = hostInputs(in.Evidence, in.Facts)
	} else {
		hosts = append([]HostInput(nil), hosts...)
	}
	sort.SliceStable(hosts, func(i, j int) bool { return hostLess(hosts[i].Facts.Host.Name, hosts[j].Facts.Host.Name) })
	r.Coverage = Coverage{ByClass: []ClassCount{}, Hosts: []HostStatus{}}
	classes := map[evidence.FailureClass]int{}
	for i := range hosts {
		h := &hosts[i]
		f := h.Facts
		r.addCoverage(h, classes)
		if f.Host.HasRole(evidence.RoleSessionHost) || len(f.Host.Roles) == 0 {
			r.Hosts = append(r.Hosts, hostRow(f))
		}
		if f.Host.HasRole(evidence.RoleLicenseServer) || f.Holdings != nil {
			r.addLicenseServer(f)
		}
		r.Evidence = append(r.Evidence, h.Evidence)
	}
	for c, n := range classes {
		r.Coverage.ByClass = append(r.Coverage.ByClass, ClassCount{Class: c, Count: n})
	}
	sort.Slice(r.Coverage.ByClass, func(i, j int) bool { return r.Coverage.ByClass[i].Class < r.Coverage.ByClass[j].Class })
	sort.SliceStable(r.IssuedCALs, func(i, j int) bool {
		a, b := r.IssuedCALs[i], r.IssuedCALs[j]
		if a.Server != b.Server {
			return hostLess(a.Server, b.Server)
		}
		if a.Computer != b.Computer {
			return strings.ToLower(a.Computer) < strings.ToLower(b.Computer)
		}
		return a.LicenseID < b.LicenseID
	})

	ev := in.Evaluation
	if r.Run.RuleSetVersion == "" {
		r.Run.RuleSetVersion = ev.RuleSetVersion
	}
	if r.Run.RuleSetHash == "" {
		r.Run.RuleSetHash = ev.RuleSetHash
	}
	if ev.FailOn != nil {
		r.Run.FailOn = *ev.FailOn
	}
	// The report takes the evaluation's results as they are (sorted in place, IDs
	// filled): a 10,000-host run has 220,000 of them, too many to copy.
	if ev.Results != nil {
		r.Results = ev.Results
	}
	for i := range r.Results {
		res := &r.Results[i]
		if res.ID == "" {
			res.ID = rules.FindingID(res.RuleID, res.Subject, res.Key)
		}
	}
	SortResults(r.Results)
	r.Catalogue = append(r.Catalogue, ev.Catalogue...)
	sort.SliceStable(r.Catalogue, func(i, j int) bool { return r.Catalogue[i].ID < r.Catalogue[j].ID })
	r.Waivers = append(r.Waivers, ev.Waivers...)
	sort.SliceStable(r.Waivers, func(i, j int) bool { return r.Waivers[i].ID < r.Waivers[j].ID })
	r.Position = append(r.Position, ev.Position...)
	sort.SliceStable(r.Position, func(i, j int) bool {
		a, b := r.Position[i], r.Position[j]
		if a.CALType != b.CALType {
			return a.CALType < b.CALType
		}
		return i64(a.VersionID) < i64(b.VersionID)
	})
	if r.Drift != nil {
		d := *r.Drift
		d.New = sortedCopy(d.New)
		d.Persisting = sortedCopy(d.Persisting)
		d.Resolved = append([]rules.Result{}, d.Resolved...)
		SortResults(d.Resolved)
		r.Drift = &d
	}
	r.score()
	r.ruleCoverage()
	r.notChecked()
	if in.Previous != nil && r.Drift != nil && r.Drift.PreviousRunID != "" && in.Previous.Run.ID == r.Drift.PreviousRunID {
		r.Changes = r.diffChanges(in.Previous)
	}
	if r.Drift != nil && r.Drift.PreviousRunID != "" {
		r.Changes = append(r.Changes, r.diffPerUser(in.PreviousPerUser)...)
	}
	return r
}

// uncollectedHosts returns the lower-cased names of the targeted hosts that were not
// collected.
func (r *Report) uncollectedHosts() map[string]int {
	m := map[string]int{}
	for i, h := range r.Coverage.Hosts {
		if h.Status != evidence.StatusCollected {
			m[strings.ToLower(h.Name)] = i
		}
	}
	return m
}

// unchecked reports whether a result is an error only because its host was not
// collected (un from uncollectedHosts).
func unchecked(res *rules.Result, un map[string]int) bool {
	if res.Outcome != rules.Error || res.Subject.Kind != rules.SubjectHost {
		return false
	}
	_, ok := un[strings.ToLower(res.Subject.Name)]
	return ok
}

// notChecked counts the results of uncollected hosts that are errors, per host and in
// total.
func (r *Report) notChecked() {
	un := r.uncollectedHosts()
	if len(un) == 0 {
		return
	}
	for i := range r.Results {
		if res := &r.Results[i]; unchecked(res, un) {
			r.Coverage.NotChecked++
			r.Coverage.Hosts[un[strings.ToLower(res.Subject.Name)]].NotChecked++
		}
	}
}

func i64(p *int64) int64 {
	if p == nil {
		return math.MinInt64
	}
	return *p
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

func hostNames(evs []*evidence.Evidence) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Host.Name
	}
	return out
}

func hostLess(a, b string) bool {
	la, lb := strings.ToLower(a), strings.ToLower(b)
	if la != lb {
		return la < lb
	}
	return a < b
}

// SortResults orders results as every output lists them: by rule, subject kind, subject
// name (case-insensitive), key, then ID.
func SortResults(rs []rules.Result) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := &rs[i], &rs[j]
		if a.RuleID != b.RuleID {
			return a.RuleID < b.RuleID
		}
		if a.Subject.Kind != b.Subject.Kind {
			return a.Subject.Kind < b.Subject.Kind
		}
		if la, lb := strings.ToLower(a.Subject.Name), strings.ToLower(b.Subject.Name); la != lb {
			return la < lb
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.ID < b.ID
	})
}

func (r *Report) addCoverage(h *HostInput, classes map[evidence.FailureClass]int) {
	c := &r.Coverage
	c.Targeted++
	f := h.Facts
	hs := HostStatus{Name: f.Host.Name, Group: f.Host.Group, Roles: f.Host.Roles, Status: f.Status,
		Collector: h.Collector, CollectedAt: h.CollectedAt.UTC(), SectionErrors: f.Errors}
	switch f.Status {
	case evidence.StatusCollected:
		c.Collected++
		r.widenWindow(h.CollectedAt)
	case evidence.StatusSkipped:
		c.Skipped++
	default:
		c.Failed++
	}
	if f.Failure != nil {
		hs.FailureClass, hs.Message, hs.Attempts = f.Failure.Class, f.Failure.Message, f.Failure.Attempts
		if f.Status != evidence.StatusCollected {
			classes[f.Failure.Class]++
		}
	}
	c.Hosts = append(c.Hosts, hs)
}

// widenWindow extends the run's collection window to include t (zero t is ignored).
func (r *Report) widenWindow(t time.Time) {
	if t.IsZero() {
		return
	}
	t = t.UTC()
	w := r.Run.CollectionWindow
	if w == nil {
		r.Run.CollectionWindow = &Window{Earliest: t, Latest: t}
		return
	}
	if t.Before(w.Earliest) {
		w.Earliest = t
	}
	if t.After(w.Latest) {
		w.Latest = t
	}
}

func hostRow(f *facts.Facts) Host {
	h := Host{Name: f.Host.Name, Group: f.Host.Group, Roles: f.Host.Roles, Status: f.Status}
	if !f.Collected() {
		h.ModeName = "unknown (not collected)"
		return h
	}
	m := f.Mode
	h.Mode, h.ModeName, h.ModeSource = m.Effective, facts.ModeName(m.Effective), m.EffectiveSource
	h.PolicyMode, h.LocalMode, h.WMIMode = m.Policy, m.Local, m.WMI
	l := f.LicenseServers
	h.LicenseServers, h.LicenseServerSource = l.Effective, l.Source
	h.PolicyLicenseServers, h.LocalLicenseServers, h.WMILicenseServers = l.Policy, l.Local, l.WMI
	h.GraceDays, h.GraceError, h.GraceKeyWritten = f.Grace.DaysLeft, f.Grace.MethodError, utcp(f.Grace.KeyWritten)
	o := f.OS
	h.OSCaption, h.OSVersion, h.OSBuild, h.Release = o.Caption, o.Version, o.Build, o.Release
	h.InstallDate, h.Domain = utcp(o.InstallDate), o.Domain
	return h
}

func utcp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// activationName names a license server's GetActivationStatus value, or "".
func activationName(status int64) string {
	switch status {
	case 0:
		return "activated"
	case 1:
		return "not activated"
	case 2:
		return "unknown"
	}
	return ""
}

func (r *Report) addLicenseServer(f *facts.Facts) {
	ls := LicenseServer{Name: f.Host.Name, Status: f.Status, ActivationName: "unknown (not collected)"}
	if h := f.Holdings; h != nil {
		ls.Activation, ls.ActivationError = h.Activation, h.ActivationError
		switch {
		case h.Activation == nil && h.ActivationError != "":
			ls.ActivationName = "unknown (call failed)"
		case h.Activation == nil:
			ls.ActivationName = "unknown (not read)"
		default:
			ls.ActivationName = activationName(*h.Activation)
			if ls.ActivationName == "" {
				ls.ActivationName = fmt.Sprintf("unknown(%d)", *h.Activation)
			}
		}
		for _, kp := range h.KeyPacks {
			ls.KeyPacks = append(ls.KeyPacks, KeyPack{ID: kp.ID, Description: kp.Description, TypeAndModel: kp.TypeAndModel,
				PackType: kp.PackTypeName, CALType: kp.CALType, VersionID: kp.VersionID, Version: kp.Version,
				Total: countOf(kp.Total), Issued: countOf(kp.Issued), Available: countOf(kp.Available),
				Expires: utcp(kp.Expires), ExpiresRaw: kp.ExpiresRaw, BuiltIn: kp.BuiltIn, Temporary: kp.Temporary})
		}
		sort.SliceStable(ls.KeyPacks, func(i, j int) bool { return ls.KeyPacks[i].ID < ls.KeyPacks[j].ID })
		ls.IssuedTotal, ls.IssuedTruncated = h.IssuedTotal, h.IssuedTruncated
		for _, il := range h.Issued {
			r.IssuedCALs = append(r.IssuedCALs, IssuedCAL{Server: f.Host.Name, LicenseID: il.LicenseID, KeyPackID: il.KeyPackID,
				Computer: il.Computer, User: il.User, Status: il.StatusName, Temporary: il.Temporary,
				Issued: utcp(il.Issued), Expires: utcp(il.Expires)})
		}
	}
	r.LicenseServers = append(r.LicenseServers, ls)
}

func evidenceRef(ev *evidence.Evidence, file string) EvidenceRef {
	var buf bytes.Buffer
	ref := EvidenceRef{Host: ev.Host.Name, Path: "evidence/" + file}
	if err := evidence.Encode(&buf, ev); err == nil {
		sum := sha256.Sum256(buf.Bytes())
		ref.SHA256, ref.Size = hex.EncodeToString(sum[:]), int64(buf.Len())
	}
	return ref
}

func (r *Report) score() {
	s := Score{Formula: ScoreFormula}
	for i := range r.Results {
		res := &r.Results[i]
		switch {
		case res.Waived && res.IsFinding():
			s.Waived++
		case res.Outcome == rules.Pass:
			s.Passed++
		case res.Outcome == rules.Fail:
			s.Failed++
		case res.Outcome == rules.Error:
			s.Errors++
		}
	}
	if d := s.Passed + s.Failed + s.Errors; d > 0 {
		v := math.Round(1000*float64(s.Passed)/float64(d)) / 10
		s.Value = &v
	}
	r.Score = s
	sev := make([]SeverityCount, rules.SevCritical+1)
	for i := range sev {
		sev[i].Severity = rules.Severity(len(sev) - 1 - i)
	}
	for i := range r.Results {
		res := &r.Results[i]
		// Failures only: a rule that could not be checked (error) is counted in the score's
		// errors, not as a finding of its severity.
		if res.Outcome != rules.Fail || res.Severity < 0 || res.Severity > rules.SevCritical {
			continue
		}
		c := &sev[rules.SevCritical-res.Severity]
		if res.Waived {
			c.Waived++
		} else {
			c.Findings++
		}
	}
	r.Severities = sev
}

func (r *Report) ruleCoverage() {
	byID := map[string]*RuleCoverage{}
	var order []string
	get := func(id string) *RuleCoverage {
		if c := byID[id]; c != nil {
			return c
		}
		c := &RuleCoverage{RuleID: id}
		byID[id] = c
		order = append(order, id)
		return c
	}
	for _, ri := range r.Catalogue {
		c := get(ri.ID)
		c.Title, c.Severity = ri.Title, ri.Severity
	}
	for i := range r.Results {
		res := &r.Results[i]
		c := get(res.RuleID)
		if _, known := r.rule(res.RuleID); !known {
			c.Severity = max(c.Severity, res.Severity)
		}
		c.Subjects++
		switch res.Outcome {
		case rules.Pass:
			c.Pass++
		case rules.Fail:
			c.Fail++
		case rules.Error:
			c.Error++
		case rules.NotApplicable:
			c.NotApplicable++
		}
		if res.Waived {
			c.Waived++
		}
	}
	sort.Strings(order)
	for _, id := range order {
		r.RuleCoverage = append(r.RuleCoverage, *byID[id])
	}
}

func (r *Report) rule(id string) (RuleInfo, bool) {
	i := sort.Search(len(r.Catalogue), func(i int) bool { return r.Catalogue[i].ID >= id })
	if i < len(r.Catalogue) && r.Catalogue[i].ID == id {
		return r.Catalogue[i], true
	}
	return RuleInfo{}, false
}

// Findings returns the results that are findings (fail or error), most severe first,
// then by rule and subject: the Findings sheet's rows. An uncollected host's errors are
// left out (counted in Coverage.NotChecked): its one finding is RDS-COLLECT-001/002.
func (r *Report) Findings() []*rules.Result {
	var out []*rules.Result
	un := r.uncollectedHosts()
	for i := range r.Results {
		if res := &r.Results[i]; res.IsFinding() && !unchecked(res, un) {
			out = append(out, res)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity > out[j].Severity })
	return out
}

// FindingStatus is the status shown for a finding: new, persisting, waived, or
// expired_waiver when an expired waiver covers it (expired holds the IDs of expired
// waivers and of the findings in their scope, from expiredWaivers).
func (r *Report) FindingStatus(res *rules.Result, expired map[string]bool) string {
	if !res.Waived && (expired[res.ID] || (res.WaiverID != "" && expired[res.WaiverID])) {
		return rules.StatusExpiredWaiver
	}
	return res.Status()
}

func (r *Report) expiredWaivers() map[string]bool {
	m := map[string]bool{}
	for _, w := range r.Waivers {
		if w.Expired {
			m[w.ID] = true
			for _, id := range w.Results {
				m[id] = true
			}
		}
	}
	return m
}

// EvidenceFileNames maps host names to safe, unique evidence file names
// ("<name>.json"): lower case, characters other than [a-z0-9._-] replaced by "_", no
// leading dot, a Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9, alone or before
// a dot) escaped with "_" after it ("con_.corp.example-…"); names that collide
// (case-insensitively) or had to be changed get a short hash of the original name
// appended. The mapping depends only on the set of names.
func EvidenceFileNames(hosts []string) map[string]string {
	safe := func(h string) (string, bool) {
		var b strings.Builder
		changed := false
		for _, c := range strings.ToLower(h) {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
				b.WriteRune(c)
			default:
				b.WriteByte('_')
				changed = true
			}
		}
		s := strings.TrimLeft(b.String(), ".")
		if s != b.String() || s == "" || len(s) > 100 {
			changed = true
		}
		if len(s) > 100 {
			s = s[:100]
		}
		if stem, rest, _ := strings.Cut(s, "."); evidence.WindowsDeviceName(stem) {
			// CON, NUL.txt, com1.corp.example… are devices on Windows, not files.
			s, changed = stem+"_", true
			if rest != "" {
				s += "." + rest
			}
		}
		return s, changed
	}
	count := map[string]int{}
	base := map[string]string{}
	changed := map[string]bool{}
	for _, h := range hosts {
		s, c := safe(h)
		if _, seen := base[h]; !seen {
			count[s]++
		}
		base[h], changed[h] = s, c
	}
	out := make(map[string]string, len(hosts))
	for h, s := range base {
		if changed[h] || count[s] > 1 {
			sum := sha256.Sum256([]byte(h))
			s = strings.TrimSuffix(s+"-"+hex.EncodeToString(sum[:4]), "-")
			if strings.HasPrefix(s, "-") {
				s = "host" + s
			}
		}
		out[h] = s + ".json"
	}
	// A changed name with its hash could equal another host's name as written; such
	// names (rare, and only in an inventory made to collide) take a longer hash.
	owners := make(map[string][]string, len(out))
	for h, n := range out {
		owners[n] = append(owners[n], h)
	}
	for n, hs := range owners {
		if len(hs) > 1 {
			for _, h := range hs {
				sum := sha256.Sum256([]byte(h))
				out[h] = strings.TrimSuffix(n, ".json") + "-" + hex.EncodeToString(sum[:12]) + ".json"
			}
		}
	}
	return out
}
