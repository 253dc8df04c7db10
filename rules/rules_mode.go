package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

func modeEvidence(h *facts.Facts) []EvidenceField {
	return []EvidenceField{
		{Field: fieldPolicyMode, Value: facts.ModeName(h.Mode.Policy)},
		{Field: fieldLocalMode, Value: facts.ModeName(h.Mode.Local)},
		{Field: fieldWMIMode, Value: facts.ModeName(h.Mode.WMI)},
	}
}

// modeKnown emits an error and returns false when the registry precedence cannot be
// established.
func modeKnown(h *facts.Facts, s *sink) bool {
	if h.Mode.EffectiveSource == facts.SourceUnknown || h.Mode.EffectiveSource == "" {
		s.add(Result{Outcome: Error, Subject: hostSubject(h), Evidence: modeEvidence(h),
			Message: "licensing mode unknown: registry key " + evidence.KeyPolicy + " or " + evidence.KeyLicensingCore + " was not read"})
		return false
	}
	return true
}

func effectiveDesc(h *facts.Facts) string {
	return facts.ModeName(h.Mode.Effective) + " (from " + h.Mode.EffectiveSource + ")"
}

// RDS-MODE-001
type mode001 struct{ needsRDSHMode }

func (mode001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-001", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Licensing mode not configured on an RD Session Host",
		Rationale:   "An RD Session Host without a licensing mode (5 or absent) cannot request CALs; once the 120-day grace period ends it refuses connections (event 1069).",
		Remediation: "Set the licensing mode by Group Policy (Computer Configuration > Administrative Templates > Windows Components > Remote Desktop Services > Remote Desktop Session Host > Licensing > Set the Remote Desktop licensing mode) to Per User or Per Device, matching the CALs you own.",
		References:  []string{refModes, "domain.md §1, §2"},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode, fieldTSMode}}
}

func (mode001) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	r := Result{Subject: sub, Evidence: modeEvidence(h), Source: h.Mode.EffectiveSource,
		Observed: effectiveDesc(h), Expected: "Per Device (2) or Per User (4)"}
	if h.Mode.Effective == nil || *h.Mode.Effective == facts.ModeNotConfig {
		r.Outcome = Fail
		r.Message = "RD Session Host has no licensing mode: neither Group Policy nor the local Licensing Core key sets one (effective " + effectiveDesc(h) + ")"
	} else {
		r.Outcome = Pass
		r.Message = "licensing mode is " + effectiveDesc(h)
	}
	s.add(r)
}

// RDS-MODE-002
type mode002 struct{}

func (mode002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-002", Severity: SevLow, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Policy and local licensing mode disagree",
		Rationale:   "Group Policy wins over the local Licensing Core value, which is then ignored. A different local value misleads anyone reading the RDS console or the registry and shows configuration drift.",
		Remediation: "Align the local licensing mode with the Group Policy value, or remove the policy if the local configuration is intended.",
		References:  []string{refModes, "domain.md §1 (precedence)"},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode}}
}

func (mode002) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if !h.Mode.Known {
		s.add(Result{Outcome: Error, Subject: sub, Evidence: modeEvidence(h),
			Message: "cannot compare: registry key " + evidence.KeyPolicy + " or " + evidence.KeyLicensingCore + " was not read"})
		return
	}
	r := Result{Subject: sub, Evidence: modeEvidence(h), Source: "policy, local",
		Observed: "policy " + facts.ModeName(h.Mode.Policy) + ", local " + facts.ModeName(h.Mode.Local)}
	switch {
	case h.Mode.Policy == nil || h.Mode.Local == nil:
		r.Outcome = NotApplicable
		r.Message = "only one source sets a licensing mode (policy " + facts.ModeName(h.Mode.Policy) + ", local " + facts.ModeName(h.Mode.Local) + "): nothing to compare"
	case *h.Mode.Policy != *h.Mode.Local:
		r.Outcome = Fail
		r.Expected = "local value equal to the policy value"
		r.Message = fmt.Sprintf("Group Policy sets %s but the local Licensing Core key holds %s; the policy value is effective and the local one is ignored",
			facts.ModeName(h.Mode.Policy), facts.ModeName(h.Mode.Local))
	default:
		r.Outcome = Pass
		r.Message = "policy and local licensing mode agree: " + facts.ModeName(h.Mode.Policy)
	}
	s.add(r)
}

