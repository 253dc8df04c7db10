package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// GraceDays is the grace period of a new RD Session Host (MS; older docs said 180).
const GraceDays = 120

func graceEvidence(h *facts.Facts) EvidenceField {
	g := h.Grace
	switch {
	case g.DaysLeft != nil:
		return EvidenceField{Field: fieldGraceDays, Value: fmt.Sprint(*g.DaysLeft)}
	case g.MethodFailed:
		return EvidenceField{Field: fieldGraceDays, Value: "call failed: " + orNone(g.MethodError)}
	}
	return EvidenceField{Field: fieldGraceDays, Value: "not called"}
}

// graceDays emits an error and returns nil when the host's grace days are unknown.
func graceDays(h *facts.Facts, s *sink) *int64 {
	if h.Grace.DaysLeft != nil {
		return h.Grace.DaysLeft
	}
	msg := "grace days unknown: GetGracePeriodDays was not called (root\\cimv2\\TerminalServices not read)"
	if h.Grace.MethodFailed {
		msg = "grace days unknown: GetGracePeriodDays failed (" + orNone(h.Grace.MethodError) + "); see RDS-GRACE-006"
	}
	s.add(Result{Outcome: Error, Subject: hostSubject(h), Evidence: []EvidenceField{graceEvidence(h)}, Message: msg})
	return nil
}

// previousRuns returns the host's snapshots of earlier runs that started at or after
// since and strictly before now, newest first. Without any history it adds the
// not-applicable result that says so and returns ok false.
func (c *evalCtx) previousRuns(h *facts.Facts, since time.Time, s *sink) (snaps []HostSnapshot, ok bool) {
	if c.hist == nil {
		s.add(Result{Outcome: NotApplicable, Subject: hostSubject(h), Message: "no history of earlier runs given"})
		return nil, false
	}
	all := c.hist.Previous(h.Host.Name, since)
	for i := range all {
		if !all[i].At.Before(c.now) { // a run at or after now: keep only the earlier ones
			for _, sn := range all {
				if sn.At.Before(c.now) {
					snaps = append(snaps, sn)
				}
			}
			return snaps, true
		}
	}
	return all, true
}

// previousRun returns the host's newest earlier snapshot for which use is true. When
// there is none it adds the not-applicable result that says why (no history at all, or
// none: no earlier run is of use) and returns nil.
func (c *evalCtx) previousRun(h *facts.Facts, s *sink, use func(*HostSnapshot) bool, none string) *HostSnapshot {
	snaps, ok := c.previousRuns(h, time.Time{}, s)
	if !ok {
		return nil
	}
	for i := range snaps {
		if use(&snaps[i]) {
			return &snaps[i]
		}
	}
	s.add(Result{Outcome: NotApplicable, Subject: hostSubject(h), Message: none})
	return nil
}

// RDS-GRACE-001
type grace001 struct{ needsRDSH }

func (grace001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-001", Severity: SevLow, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Grace period active",
		Rationale:   "During its grace period an RD Session Host accepts connections without CALs; when it ends, an unlicensed host refuses them. Severity rises as the days left fall (parameters critical_days, high_days, medium_days; low above).",
		Remediation: "Make sure the host has a licensing mode, reachable activated license servers and CALs of the right type and version before the grace period ends.",
		References:  []string{refLicensing, "domain.md §3"},
		Evidence:    []string{fieldGraceDays, fieldCert},
		Params: []Param{
			{Name: "critical_days", Default: 7, Description: "days left at or below which the finding is critical"},
			{Name: "high_days", Default: 30, Description: "days left at or below which the finding is high"},
			{Name: "medium_days", Default: 60, Description: "days left at or below which the finding is medium (low above)"},
		}}
}

