package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

func lsEvidence(h *facts.Facts) []EvidenceField {
	ev := []EvidenceField{
		{Field: fieldPolicyLS, Value: listOrNone(h.LicenseServers.Policy)},
		{Field: fieldLocalLS, Value: listOrNone(h.LicenseServers.Local) + shapeNote(h.LicenseServers.LocalShape)},
	}
	if h.LicenseServers.WMIOK {
		ev = append(ev, EvidenceField{Field: fieldWMILS, Value: listOrNone(h.LicenseServers.WMI)})
	}
	return ev
}

func shapeNote(shape string) string {
	if shape == "subkey" {
		return " (subkey shape)"
	}
	return ""
}

func lsKnown(h *facts.Facts, s *sink) bool {
	if h.LicenseServers.Source == facts.SourceUnknown || h.LicenseServers.Source == "" {
		s.add(Result{Outcome: Error, Subject: hostSubject(h), Evidence: lsEvidence(h),
			Message: "license-server configuration unknown: registry key " + evidence.KeyPolicy + " or " + evidence.KeyLocalLS + " was not read"})
		return false
	}
	return true
}

// RDS-LS-001
type ls001 struct{ needsRDSHLS }

func (ls001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-001", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "No license server specified",
		Rationale:   "Without a specified license server the host relies on discovery, which Windows Server 2012 and later no longer perform reliably; it cannot obtain CALs and refuses connections after the grace period.",
		Remediation: "Specify the license servers by Group Policy (Use the specified Remote Desktop license servers) or in the RD Licensing configuration.",
		References:  []string{refLicensing, "domain.md §1"},
		Evidence:    []string{fieldPolicyLS, fieldLocalLS, fieldWMILS}}
}

func (ls001) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	l := h.LicenseServers
	r := Result{Subject: sub, Evidence: lsEvidence(h), Source: l.Source, Expected: "at least one license server by policy or local configuration"}
	switch {
	case len(l.Effective) > 0:
		r.Outcome, r.Observed = Pass, fmt.Sprintf("%s (from %s)", strings.Join(l.Effective, ", "), l.Source)
		r.Message = "license servers specified: " + r.Observed
	case l.WMIOK && len(l.WMI) > 0:
		r.Outcome, r.Observed = Pass, "registry: none; WMI: "+strings.Join(l.WMI, ", ")
		r.Message = "no license server in the registry keys read, but WMI GetSpecifiedLicenseServerList returns " + strings.Join(l.WMI, ", ") + " (e.g. set by a Connection Broker deployment)"
	default:
		r.Outcome, r.Observed = Fail, "none (policy LicenseServers and local SpecifiedLicenseServers absent)"
		r.Message = "no license server specified by Group Policy or locally"
		if l.WMIOK {
			r.Message += "; WMI GetSpecifiedLicenseServerList returns none either"
		}
	}
	s.add(r)
}

// RDS-LS-002
type ls002 struct{ needsLS }

func (ls002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-002", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "A specified license server is not in the audited inventory",
		Rationale:   "CALs held by a license server outside the audit cannot be counted, so the CAL position and the mode/version rules are incomplete for this host; it may also be a stale or unauthorised server.",
		Remediation: "Add the license server to the inventory with the license_server role, or remove it from the host's configuration.",
		References:  []string{"domain.md §1, §4"},
		Evidence:    []string{fieldPolicyLS, fieldLocalLS, fieldInventory}}
}

func (ls002) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if len(h.LicenseServers.Effective) == 0 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no license server specified; see RDS-LS-001"})
		return
	}
	var out, in []string
	for _, n := range h.LicenseServers.Effective {
		if c.lookupLS(n) == nil {
			out = append(out, n)
		} else {
			in = append(in, n)
		}
	}
	r := Result{Subject: sub, Evidence: append(lsEvidence(h), EvidenceField{Field: fieldInventory, Value: fmt.Sprintf("%d license servers", len(c.lsList))}),
		Source: h.LicenseServers.Source, Observed: "in inventory: " + listOrNone(in) + "; not in inventory: " + listOrNone(out),
		Expected: "every specified license server in the inventory with role license_server"}
	if len(out) > 0 {
		r.Outcome, r.Message = Fail, "license servers not in the audited inventory: "+strings.Join(out, ", ")
	} else {
		r.Outcome, r.Message = Pass, "all specified license servers are in the inventory: "+strings.Join(in, ", ")
	}
	s.add(r)
}

// RDS-LS-003
type ls003 struct{}

func (ls003) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-003", Severity: SevLow, Scope: ScopeGroup,
		Title:       "Session hosts of one group specify different license-server sets",
		Rationale:   "Hosts of one collection should draw CALs from the same license servers; a different set usually means a host configured by hand, and splits CAL consumption unpredictably.",
		Remediation: "Specify the license servers for the whole group with one Group Policy.",
		References:  []string{refLicensing},
		Evidence:    []string{fieldPolicyLS, fieldLocalLS, fieldInventory}}
}