// RDS-MODE-003
type mode003 struct{ needsRDSHMode }

func (mode003) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-003", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "WMI's effective licensing mode disagrees with the registry precedence",
		Rationale:   "Win32_TerminalServiceSetting reports the mode the service runs with. When it differs from what the registry precedence gives, a policy refresh or service restart is pending, or the registry was changed behind the service's back.",
		Remediation: "Run gpupdate /force and restart the Remote Desktop Services service in a maintenance window, then audit again; if the disagreement remains, investigate who changed the registry.",
		References:  []string{refWMI, "domain.md §2"},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode, fieldWMIMode, fieldWMIModeSrc}}
}

func (mode003) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	ev := append(modeEvidence(h), EvidenceField{Field: fieldWMIModeSrc, Value: i64(h.Mode.WMISource)})
	if h.Mode.WMI == nil {
		s.add(Result{Outcome: Error, Subject: sub, Evidence: ev,
			Message: "WMI licensing mode missing: Win32_TerminalServiceSetting.LicensingType was not read"})
		return
	}
	want := facts.ModeNotConfig
	if h.Mode.Effective != nil {
		want = *h.Mode.Effective
	}
	r := Result{Subject: sub, Evidence: ev, Source: "registry, wmi",
		Observed: "WMI LicensingType " + facts.ModeName(h.Mode.WMI),
		Expected: "registry precedence " + effectiveDesc(h)}
	var why []string
	if *h.Mode.WMI != want {
		why = append(why, fmt.Sprintf("WMI reports %s while the registry precedence gives %s", facts.ModeName(h.Mode.WMI), effectiveDesc(h)))
	}
	if src := h.Mode.WMISource; src != nil {
		if h.Mode.EffectiveSource == facts.SourcePolicy && *src == 0 {
			why = append(why, "WMI says the mode comes from the server configuration (PolicySourceLicensingType 0) although Group Policy sets it")
		}
		if h.Mode.EffectiveSource != facts.SourcePolicy && *src == 1 {
			why = append(why, "WMI says the mode comes from Group Policy (PolicySourceLicensingType 1) although no policy value was read")
		}
	}
	if len(why) > 0 {
		r.Outcome = Fail
		r.Message = strings.Join(why, "; ") + ": a policy refresh or restart is pending, or the registry was changed"
	} else {
		r.Outcome = Pass
		r.Message = "WMI and the registry precedence agree: " + facts.ModeName(h.Mode.WMI)
	}
	s.add(r)
}

// RDS-MODE-004
type mode004 struct{}

func (mode004) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-004", Severity: SevMedium, Scope: ScopeGroup,
		Title:       "Session hosts of one group use different licensing modes (or not the expected one)",
		Rationale:   "Hosts of one collection or farm serve the same users; mixed modes consume both CAL types and usually mean one host was set up by hand. When the rule set names an expected mode for the group, every host must use it.",
		Remediation: "Apply one licensing-mode policy to the whole group (GPO on the OU of the collection), matching the CALs you own.",
		References:  []string{refModes},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode, fieldInventory, "ruleset:expected_modes"}}
}

func (mode004) checkGroup(c *evalCtx, g *group, s *sink) {
	expected, hasExp := c.rs.ExpectedModes[g.Name]
	checkGroupConsistency(c, g, s, groupCheck{
		what: "licensing mode",
		value: func(h *facts.Facts) (string, bool) {
			if h.Mode.EffectiveSource == facts.SourceUnknown || h.Mode.EffectiveSource == "" {
				return "", false
			}
			return facts.ModeName(h.Mode.Effective), true
		},
		expected: func() (string, bool) {
			if !hasExp {
				return "", false
			}
			return facts.ModeName(&expected), true
		},
		field: fieldPolicyMode + " / " + fieldLocalMode,
	})
}