func (grace001) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	d := graceDays(h, s)
	if d == nil {
		return
	}
	r := Result{Subject: sub, Source: "wmi", Observed: fmt.Sprintf("%d days left", *d), Expected: "0 (grace period over, host licensed)",
		Evidence: []EvidenceField{graceEvidence(h), {Field: fieldCert, Value: presence(h.Certificate.Present)}}}
	if *d <= 0 {
		r.Outcome, r.Message = Pass, "grace period over (0 days left); whether users are refused is RDS-GRACE-009"
		s.add(r)
		return
	}
	id := "RDS-GRACE-001"
	sev := SevLow
	switch {
	case *d <= int64(c.intParam(id, "critical_days")):
		sev = SevCritical
	case *d <= int64(c.intParam(id, "high_days")):
		sev = SevHigh
	case *d <= int64(c.intParam(id, "medium_days")):
		sev = SevMedium
	}
	r.Outcome = Fail
	r.Message = fmt.Sprintf("grace period active: %d days left (GetGracePeriodDays)", *d)
	r.Strength = "GetGracePeriodDays counts down from the first start of the RD Session Host role"
	if h.Certificate.Present {
		r.Strength += "; the host holds a licensing certificate, so it may already obtain CALs from a license server"
	}
	s.addSev(r, sev)
}

// RDS-GRACE-002
type grace002 struct{ needsRDSH }

func (grace002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-002", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Grace days above 120",
		Rationale:   "The grace period is 120 days and only counts down (MS, MS-ENG). A higher value is impossible without tampering; reset tools write values such as 114515.",
		Remediation: "Investigate who altered the GracePeriod key; license the host properly.",
		References:  []string{"domain.md §3"},
		Evidence:    []string{fieldGraceDays}}
}

func (grace002) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	d := graceDays(h, s)
	if d == nil {
		return
	}
	r := Result{Subject: sub, Source: "wmi", Observed: fmt.Sprintf("%d days left", *d), Expected: fmt.Sprintf("at most %d", GraceDays),
		Evidence: []EvidenceField{graceEvidence(h)}}
	if *d > GraceDays {
		r.Outcome = Fail
		r.Message = fmt.Sprintf("GetGracePeriodDays reports %d days left, more than the %d-day grace period", *d, GraceDays)
		r.Strength = "strong: the counter starts at 120 and only counts down; a higher value requires writing the GracePeriod key"
	} else {
		r.Outcome, r.Message = Pass, fmt.Sprintf("%d grace days left is within the %d-day grace period", *d, GraceDays)
	}
	s.add(r)
}

// RDS-GRACE-003
type grace003 struct{ needsRDSH }

func (grace003) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-003", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(), NeedsHistory: true,
		Title:       "Grace days above what the countdown since the previous audit allows",
		Rationale:   "The grace counter only counts down, one per calendar day: at an audit DaysLeft should be the previous audit's value minus the whole days elapsed between the two collections (±1 day). A higher value means the grace expiry moved — the GracePeriod key was deleted or rewritten in between — even when it is not higher than the previous value (a reset soon after the previous audit).",
		Remediation: "Investigate the reset (scheduled tasks, scripts writing HKLM\\...\\RCM\\GracePeriod) and license the host.",
		References:  []string{"domain.md §3"},
		Evidence:    []string{fieldGraceDays, fieldHistory}}
}

// evidenceTime is when the host's evidence was collected (collected_at), else the
// evaluation time: history rules compare the evidence's own times, never when a run
// happened to be made.
func (c *evalCtx) evidenceTime(h *facts.Facts) time.Time {
	if !h.CollectedAt.IsZero() {
		return h.CollectedAt.UTC()
	}
	return c.now
}

// countdown is what the grace counter shows at to when it showed prev at from and only
// counted down: prev minus the whole days elapsed, never below 0 (elapsed is never
// negative). The rules allow one day more: DaysLeft is rounded to days by the host.
func countdown(prev int64, from, to time.Time) (allowed, elapsed int64) {
	elapsed = int64(to.Sub(from) / (24 * time.Hour))
	if elapsed < 0 {
		elapsed = 0
	}
	return max(prev-elapsed, 0), elapsed
}

// graceCaution ends every grace-reset finding's strength (domain.md §3).
const graceCaution = "no single signal proves abuse: weigh it with RDS-GRACE-005 (key written) and RDS-GRACE-006 (key anomalies)"