func (ls003) checkGroup(c *evalCtx, g *group, s *sink) {
	checkGroupConsistency(c, g, s, groupCheck{
		what: "license-server set",
		value: func(h *facts.Facts) (string, bool) {
			if h.LicenseServers.Source == facts.SourceUnknown || h.LicenseServers.Source == "" {
				return "", false
			}
			var n []string
			for _, x := range h.LicenseServers.Effective {
				n = appendUnique(n, facts.ShortName(x))
			}
			sort.Strings(n)
			return "[" + strings.Join(n, ",") + "]", true
		},
		expected: func() (string, bool) { return "", false },
		field:    fieldPolicyLS + " / " + fieldLocalLS,
	})
}

// RDS-LS-004
type ls004 struct{ needsRDSH }

func (ls004) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-004", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Host reports a license server not connectable or not valid",
		Rationale:   "GetTStoLSConnectivityStatus tells whether the host can obtain CALs from a server; only 9 (valid, VDI) and 11 (valid) are healthy. Anything else (not connectable, not in the TS group, lower version, access denied...) means CALs cannot be issued from that server.",
		Remediation: "Fix name resolution, firewall (RPC) and the Terminal Server License Servers group membership, or upgrade the license server to at least the host's version.",
		References:  []string{refWMI, "domain.md §2"},
		Evidence:    []string{fieldConnectivity, fieldPolicyLS, fieldLocalLS}}
}

func (ls004) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	conn := h.LicenseServers.Connectivity
	if len(conn) == 0 {
		if len(h.LicenseServers.Effective) == 0 && len(h.LicenseServers.WMI) == 0 {
			s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no license server specified; see RDS-LS-001"})
			return
		}
		s.add(Result{Outcome: Error, Subject: sub, Evidence: lsEvidence(h),
			Message: "connectivity unknown: no GetTStoLSConnectivityStatus result for " + listOrNone(append(h.LicenseServers.Effective, h.LicenseServers.WMI...))})
		return
	}
	var bad, failed, good []string
	var ev []EvidenceField
	for _, cn := range conn {
		ev = append(ev, EvidenceField{Field: fieldConnectivity + "[" + cn.Server + "]", Value: ConnectivityValue(cn)})
		switch {
		case cn.Status == nil:
			failed = append(failed, cn.Server+": "+orNone(cn.Error))
		case cn.Healthy:
			good = append(good, cn.Server)
		default:
			bad = append(bad, cn.Server+" "+facts.ConnectivityName(cn.Status))
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi", Expected: "status 9 or 11 for every license server",
		Observed: fmt.Sprintf("healthy: %s; unhealthy: %s; call failed: %s", listOrNone(good), listOrNone(bad), listOrNone(failed))}
	switch {
	case len(bad) > 0:
		r.Outcome, r.Message = Fail, "license server not valid or not connectable: "+strings.Join(bad, "; ")
	case len(failed) > 0:
		r.Outcome, r.Message = Error, "GetTStoLSConnectivityStatus failed for "+strings.Join(failed, "; ")
	default:
		r.Outcome, r.Message = Pass, "all license servers healthy: "+strings.Join(good, ", ")
	}
	s.add(r)
}

// ConnectivityValue renders a connectivity result for evidence.
func ConnectivityValue(cn facts.Connectivity) string {
	if cn.Status == nil {
		return "call failed: " + orNone(cn.Error)
	}
	return facts.ConnectivityName(cn.Status)
}

func holdingsKnown(h *facts.Facts, s *sink) bool {
	if h.Holdings == nil {
		s.add(Result{Outcome: Error, Subject: hostSubject(h), Message: "license-server evidence missing (Win32_TSLicenseServer / Win32_TSLicenseKeyPack not read)"})
		return false
	}
	return true
}

// RDS-LS-005
type ls005 struct{ needsHoldings }

func (ls005) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-005", Severity: SevHigh, Scope: ScopeHost, Roles: licenseServer(),
		Title:       "License server not activated",
		Rationale:   "A license server that is not activated issues only temporary CALs; installed CAL packs cannot be used.",
		Remediation: "Activate the license server in RD Licensing Manager (Action > Activate Server).",
		References:  []string{"https://learn.microsoft.com/en-us/windows-server/remote/remote-desktop-services/rds-activate-license-server", "domain.md §4"},
		Evidence:    []string{fieldActivation}}
}

