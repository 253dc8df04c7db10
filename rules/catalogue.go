package rules

import (
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// Scope says what a rule's subjects are.
type Scope string

const (
	ScopeHost  Scope = "host"  // one result per targeted host of the rule's roles
	ScopeGroup Scope = "group" // one result per group of session hosts
	ScopeFleet Scope = "fleet" // results per fleet-wide item (CAL type × version, waiver)
)

// Param is a rule parameter the rule set may set.
type Param struct {
	Name        string `json:"name"`
	Default     any    `json:"default"` // int or string; the rule set value must have the same type
	Description string `json:"description"`
}

// RuleInfo describes a rule for `rdsaudit rules` and for reports.
type RuleInfo struct {
	ID          string   `json:"id"`
	Severity    Severity `json:"severity"` // default severity
	Title       string   `json:"title"`
	Rationale   string   `json:"rationale"`
	Remediation string   `json:"remediation"`
	References  []string `json:"references,omitempty"`
	// Evidence names the evidence fields the rule reads.
	Evidence []string `json:"evidence"`
	Scope    Scope    `json:"scope"`
	// Roles limits a host rule's subjects to hosts with one of these inventory roles.
	Roles        []string `json:"roles,omitempty"`
	NeedsHistory bool     `json:"needs_history,omitempty"`
	Params       []Param  `json:"params,omitempty"`
}

// The inventory roles rules target (RuleInfo.Roles); each call returns a new slice, so
// no two RuleInfo values share one.
func sessionHost() []string   { return []string{evidence.RoleSessionHost} }
func licenseServer() []string { return []string{evidence.RoleLicenseServer} }
func clientRole() []string    { return []string{evidence.RoleClient} }

// Rule is one catalogue entry. The check methods are unexported: the catalogue below is
// the only list of rules.
type Rule interface {
	Info() RuleInfo
}

// hostRule checks one collected host at a time; sub is the host's subject.
type hostRule interface {
	Rule
	checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink)
}

// guardedRule is a host rule that applies only to hosts meeting a precondition. A rule
// declares one by embedding one of the needs types below; the engine checks it before
// checkHost, which runs only when it holds. A precondition that fails reports the host
// (not applicable, or an error when the evidence was not read) and returns false.
type guardedRule interface {
	precondition(h *facts.Facts, s *sink) bool
}

type (
	needsRDSH     struct{} // an RD Session Host (requireRDSH)
	needsMode     struct{} // the licensing mode was read (modeKnown)
	needsRDSHMode struct{} // an RD Session Host whose licensing mode was read
	needsLS       struct{} // the license-server configuration was read (lsKnown)
	needsRDSHLS   struct{} // an RD Session Host whose license-server configuration was read
	needsHoldings struct{} // the license server's holdings were read (holdingsKnown)
)

func (needsRDSH) precondition(h *facts.Facts, s *sink) bool { return requireRDSH(h, s) }
func (needsMode) precondition(h *facts.Facts, s *sink) bool { return modeKnown(h, s) }
func (needsRDSHMode) precondition(h *facts.Facts, s *sink) bool {
	return requireRDSH(h, s) && modeKnown(h, s)
}
func (needsLS) precondition(h *facts.Facts, s *sink) bool { return lsKnown(h, s) }
func (needsRDSHLS) precondition(h *facts.Facts, s *sink) bool {
	return requireRDSH(h, s) && lsKnown(h, s)
}
func (needsHoldings) precondition(h *facts.Facts, s *sink) bool { return holdingsKnown(h, s) }

// uncollectedRule is a host rule that judges uncollected hosts itself (the engine
// otherwise reports them as errors).
type uncollectedRule interface {
	checkUncollected(c *evalCtx, h *facts.Facts, s *sink)
}

type groupRule interface {
	Rule
	checkGroup(c *evalCtx, g *group, s *sink)
}

type fleetRule interface {
	Rule
	checkFleet(c *evalCtx, s *sink)
}

// catalogue returns the rule list, in report order. Adding a rule means adding it here.
func catalogue() []Rule {
	return []Rule{
		mode001{}, mode002{}, mode003{}, mode004{}, mode005{}, mode006{}, mode007{},
		ls001{}, ls002{}, ls003{}, ls004{}, ls005{}, ls006{}, ls007{},
		grace001{}, grace002{}, grace003{}, grace004{}, grace005{}, grace006{}, grace007{}, grace008{}, grace009{},
		cal001{}, cal002{}, cal003{}, cal004{}, cal005{}, cal006{}, cal007{},
		client001{}, client002{},
		collect001{}, collect002{},
		pu001{}, pu002{}, pu003{}, pu004{},
	}
}