func (grace003) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	prev := c.previousRun(h, s, func(sn *HostSnapshot) bool { return sn.GraceDays != nil },
		"no earlier run recorded grace days for this host")
	if prev == nil {
		return
	}
	d := graceDays(h, s)
	if d == nil {
		return
	}
	from, to := prev.EvidenceTime(), c.evidenceTime(h)
	allowed, elapsed := countdown(*prev.GraceDays, from, to)
	r := Result{Subject: sub, Source: "wmi, history",
		Observed: fmt.Sprintf("%d days left at %s; %d at run %s (collected %s, %d whole days earlier)",
			*d, to.Format(time.RFC3339), *prev.GraceDays, prev.RunID, from.Format(time.RFC3339), elapsed),
		Expected: fmt.Sprintf("at most %d (%d minus %d days elapsed, +1 day tolerance)", allowed+1, *prev.GraceDays, elapsed),
		Evidence: []EvidenceField{graceEvidence(h), {Field: fmt.Sprintf("history:run %s grace_days", prev.RunID), Value: fmt.Sprint(*prev.GraceDays)},
			{Field: fmt.Sprintf("history:run %s collected_at", prev.RunID), Value: from.Format(time.RFC3339)}}}
	switch {
	case *d > *prev.GraceDays+1:
		r.Outcome = Fail
		r.Message = fmt.Sprintf("grace days rose from %d to %d since the audit of %s (the countdown allows at most %d)",
			*prev.GraceDays, *d, from.Format("2006-01-02"), allowed+1)
		r.Strength = "strong: the counter only counts down; an increase means the GracePeriod key was deleted or rewritten and the service restarted; " + graceCaution
	case *d > allowed+1:
		r.Outcome = Fail
		r.Message = fmt.Sprintf("grace expiry moved %d days later: %d days left, %d days after %d at the audit of %s (the countdown allows at most %d)",
			*d-allowed, *d, elapsed, *prev.GraceDays, from.Format("2006-01-02"), allowed+1)
		r.Strength = "moderate: the counter drops one a day, so a value above the countdown means the expiry moved (a reset soon after the previous audit leaves a similar number); it rests on both evidence collection times being right (a wrong host clock or a misdated export explains it too); " + graceCaution
	default:
		r.Outcome, r.Message = Pass, fmt.Sprintf("grace days counted down (%d then, %d now, %d days later)", *prev.GraceDays, *d, elapsed)
	}
	s.add(r)
}

// RDS-GRACE-004
type grace004 struct{ needsRDSH }

func (grace004) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-004", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Grace period active on a host in service for more than 120 days",
		Rationale:   "The grace period lasts 120 days from the first start of the RD Session Host role. Days still left on a host installed more than 120 days ago suggest a reset — or a role added later than the OS install.",
		Remediation: "Compare with the date the RD Session Host role was installed; if it is older than 120 days, investigate a grace reset.",
		References:  []string{"domain.md §3"},
		Evidence:    []string{fieldGraceDays, fieldInstallDate}}
}

func (grace004) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	d := graceDays(h, s)
	if d == nil {
		return
	}
	if *d <= 0 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Evidence: []EvidenceField{graceEvidence(h)}, Message: "grace period not active"})
		return
	}
	if h.OS.InstallDate == nil {
		s.add(Result{Outcome: Error, Subject: sub, Evidence: []EvidenceField{graceEvidence(h), {Field: fieldInstallDate, Value: "absent " + strings.Join(h.OS.DateErrors, "; ")}},
			Message: "OS install date unknown: Win32_OperatingSystem.InstallDate missing or unparseable"})
		return
	}
	age := days(c.now.Sub(*h.OS.InstallDate))
	r := Result{Subject: sub, Source: "wmi", Observed: fmt.Sprintf("%d grace days left; OS installed %s (%.0f days ago)", *d, h.OS.InstallDate.Format("2006-01-02"), age),
		Expected: fmt.Sprintf("no grace period left after %d days in service", GraceDays),
		Evidence: []EvidenceField{graceEvidence(h), {Field: fieldInstallDate, Value: fmtTime(h.OS.InstallDate)}}}
	if age > GraceDays {
		r.Outcome = Fail
		r.Message = fmt.Sprintf("grace period active (%d days left) on a host in service for %.0f days", *d, age)
		r.Strength = "moderate: rdsaudit reads the OS install date, not the date the RD Session Host role was added; a role added later explains it"
	} else {
		r.Outcome, r.Message = Pass, fmt.Sprintf("host in service for %.0f days, within the grace period", age)
	}
	s.add(r)
}