func (ls005) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	a := h.Holdings.Activation
	r := Result{Subject: sub, Source: "wmi", Expected: "0 (activated)", Observed: i64(a),
		Evidence: []EvidenceField{{Field: fieldActivation, Value: i64(a)}}}
	switch {
	case a == nil:
		r.Outcome, r.Message = Error, "activation status unknown: GetActivationStatus failed: "+orNone(h.Holdings.ActivationError)
	case *a == 0:
		r.Outcome, r.Message = Pass, "license server is activated"
	case *a == 1:
		r.Outcome, r.Message = Fail, "license server is not activated (GetActivationStatus 1)"
	default:
		r.Outcome, r.Message = Error, fmt.Sprintf("license server reports activation status %d (unknown)", *a)
	}
	s.add(r)
}

// RDS-LS-006
type ls006 struct{ needsRDSHMode }

func (ls006) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-006", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Host in a licensed mode has no licensing certificate",
		Rationale:   "An RD Session Host that ever obtained CALs from a license server holds an X509 Certificate value under the RCM key. Its absence in Per Device or Per User mode means the host never reached a license server (MS-ENG).",
		Remediation: "Check connectivity to the license servers (RDS-LS-004) and the licensing mode; once a license server answers, the certificate appears.",
		References:  []string{"domain.md §1"},
		Evidence:    []string{fieldCert, fieldPolicyMode, fieldLocalMode}}
}

func (ls006) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if facts.ModeCALType(h.Mode.Effective) == "" {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Observed: effectiveDesc(h), Message: "no licensed mode in effect"})
		return
	}
	if !h.Certificate.Known {
		s.add(Result{Outcome: Error, Subject: sub, Message: "licensing certificate unknown: registry key " + evidence.KeyRCM + " was not read"})
		return
	}
	r := Result{Subject: sub, Source: "registry", Expected: "X509 Certificate present",
		Observed: "certificate values: " + listOrNone(h.Certificate.Values),
		Evidence: []EvidenceField{{Field: fieldCert, Value: presence(h.Certificate.Present)}}}
	if h.Certificate.Present {
		r.Outcome, r.Message = Pass, "licensing certificate present"
	} else {
		r.Outcome, r.Message = Fail, "no X509 Certificate under "+evidence.KeyRCM+" although the host runs "+effectiveDesc(h)+": it has never obtained a certificate from a license server"
	}
	s.add(r)
}

func presence(b bool) string {
	if b {
		return "present"
	}
	return "absent"
}

// RDS-LS-007
type ls007 struct{ needsHoldings }

func (ls007) Info() RuleInfo {
	return RuleInfo{ID: "RDS-LS-007", Severity: SevHigh, Scope: ScopeHost, Roles: licenseServer(),
		Title:       "License server OS older than CAL versions it holds",
		Rationale:   "A license server must run the same Windows Server version as the CALs it issues, or newer (MS): a 2016 license server cannot issue 2019 CALs.",
		Remediation: "Upgrade the license server's OS, or move the newer CAL packs to a license server of that version.",
		References:  []string{refCALVersions, "domain.md §5"},
		Evidence:    []string{fieldOSVersion, fieldKeyPack}}
}

func (ls007) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	var packs []facts.KeyPackFacts
	for _, kp := range h.Holdings.KeyPacks {
		if !kp.BuiltIn && kp.VersionID != nil {
			packs = append(packs, kp)
		}
	}
	if len(packs) == 0 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no key packs with a known version (built-in packs excluded)"})
		return
	}
	max := facts.ReleaseCALVersion(h.OS.Release)
	osEv := EvidenceField{Field: fieldOSVersion, Value: fmt.Sprintf("%s / %s / %s → %s", orNone(h.OS.Version), orNone(h.OS.Build), orNone(h.OS.Caption), orNone(h.OS.Release))}
	if max == 0 {
		s.add(Result{Outcome: Error, Subject: sub, Evidence: []EvidenceField{osEv}, Message: "license server OS release unknown (Win32_OperatingSystem version/caption not recognised)"})
		return
	}
	var bad []string
	ev := []EvidenceField{osEv}
	for _, kp := range packs {
		if *kp.VersionID > max {
			bad = append(bad, fmt.Sprintf("key pack %d (%s %s)", kp.ID, kp.CALType, versionName(*kp.VersionID)))
			ev = append(ev, packEvidence(h, kp))
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi", Observed: "OS Windows Server " + h.OS.Release,
		Expected: "CAL versions up to " + versionName(max)}
	if len(bad) > 0 {
		r.Outcome, r.Message = Fail, fmt.Sprintf("Windows Server %s license server holds newer CALs it cannot issue: %s", h.OS.Release, strings.Join(bad, ", "))
	} else {
		r.Outcome, r.Message = Pass, fmt.Sprintf("all %d key packs are for Windows Server %s or older", len(packs), h.OS.Release)
	}
	s.add(r)
}
