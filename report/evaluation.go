package report

import (
	"fmt"
	"strings"

	"github.com/rdsaudit/rdsaudit/rules"
)

// FromEvaluation converts the rule engine's evaluation and rule catalogue
// (rules.Rules()) into the report's Evaluation. The report keeps its own row types so
// that report.json's schema stays stable when the engine's internals change.
func FromEvaluation(ev *rules.Evaluation, catalogue []rules.RuleInfo) Evaluation {
	out := Evaluation{}
	for _, ri := range catalogue {
		out.Catalogue = append(out.Catalogue, RuleInfo{ID: ri.ID, Severity: ri.Severity, Title: ri.Title,
			Rationale: ri.Rationale, Remediation: ri.Remediation, References: ri.References})
	}
	if ev == nil {
		return out
	}
	out.RuleSetVersion = fmt.Sprint(ev.RuleSetVersion)
	out.RuleSetHash = ev.RuleSetHash
	failOn := ev.FailOn
	out.FailOn = &failOn
	out.Results = ev.Results
	for _, w := range ev.Waivers {
		rw := Waiver{ID: w.ID, RuleID: w.Rule, Scope: w.Scope.String(), Owner: w.Owner, Approver: w.Approver,
			Ticket: w.Ticket, Reason: w.Justification, Expired: w.Expired, Applied: w.Applied, Matched: w.Matched,
			Results: append([]string(nil), w.Results...)}
		if !w.Expires.IsZero() {
			rw.Expires = utcp(&w.Expires)
		}
		out.Waivers = append(out.Waivers, rw)
	}
	for _, p := range ev.Position {
		vid, ent, usage := p.VersionID, p.Entitled, p.Usage
		short := p.Shortfall - p.Surplus
		row := PositionRow{CALType: p.CALType, VersionID: &vid, Version: p.Version, Entitled: &ent,
			Installed: &Count{Value: p.Installed, Unlimited: p.InstalledUnlimited}, Issued: &Count{Value: p.Issued},
			Used: p.Used, Usage: &usage, UsageSource: p.UsageSource, Shortfall: &short, Currency: p.Currency,
			Complete: p.Complete, UsageLowerBound: p.UsageLowerBound, Note: strings.Join(p.Notes, "; ")}
		if p.UnitPrice != nil {
			v := float64(*p.UnitPrice) / 100
			row.UnitCost = &v
		}
		if p.EstimatedCost != nil {
			v := float64(*p.EstimatedCost) / 100
			row.EstimatedCost = &v
		}
		out.Position = append(out.Position, row)
	}
	return out
}