// RDS-GRACE-005
type grace005 struct{ needsRDSH }

func (grace005) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-005", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(), NeedsHistory: true,
		Title:       "GracePeriod key written after the previous audit",
		Rationale:   "The GracePeriod key is written when the grace period starts. A LastWriteTime after the previous audit collected this host's evidence means it was recreated or rewritten since — the footprint of a reset.",
		Remediation: "Check who wrote the key (security log, scheduled tasks) and whether the grace days increased (RDS-GRACE-003).",
		References:  []string{"domain.md §3"},
		Evidence:    []string{fieldGraceKey + " (LastWriteTime)", fieldHistory}}
}

func (grace005) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	prev := c.previousRun(h, s, func(*HostSnapshot) bool { return true }, "no earlier run of this host")
	if prev == nil {
		return
	}
	g := h.Grace
	switch {
	case !g.KeyKnown:
		s.add(Result{Outcome: Error, Subject: sub, Message: "registry key " + evidence.KeyGracePeriod + " was not read"})
		return
	case !g.KeyExists:
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "GracePeriod key absent; see RDS-GRACE-006"})
		return
	case g.KeyWritten == nil:
		s.add(Result{Outcome: Error, Subject: sub, Message: "GracePeriod key LastWriteTime missing (RegQueryInfoKey not read)"})
		return
	}
	// The previous audit's own time: when it collected this host's evidence.
	at := prev.EvidenceTime().Format(time.RFC3339)
	r := Result{Subject: sub, Source: "registry, history",
		Observed: "LastWriteTime " + fmtTime(g.KeyWritten), Expected: "not after the previous run " + prev.RunID + " collected this host at " + at,
		Evidence: []EvidenceField{{Field: fieldGraceKey + " LastWriteTime", Value: fmtTime(g.KeyWritten)}, {Field: "history:run " + prev.RunID + " collected_at", Value: at}}}
	if g.KeyWritten.After(prev.EvidenceTime()) {
		r.Outcome = Fail
		r.Message = fmt.Sprintf("GracePeriod key written at %s, after the previous audit (collected %s)", fmtTime(g.KeyWritten), at)
		r.Strength = "weak alone: a rewrite also happens when the role is reinstalled; together with grace days above the countdown (RDS-GRACE-003) it indicates a reset; no single signal proves abuse"
	} else {
		r.Outcome, r.Message = Pass, "GracePeriod key not written since the previous audit"
	}
	s.add(r)
}

// RDS-GRACE-006
type grace006 struct{ needsRDSH }

func (grace006) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-006", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "GracePeriod key anomalies",
		Rationale:   "Reset scripts leave traces: the timebomb value missing while GetGracePeriodDays fails (key deleted, service not restarted), values other than the timebomb in the key, a key owner other than NETWORK SERVICE or SYSTEM (Administrators after take-ownership), and artefacts such as a plain L$RTMTIMEBOMB value or a Licensing Core key outside RCM.",
		Remediation: "Investigate who changed the key; restore its default owner; license the host.",
		References:  []string{"domain.md §1, §3"},
		Evidence:    []string{fieldGraceKey + " (values, owner)", fieldTimebomb, fieldGraceDays, `registry:` + evidence.KeyMisplacedCore}}
}