// groupCheck describes a group consistency rule (MODE-004, LS-003).
type groupCheck struct {
	what     string
	value    func(*facts.Facts) (string, bool)
	expected func() (string, bool)
	field    string
}

func checkGroupConsistency(c *evalCtx, g *group, s *sink, gc groupCheck) {
	sub := Subject{Kind: SubjectGroup, Name: g.Name}
	byValue := map[string][]string{}
	vals := make([]string, len(g.Members))
	has := make([]bool, len(g.Members))
	var missing []string
	for i, h := range g.Members {
		if !h.Collected() {
			missing = append(missing, h.Host.Name+" (not collected)")
			continue
		}
		v, ok := gc.value(h)
		if !ok {
			missing = append(missing, h.Host.Name+" (evidence missing)")
			continue
		}
		vals[i], has[i] = v, true
		byValue[v] = append(byValue[v], h.Host.Name)
	}
	values := sortedKeys(byValue)
	obs := make([]string, 0, len(values))
	for _, v := range values {
		obs = append(obs, fmt.Sprintf("%s: %s", v, strings.Join(byValue[v], ", ")))
	}
	// One evidence field per compared member, ordered by field (the member's name).
	var ev []EvidenceField
	if g.byName != nil {
		if n := len(g.Members) - len(missing); n > 0 {
			ev = make([]EvidenceField, 0, n)
		}
		for _, i := range g.byName {
			if has[i] {
				ev = append(ev, EvidenceField{Field: gc.field + " @" + g.Members[i].Host.Name, Value: vals[i]})
			}
		}
	} else { // members of the same name: by value, then in member order
		for _, v := range values {
			for _, n := range byValue[v] {
				ev = append(ev, EvidenceField{Field: gc.field + " @" + n, Value: v})
			}
		}
		sort.SliceStable(ev, func(i, j int) bool { return ev[i].Field < ev[j].Field })
	}
	r := Result{Subject: sub, Observed: strings.Join(obs, "; "), Evidence: ev, Source: "registry"}
	exp, hasExp := gc.expected()
	var wrong []string
	if hasExp {
		r.Expected = exp
		for _, v := range values {
			if v != exp {
				wrong = append(wrong, byValue[v]...)
			}
		}
	}
	switch {
	case len(wrong) > 0:
		r.Outcome = Fail
		r.Message = fmt.Sprintf("group %s: %s expected %s, but %s differ (%s)", g.Name, gc.what, exp, strings.Join(wrong, ", "), r.Observed)
	case len(values) > 1:
		r.Outcome = Fail
		r.Message = fmt.Sprintf("group %s: session hosts use %d different %s values (%s)", g.Name, len(values), gc.what, r.Observed)
	case len(missing) > 0:
		r.Outcome = Error
		r.Message = fmt.Sprintf("group %s: cannot compare %s: %s", g.Name, gc.what, strings.Join(missing, ", "))
	case len(values) == 0:
		r.Outcome = Error
		r.Message = fmt.Sprintf("group %s: no member has evidence", g.Name)
	case len(byValue[values[0]]) < 2 && !hasExp:
		r.Outcome = NotApplicable
		r.Message = fmt.Sprintf("group %s has a single session host and no expected value", g.Name)
	default:
		r.Outcome = Pass
		r.Message = fmt.Sprintf("group %s: all %d session hosts use %s %s", g.Name, len(byValue[values[0]]), gc.what, values[0])
	}
	if len(missing) > 0 && r.Outcome != Error {
		r.Message += "; not compared: " + strings.Join(missing, ", ")
	}
	s.add(r)
}

// RDS-MODE-005
type mode005 struct{ needsRDSHMode }

func (mode005) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-005", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Effective licensing mode has no matching CAL type on the host's license servers",
		Rationale:   "A Per User host whose license servers hold only Per Device CALs (or the reverse) cannot be licensed: it runs on its grace period and then refuses connections.",
		Remediation: "Install CALs of the type the mode needs on the host's license servers, or change the mode to the CAL type you own.",
		References:  []string{refLicensing, "domain.md §5"},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode, fieldPolicyLS, fieldLocalLS, fieldKeyPack}}
}