// WaiverRuleID is the rule raised by an expired waiver. The engine evaluates it after
// the waivers were applied.
const WaiverRuleID = "RDS-WAIVER-001"

// waiverRuleInfo describes RDS-WAIVER-001, which is not in the catalogue: the engine
// raises it itself.
func waiverRuleInfo() RuleInfo {
	return RuleInfo{
		ID: WaiverRuleID, Severity: SevMedium, Scope: ScopeFleet,
		Title:       "Waiver expired",
		Rationale:   "A waiver accepts a known failure for a limited time. Once it expires it stops applying: the failures it covered count again, and the lapse itself needs a decision.",
		Remediation: "Fix the waived failures, or renew the waiver with a new expiry, approver and ticket.",
		Evidence:    []string{"ruleset:waivers[].expires"},
	}
}

// Rules returns every rule's description in catalogue order (RDS-WAIVER-001 last),
// built afresh on each call: the caller may change it.
func Rules() []RuleInfo {
	cat := catalogue()
	out := make([]RuleInfo, 0, len(cat)+1)
	for _, r := range cat {
		out = append(out, r.Info())
	}
	return append(out, waiverRuleInfo())
}

// Lookup returns one rule's description by ID (case-sensitive, as printed).
func Lookup(id string) (RuleInfo, bool) {
	for _, r := range Rules() {
		if r.ID == id {
			return r, true
		}
	}
	return RuleInfo{}, false
}

// Evidence field names (RuleInfo.Evidence, EvidenceField.Field).
const (
	fieldPolicyMode   = `registry:` + evidence.KeyPolicy + `\` + evidence.ValLicensingMode
	fieldLocalMode    = `registry:` + evidence.KeyLicensingCore + `\` + evidence.ValLicensingMode
	fieldWMIMode      = `wmi:Win32_TerminalServiceSetting.LicensingType`
	fieldWMIModeSrc   = `wmi:Win32_TerminalServiceSetting.PolicySourceLicensingType`
	fieldTSMode       = `wmi:Win32_TerminalServiceSetting.TerminalServerMode`
	fieldPolicyLS     = `registry:` + evidence.KeyPolicy + `\` + evidence.ValLicenseServers
	fieldLocalLS      = `registry:` + evidence.KeyLocalLS + `\` + evidence.ValSpecifiedLS
	fieldWMILS        = `wmi:Win32_TerminalServiceSetting.GetSpecifiedLicenseServerList().SpecifiedLSList`
	fieldConnectivity = `wmi:Win32_TerminalServiceSetting.GetTStoLSConnectivityStatus()`
	fieldGraceDays    = `wmi:Win32_TerminalServiceSetting.GetGracePeriodDays().DaysLeft`
	fieldGraceKey     = `registry:` + evidence.KeyGracePeriod
	fieldTimebomb     = `registry:` + evidence.KeyGracePeriod + `\` + evidence.ValTimebomb
	fieldCert         = `registry:` + evidence.KeyRCM + `\` + evidence.ValX509Certificate
	fieldTooltip      = `registry:` + evidence.KeyPolicy + `\` + evidence.ValTooltip
	fieldPartOfDomain = `wmi:Win32_ComputerSystem.PartOfDomain`
	fieldOSVersion    = `wmi:Win32_OperatingSystem.Version/BuildNumber/Caption`
	fieldInstallDate  = `wmi:Win32_OperatingSystem.InstallDate`
	fieldActivation   = `wmi:Win32_TSLicenseServer.GetActivationStatus()`
	fieldKeyPack      = `wmi:Win32_TSLicenseKeyPack`
	fieldIssued       = `wmi:Win32_TSIssuedLicense`
	fieldReport       = `wmi:Win32_TSLicenseReport.FetchReportSummaryEntries()`
	fieldClientStore  = `registry:` + evidence.KeyClientStore
	fieldInventory    = `inventory:hosts`
	fieldLedger       = `ledger:entitlements`
	fieldHistory      = `history:previous runs`
	fieldCollection   = `collection:status/failure`
)

// Reference links (RuleInfo.References).
const (
	refModes       = "https://learn.microsoft.com/en-us/troubleshoot/windows-server/remote/licensing-mode-change-rds"
	refLicensing   = "https://learn.microsoft.com/en-us/windows-server/remote/remote-desktop-services/rds-client-access-license"
	refCALVersions = "https://learn.microsoft.com/en-us/windows-server/remote/remote-desktop-services/rds-client-access-license#cal-compatibility"
	refTrack       = "https://learn.microsoft.com/en-us/windows-server/remote/remote-desktop-services/rds-track-cals"
	refWMI         = "https://learn.microsoft.com/en-us/windows/win32/termserv/win32-terminalservicesetting"
	refDomain      = "docs: shared/domain.md"
)