func (grace006) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	g := h.Grace
	if !g.KeyKnown {
		s.add(Result{Outcome: Error, Subject: sub, Message: "registry key " + evidence.KeyGracePeriod + " was not read"})
		return
	}
	var why, strength []string
	tb := timebombValue(g.Timebomb)
	if g.ValuesUnknown {
		tb = "not readable: " + g.ValuesError
	}
	ev := []EvidenceField{
		{Field: fieldGraceKey, Value: presence(g.KeyExists)},
		{Field: fieldTimebomb, Value: tb},
		graceEvidence(h),
	}
	if g.Timebomb == nil && g.MethodFailed && !g.ValuesUnknown {
		why = append(why, "timebomb value missing while GetGracePeriodDays fails ("+orNone(g.MethodError)+"): the key or value was deleted and the service not yet restarted")
		strength = append(strength, "timebomb/method: strong (COMM: the failure follows deletion of the key)")
	}
	var extra []string // the plain L$RTMTIMEBOMB is reported once, as an artefact
	for _, v := range g.ExtraValues {
		if !strings.EqualFold(v, evidence.ValTimebombPlain) {
			extra = append(extra, v)
		}
	}
	if len(extra) > 0 {
		why = append(why, "non-standard values in the GracePeriod key: "+strings.Join(extra, ", "))
		ev = append(ev, EvidenceField{Field: fieldGraceKey + " (other values)", Value: strings.Join(extra, ", ")})
		strength = append(strength, "extra values: moderate (the key normally holds only the timebomb)")
	}
	if g.KeyExists && g.KeyOwner != "" {
		ev = append(ev, EvidenceField{Field: fieldGraceKey + " (owner)", Value: g.KeyOwner})
		if !standardOwner(g.KeyOwner) {
			why = append(why, "key owner is "+g.KeyOwner+", not NETWORK SERVICE or SYSTEM")
			strength = append(strength, "owner: UNSURE (sources disagree on the default owner; reset scripts leave Administrators)")
		}
	}
	for _, a := range h.Artefacts {
		why = append(why, "artefact: "+a)
		strength = append(strength, "artefacts: no effect on licensing, but they reveal a reset attempt")
	}
	r := Result{Subject: sub, Evidence: ev, Source: "registry, wmi", Expected: "only the timebomb value, owner NETWORK SERVICE or SYSTEM, no artefacts"}
	switch {
	case len(why) > 0:
		r.Outcome, r.Message = Fail, strings.Join(why, "; ")
		if g.ValuesUnknown {
			r.Message += "; the key's values could not be read, so the timebomb and other values were not checked"
		}
		r.Observed = fmt.Sprintf("%d anomalies", len(why))
		r.Strength = strings.Join(dedupeStrings(strength), "; ") + ". None of these alone proves a reset."
	case g.ValuesUnknown:
		r.Outcome = Error
		r.Message = "the GracePeriod key exists but its values could not be read (" + g.ValuesError + "); owner and artefacts show no anomaly, the timebomb and other values are unknown"
		r.Observed = "values not readable, owner " + orNone(g.KeyOwner)
	default:
		r.Outcome, r.Message = Pass, "no GracePeriod key anomalies"
		r.Observed = "timebomb " + tb + ", owner " + orNone(g.KeyOwner)
	}
	s.add(r)
}

func dedupeStrings(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = appendUnique(out, s)
	}
	return out
}

func timebombValue(v *evidence.RegValue) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%s %s, %d bytes, sha256 %s", v.Name, v.Type, v.Length, orNone(v.SHA256))
}

func standardOwner(o string) bool {
	u := strings.ToUpper(o)
	return strings.Contains(u, "NETWORK SERVICE") || strings.HasSuffix(u, `\SYSTEM`) || u == "SYSTEM" ||
		u == "S-1-5-18" || u == "S-1-5-20"
}

// RDS-GRACE-007
type grace007 struct{ needsRDSH }

func (grace007) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-007", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Licensing notifications hidden by policy on an unlicensed or grace host",
		Rationale:   "fDisableTerminalServerTooltip hides the licensing warnings administrators would otherwise see. Reset scripts set it; on a host in its grace period or without a licensing certificate it hides a real problem.",
		Remediation: "Remove the 'Hide notifications about RD Licensing problems' policy until the host is licensed.",
		References:  []string{"domain.md §1, §3"},
		Evidence:    []string{fieldTooltip, fieldGraceDays, fieldCert}}
}