func (mode005) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	want := facts.ModeCALType(h.Mode.Effective)
	if want == "" {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Observed: effectiveDesc(h), Message: "no licensed mode (Per Device or Per User) in effect; see RDS-MODE-001/007"})
		return
	}
	if len(h.LicenseServers.Effective) == 0 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no license server specified; see RDS-LS-001"})
		return
	}
	found, missing := c.hostServers(h)
	var have []string
	var ev []EvidenceField
	for _, ls := range found {
		for i, kp := range ls.Holdings.KeyPacks {
			if usablePack(kp, c) {
				ev = append(ev, c.packEvidence(ls, i))
				have = appendUnique(have, kp.CALType)
			}
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: h.Mode.EffectiveSource + ", key packs",
		Expected: want + " key packs on " + strings.Join(h.LicenseServers.Effective, ", "),
		Observed: "mode " + effectiveDesc(h) + "; CAL types held: " + listOrNone(have)}
	for _, t := range have {
		if t == want {
			r.Outcome = Pass
			r.Message = fmt.Sprintf("mode %s is served by %s key packs", facts.ModeName(h.Mode.Effective), want)
			s.add(r)
			return
		}
	}
	if len(missing) > 0 {
		r.Outcome = Error
		r.Message = fmt.Sprintf("no %s key pack on the audited license servers, and license servers %s were not audited (not in the inventory or not collected)", want, strings.Join(missing, ", "))
	} else {
		r.Outcome = Fail
		r.Message = fmt.Sprintf("mode %s needs %s CALs but the host's license servers (%s) hold %s", facts.ModeName(h.Mode.Effective), want, strings.Join(h.LicenseServers.Effective, ", "), listOrNone(have))
	}
	s.add(r)
}

// usablePack: a non-built-in, non-temporary, unexpired key pack with licences.
func usablePack(kp facts.KeyPackFacts, c *evalCtx) bool {
	if kp.BuiltIn || kp.Temporary {
		return false
	}
	if kp.Total.Known && !kp.Total.Unlimited && kp.Total.Value <= 0 {
		return false
	}
	if kp.Expires != nil && kp.Expires.Before(c.now) {
		return false
	}
	return kp.CALType == facts.CALPerDevice || kp.CALType == facts.CALPerUser
}

// packEvidence is packEvidence(ls, ls.Holdings.KeyPacks[i]); for an audited license
// server it was built once per evaluation, not once per session host that reads it.
func (c *evalCtx) packEvidence(ls *facts.Facts, i int) EvidenceField {
	if pe, ok := c.packEv[ls]; ok {
		return pe[i]
	}
	return packEvidence(ls, ls.Holdings.KeyPacks[i])
}

func packEvidence(ls *facts.Facts, kp facts.KeyPackFacts) EvidenceField {
	return EvidenceField{Field: fmt.Sprintf("%s[KeyPackId=%d] @%s", fieldKeyPack, kp.ID, ls.Host.Name),
		Value: fmt.Sprintf("%s %s, ProductVersionID %s, type %s, total %s, issued %s", kp.CALType, orNone(kp.Version), i64(kp.VersionID), kp.PackTypeName, kp.Total, kp.Issued)}
}

// RDS-MODE-006
type mode006 struct{ needsMode }

func (mode006) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-006", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Per User mode on a workgroup (non-domain) host",
		Rationale:   "Per User CALs are tracked in Active Directory; a workgroup host cannot use them and must use Per Device (MS).",
		Remediation: "Join the host to the domain, or switch it to Per Device mode with Per Device CALs.",
		References:  []string{refLicensing, "domain.md §5"},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode, fieldPartOfDomain}}
}