func (grace007) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if !h.Mode.Known {
		s.add(Result{Outcome: Error, Subject: sub, Message: "registry key " + evidence.KeyPolicy + " was not read"})
		return
	}
	tt := h.Policy.TooltipHidden
	ev := []EvidenceField{{Field: fieldTooltip, Value: boolStr(tt)}, graceEvidence(h), {Field: fieldCert, Value: presence(h.Certificate.Present)}}
	if tt == nil || !*tt {
		s.add(Result{Outcome: Pass, Subject: sub, Evidence: ev, Source: "policy", Observed: "notifications not hidden", Message: "licensing notifications are not hidden by policy"})
		return
	}
	var why []string
	if d := h.Grace.DaysLeft; d != nil && *d > 0 {
		why = append(why, fmt.Sprintf("grace period active (%d days left)", *d))
	}
	if h.Certificate.Known && !h.Certificate.Present {
		why = append(why, "no licensing certificate")
	}
	if facts.ModeCALType(h.Mode.Effective) == "" {
		why = append(why, "no licensed mode ("+effectiveDesc(h)+")")
	}
	r := Result{Subject: sub, Evidence: ev, Source: "policy", Observed: "fDisableTerminalServerTooltip 1", Expected: "notifications visible while the host is unlicensed or in grace"}
	switch {
	case len(why) > 0:
		r.Outcome, r.Message = Fail, "licensing notifications hidden by policy while "+strings.Join(why, ", ")
		r.Strength = "moderate: hiding notifications is legitimate on licensed hosts; reset scripts set it too"
	case h.Grace.DaysLeft == nil || !h.Certificate.Known:
		r.Outcome, r.Message = Error, "notifications hidden by policy; cannot tell whether the host is licensed (grace days or certificate not read)"
	default:
		r.Outcome, r.Message = Pass, "notifications hidden by policy on a licensed host (certificate present, no grace days left)"
	}
	s.add(r)
}

// RDS-GRACE-008
type grace008 struct{ needsRDSH }

func (grace008) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-008", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(), NeedsHistory: true,
		Title:       "Repeated grace-period resets",
		Rationale:   "Scheduled reset scripts delete the grace key whenever few days remain: across monthly audits the grace days form a sawtooth. Two or more resets — readings above what the countdown from the reading before allows, as RDS-GRACE-003 judges, by the evidence's collection times — within the window (parameter window_days, counted back from the evaluation time) show a pattern, not an accident.",
		Remediation: "Find and remove the reset mechanism; buy and install the CALs the host needs.",
		References:  []string{"domain.md §3"},
		Evidence:    []string{fieldGraceDays, fieldHistory},
		Params:      []Param{{Name: "window_days", Default: 180, Description: "history window in days (before the evaluation time) in which resets are counted"}}}
}

func (grace008) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	window := c.intParam("RDS-GRACE-008", "window_days")
	snaps, ok := c.previousRuns(h, c.now.AddDate(0, 0, -window), s)
	if !ok {
		return
	}
	type point struct {
		at   time.Time
		days int64
		run  string
	}
	var pts []point
	for i := len(snaps) - 1; i >= 0; i-- { // oldest evaluation first; each at its collection time
		if snaps[i].GraceDays != nil {
			pts = append(pts, point{snaps[i].EvidenceTime(), *snaps[i].GraceDays, snaps[i].RunID})
		}
	}
	if h.Grace.DaysLeft != nil {
		pts = append(pts, point{c.evidenceTime(h), *h.Grace.DaysLeft, "current"})
	}
	if len(pts) < 3 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: fmt.Sprintf("%d grace-day readings in the last %d days; two resets need at least three", len(pts), window)})
		return
	}
	var resets []string
	var series []string
	for i, p := range pts {
		series = append(series, fmt.Sprintf("%s %d", p.at.UTC().Format("2006-01-02"), p.days))
		if i == 0 {
			continue
		}
		if allowed, _ := countdown(pts[i-1].days, pts[i-1].at, p.at); p.days > allowed+1 {
			resets = append(resets, fmt.Sprintf("%d→%d by %s (countdown allows %d)", pts[i-1].days, p.days, p.at.UTC().Format("2006-01-02"), allowed+1))
		}
	}
	r := Result{Subject: sub, Source: "wmi, history", Observed: strings.Join(series, ", "),
		Expected: fmt.Sprintf("fewer than two readings above the countdown in %d days", window),
		Evidence: []EvidenceField{graceEvidence(h), {Field: fmt.Sprintf("history:grace_days (%d days)", window), Value: strings.Join(series, ", ")}}}
	if len(resets) >= 2 {
		r.Outcome = Fail
		r.Message = fmt.Sprintf("grace expiry moved later %d times in %d days: %s", len(resets), window, strings.Join(resets, ", "))
		r.Strength = "strong: repeated resets of a counter that only counts down form the sawtooth of scheduled resets; it rests on the evidence collection times being right; " + graceCaution
	} else {
		r.Outcome, r.Message = Pass, fmt.Sprintf("%d grace-day reset(s) in %d days", len(resets), window)
	}
	s.add(r)
}

// RDS-GRACE-009
type grace009 struct{ needsRDSH }

func (grace009) Info() RuleInfo {
	return RuleInfo{ID: "RDS-GRACE-009", Severity: SevCritical, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Grace period expired and no valid license server: users are refused",
		Rationale:   "After the grace period an RD Session Host needs a licensed mode and a reachable, valid license server (status 9 or 11); otherwise it refuses user connections (event 1069 when the mode is not configured).",
		Remediation: "Configure the licensing mode and license servers and fix connectivity (RDS-MODE-001, RDS-LS-001, RDS-LS-004) now.",
		References:  []string{refLicensing, "domain.md §2, §3, §6"},
		Evidence:    []string{fieldGraceDays, fieldPolicyMode, fieldLocalMode, fieldConnectivity}}
}

func (grace009) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	d := graceDays(h, s)
	if d == nil {
		return
	}
	ev := []EvidenceField{graceEvidence(h)}
	if *d > 0 {
		s.add(Result{Outcome: Pass, Subject: sub, Evidence: ev, Source: "wmi", Observed: fmt.Sprintf("%d days left", *d), Message: "grace period not expired"})
		return
	}
	var why []string
	if h.Mode.EffectiveSource != facts.SourceUnknown && facts.ModeCALType(h.Mode.Effective) == "" {
		why = append(why, "no licensed mode ("+effectiveDesc(h)+")")
	}
	healthy, unknown := false, len(h.LicenseServers.Connectivity) == 0
	for _, cn := range h.LicenseServers.Connectivity {
		ev = append(ev, EvidenceField{Field: fieldConnectivity + "[" + cn.Server + "]", Value: ConnectivityValue(cn)})
		healthy = healthy || cn.Healthy
		if cn.Status == nil {
			unknown = true
		}
	}
	noServers := len(h.LicenseServers.Effective) == 0 && len(h.LicenseServers.WMI) == 0 && h.LicenseServers.Source == facts.SourceNone
	switch {
	case noServers:
		why = append(why, "no license server specified")
	case !healthy && !unknown:
		why = append(why, "no license server with a valid connectivity status (9 or 11)")
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi, registry", Observed: "0 grace days left; " + listOrNone(why),
		Expected: "licensed mode and at least one valid license server"}
	// Only a missing mode or a missing license server proves the refusal (event 1069). A
	// server that answers 4 (lower version), 6 (not connectable), 8 (access denied) or
	// another non-valid status makes refusal likely, not certain: the status is the
	// host's view at collection time, and a transient network or permission state gives
	// it too.
	certain := noServers || (h.Mode.EffectiveSource != facts.SourceUnknown && facts.ModeCALType(h.Mode.Effective) == "")
	switch {
	case len(why) > 0 && certain:
		r.Outcome, r.Message = Fail, "grace period expired and "+strings.Join(why, ", ")+": the host refuses user connections"
		r.Strength = "strong: no licensed mode or no license server after the grace period is refused by design"
	case len(why) > 0:
		r.Outcome = Fail
		r.Message = "grace period expired and " + strings.Join(why, ", ") + " (answered: " + connectivityStatuses(h) +
			"), so the host likely refuses user connections; not proven, since a transient network or permission state answers the same"
		r.Strength = "moderate: refusal inferred from the connectivity status at collection time, not observed"
	case !healthy:
		r.Outcome, r.Message = Error, "grace period expired; license-server connectivity unknown (GetTStoLSConnectivityStatus missing or failed)"
	default:
		r.Outcome, r.Message = Pass, "grace period expired, but a licensed mode and a valid license server are in place"
	}
	s.add(r)
}

// connectivityStatuses lists each license server's connectivity status, as
// "LS01 status 6 (not connectable)".
func connectivityStatuses(h *facts.Facts) string {
	var out []string
	for _, cn := range h.LicenseServers.Connectivity {
		out = append(out, cn.Server+" "+ConnectivityValue(cn))
	}
	return listOrNone(out)
}