func (mode006) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if h.Mode.Effective == nil || *h.Mode.Effective != facts.ModePerUser {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Observed: effectiveDesc(h), Message: "effective mode is not Per User (4)"})
		return
	}
	ev := append(modeEvidence(h), EvidenceField{Field: fieldPartOfDomain, Value: boolStr(h.OS.PartOfDomain)})
	if h.OS.PartOfDomain == nil {
		s.add(Result{Outcome: Error, Subject: sub, Evidence: ev, Message: "domain membership unknown: Win32_ComputerSystem.PartOfDomain was not read"})
		return
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi", Observed: "PartOfDomain " + boolStr(h.OS.PartOfDomain) + ", mode " + effectiveDesc(h), Expected: "domain member for Per User"}
	if *h.OS.PartOfDomain {
		r.Outcome, r.Message = Pass, "Per User host is a domain member ("+orNone(h.OS.Domain)+")"
	} else {
		r.Outcome, r.Message = Fail, "Per User mode on a workgroup host ("+orNone(h.OS.Domain)+"): Per User CALs need Active Directory; workgroup hosts must use Per Device"
	}
	s.add(r)
}

func boolStr(b *bool) string {
	if b == nil {
		return "absent"
	}
	return fmt.Sprint(*b)
}

// RDS-MODE-007
type mode007 struct{ needsMode }

func (mode007) Info() RuleInfo {
	return RuleInfo{ID: "RDS-MODE-007", Severity: SevMedium, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "Unknown or unexpected licensing mode value",
		Rationale:   "Only Per Device (2) and Per User (4) license an RD Session Host. 0 (Personal TS) and 1 (Remote Desktop for Administration) on an AppServer host, AAD Per User (6) outside Azure Virtual Desktop, values of the wrong registry type and any other value mean misconfiguration or tampering.",
		Remediation: "Set the licensing mode by Group Policy to Per Device or Per User. Tag Azure Virtual Desktop hosts in the inventory (parameter avd_tag) if they legitimately use AAD Per User.",
		References:  []string{refModes, "domain.md §1, §2"},
		Evidence:    []string{fieldPolicyMode, fieldLocalMode, fieldTSMode, fieldInventory},
		Params:      []Param{{Name: "avd_tag", Default: "avd", Description: "inventory tag marking Azure Virtual Desktop session hosts (AAD Per User allowed)"}}}
}

func (mode007) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	ev := append(modeEvidence(h), EvidenceField{Field: fieldTSMode, Value: tsModeValue(h)})
	r := Result{Subject: sub, Evidence: ev, Source: h.Mode.EffectiveSource, Observed: effectiveDesc(h), Expected: "Per Device (2) or Per User (4)"}
	var why []string
	why = append(why, h.Mode.Invalid...)
	if h.Mode.Effective == nil && len(why) == 0 {
		r.Outcome, r.Message = NotApplicable, "no licensing mode value set; see RDS-MODE-001"
		s.add(r)
		return
	}
	if e := h.Mode.Effective; e != nil {
		rdsh, known := isRDSH(h)
		switch *e {
		case facts.ModePerDevice, facts.ModePerUser, facts.ModeNotConfig:
		case facts.ModePersonalTS:
			why = append(why, "mode 0 (Personal Terminal Server) is not a server licensing mode")
		case facts.ModeAdminOnly:
			if !known {
				r.Outcome, r.Message = Error, "mode 1 (Remote Desktop for Administration) in effect and the RD Session Host role is unknown (Win32_TerminalServiceSetting.TerminalServerMode missing)"
				s.add(r)
				return
			}
			if rdsh {
				why = append(why, "mode 1 (Remote Desktop for Administration) on an AppServer host")
			}
		case facts.ModeAADPerUser:
			tag := c.strParam("RDS-MODE-007", "avd_tag")
			avd := false
			for _, t := range h.Host.Tags {
				avd = avd || strings.EqualFold(t, tag)
			}
			if !avd {
				why = append(why, fmt.Sprintf("mode 6 (AAD Per User) on a host not tagged %q (Azure Virtual Desktop) in the inventory", tag))
				r.Strength = "rdsaudit cannot see whether a host is an Azure Virtual Desktop session host; it relies on the inventory tag"
			}
		default:
			why = append(why, "unknown mode value "+facts.ModeName(e))
		}
	}
	if len(why) > 0 {
		r.Outcome, r.Message = Fail, strings.Join(why, "; ")
	} else {
		r.Outcome, r.Message = Pass, "licensing mode value "+effectiveDesc(h)+" is expected"
	}
	s.add(r)
}
