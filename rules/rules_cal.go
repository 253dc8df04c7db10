package rules

import (
	"fmt"
	"strings"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// RDS-CAL-001
type cal001 struct{ needsRDSHMode }

func (cal001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-001", Severity: SevHigh, Scope: ScopeHost, Roles: sessionHost(),
		Title:       "No CAL of a version valid for the host OS on its license servers",
		Rationale:   "A CAL must be the same version as the session host OS or newer (MS): 2019 hosts need 2019+ CALs, 2022 hosts 2022+, 2025 hosts 2025 CALs; 2008 R2 and older CALs serve only 2008/2008 R2.",
		Remediation: "Install CALs of the host's version (or newer) and of the mode's type on its license servers (whose OS must be at least that version).",
		References:  []string{refCALVersions, "domain.md §5"},
		Evidence:    []string{fieldOSVersion, fieldPolicyMode, fieldLocalMode, fieldPolicyLS, fieldLocalLS, fieldKeyPack}}
}

func (cal001) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	want := facts.ModeCALType(h.Mode.Effective)
	if want == "" {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Observed: effectiveDesc(h), Message: "no licensed mode in effect"})
		return
	}
	if len(h.LicenseServers.Effective) == 0 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no license server specified; see RDS-LS-001"})
		return
	}
	min := facts.MinCALVersion(h.OS.Release)
	osEv := EvidenceField{Field: fieldOSVersion, Value: fmt.Sprintf("%s / %s / %s → %s", orNone(h.OS.Version), orNone(h.OS.Build), orNone(h.OS.Caption), orNone(h.OS.Release))}
	if min == 0 {
		s.add(Result{Outcome: Error, Subject: sub, Evidence: []EvidenceField{osEv}, Message: "host OS release unknown (Win32_OperatingSystem version/caption not recognised)"})
		return
	}
	found, missing := c.hostServers(h)
	var typed, valid, unversioned, temporary []string
	ev, tempEv := []EvidenceField{osEv}, []EvidenceField(nil)
	for _, ls := range found {
		for i, kp := range ls.Holdings.KeyPacks {
			if kp.Temporary && !kp.BuiltIn && kp.CALType == want {
				tempEv = append(tempEv, c.packEvidence(ls, i))
				temporary = append(temporary, fmt.Sprintf("temporary key pack %d@%s", kp.ID, ls.Host.Name))
			}
			if !usablePack(kp, c) || kp.CALType != want {
				continue
			}
			if kp.VersionID == nil {
				ev = append(ev, c.packEvidence(ls, i))
				unversioned = append(unversioned, fmt.Sprintf("key pack %d@%s", kp.ID, ls.Host.Name))
				continue
			}
			ev = append(ev, c.packEvidence(ls, i))
			d := fmt.Sprintf("%s@%s", versionName(*kp.VersionID), ls.Host.Name)
			typed = appendUnique(typed, d)
			if *kp.VersionID >= min {
				valid = appendUnique(valid, d)
			}
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi",
		Observed: fmt.Sprintf("Windows Server %s host; %s CALs held: %s", h.OS.Release, want, listOrNone(typed)),
		Expected: fmt.Sprintf("%s CALs of version %s or newer", want, versionName(min))}
	switch {
	case len(valid) > 0:
		r.Outcome, r.Message = Pass, fmt.Sprintf("valid %s CALs for Windows Server %s: %s", want, h.OS.Release, strings.Join(valid, ", "))
	case len(missing) > 0:
		r.Outcome, r.Message = Error, fmt.Sprintf("no %s CAL of version %s or newer on the audited license servers, and %s were not audited", want, versionName(min), strings.Join(missing, ", "))
	case len(unversioned) > 0:
		r.Outcome, r.Message = Error, fmt.Sprintf("no %s CAL of version %s or newer is known, and the version of %s was not reported (ProductVersionID absent)", want, versionName(min), strings.Join(unversioned, ", "))
	case len(typed) == 0 && len(temporary) > 0:
		// Temporary packs (KeyPackType 4) expire and are no entitlement: the host has no
		// valid CAL, whatever RDS-MODE-005 says about the mode's type (issue 11).
		r.Evidence = append(r.Evidence, tempEv...)
		r.Outcome, r.Message = Fail, fmt.Sprintf("Windows Server %s host needs %s CALs of version %s or newer; its license servers hold only temporary %s packs (%s), which are no CALs",
			h.OS.Release, want, versionName(min), want, strings.Join(temporary, ", "))
	case len(typed) == 0:
		r.Outcome, r.Message = Fail, fmt.Sprintf("Windows Server %s host needs %s CALs of version %s or newer; its license servers hold no %s CALs at all (see also RDS-MODE-005)",
			h.OS.Release, want, versionName(min), want)
	default:
		r.Outcome, r.Message = Fail, fmt.Sprintf("Windows Server %s host needs %s CALs of version %s or newer; its license servers hold only %s", h.OS.Release, want, versionName(min), strings.Join(typed, ", "))
	}
	s.add(r)
}

// RDS-CAL-002
type cal002 struct{ needsHoldings }

func (cal002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-002", Severity: SevHigh, Scope: ScopeHost, Roles: licenseServer(),
		Title:       "Per Device key pack exhausted",
		Rationale:   "Per Device CALs are enforced and cannot be over-allocated: when every CAL of a pack is issued, new devices get temporary CALs (90 days) and are then refused.",
		Remediation: "Buy and install more Per Device CALs, or revoke CALs of retired devices (up to 20%).",
		References:  []string{refTrack, "domain.md §4, §5"},
		Evidence:    []string{fieldKeyPack + ".TotalLicenses/IssuedLicenses/AvailableLicenses"}}
}

func (cal002) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	var full, ok, unknown []string
	var ev []EvidenceField
	for _, kp := range h.Holdings.KeyPacks {
		if kp.BuiltIn || kp.Temporary || kp.CALType != facts.CALPerDevice {
			continue
		}
		ev = append(ev, packEvidence(h, kp))
		d := fmt.Sprintf("key pack %d (%s, %s/%s issued)", kp.ID, versionName(deref(kp.VersionID)), kp.Issued, kp.Total)
		switch {
		case kp.Total.Unlimited:
			ok = append(ok, d)
		case !kp.Total.Known || !kp.Issued.Known:
			unknown = append(unknown, d)
		case kp.Issued.Value >= kp.Total.Value:
			full = append(full, d)
		default:
			ok = append(ok, d)
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi", Expected: "issued < total for every Per Device pack",
		Observed: fmt.Sprintf("exhausted: %s; with room: %s", listOrNone(full), listOrNone(ok))}
	switch {
	case len(full) > 0:
		r.Outcome, r.Message = Fail, "Per Device key packs exhausted: "+strings.Join(full, ", ")
	case len(unknown) > 0:
		r.Outcome, r.Message = Error, "licence counts missing for "+strings.Join(unknown, ", ")
	case len(ok) == 0:
		r.Outcome, r.Message = NotApplicable, "no Per Device key packs (built-in and temporary excluded)"
	default:
		r.Outcome, r.Message = Pass, "Per Device key packs have CALs left: "+strings.Join(ok, ", ")
	}
	s.add(r)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// RDS-CAL-003
type cal003 struct{ needsHoldings }

func (cal003) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-003", Severity: SevMedium, Scope: ScopeHost, Roles: licenseServer(),
		Title:       "Temporary Per Device CALs issued",
		Rationale:   "A temporary CAL (90 days) is issued when no permanent Per Device CAL is available, or when a client lost its token. When it expires without a permanent CAL, the device is refused.",
		Remediation: "Install enough Per Device CALs; check clients repeatedly receiving temporary CALs (RDS-CLIENT-002).",
		References:  []string{refTrack, "domain.md §4, §5, §7"},
		Evidence:    []string{fieldIssued + ".LicenseStatus", fieldKeyPack + " (KeyPackType 4)"}}
}

func (cal003) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	var comps []string
	n := 0
	for _, il := range h.Holdings.Issued {
		if il.Temporary {
			n++
			comps = appendUnique(comps, orNone(il.Computer))
		}
	}
	var packIssued int64
	var ev []EvidenceField
	for _, kp := range h.Holdings.KeyPacks {
		if kp.Temporary && kp.Issued.Known && !kp.Issued.Unlimited {
			packIssued += kp.Issued.Value
			ev = append(ev, packEvidence(h, kp))
		}
	}
	ev = append(ev, EvidenceField{Field: fieldIssued + " (LicenseStatus 1)", Value: fmt.Sprintf("%d of %d listed%s", n, len(h.Holdings.Issued), truncNote(h.Holdings))})
	r := Result{Subject: sub, Evidence: ev, Source: "wmi", Expected: "no temporary CALs issued",
		Observed: fmt.Sprintf("%d temporary CALs listed (computers: %s); temporary key packs report %d issued", n, listOrNone(comps), packIssued)}
	if n > 0 || packIssued > 0 {
		r.Outcome, r.Message = Fail, fmt.Sprintf("temporary Per Device CALs issued: %s", r.Observed)
	} else {
		r.Outcome, r.Message = Pass, "no temporary Per Device CALs issued"
	}
	s.add(r)
}

func truncNote(h *facts.Holdings) string {
	if h.IssuedTruncated {
		return fmt.Sprintf(" (list truncated; server reported %d)", h.IssuedTotal)
	}
	return ""
}

// RDS-CAL-004
type cal004 struct{ needsHoldings }

func (cal004) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-004", Severity: SevHigh, Scope: ScopeHost, Roles: licenseServer(),
		Title:       "Per User usage above installed Per User CALs",
		Rationale:   "Per User CALs are not enforced and can be over-allocated, which breaches the licence agreement. Usage is only visible in license-server reports; rdsaudit reads the newest existing report and never generates one unless asked to.",
		Remediation: "Buy the missing Per User CALs, or reduce the number of users with access.",
		References:  []string{refTrack, "domain.md §4, §5"},
		Evidence:    []string{fieldReport, fieldKeyPack}}
}

func (cal004) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	rep := latestReport(h.Holdings)
	if rep == nil {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no existing Per User usage report on the license server (rdsaudit generates none unless opted in)"})
		return
	}
	installed := map[int64]int64{}
	for _, kp := range h.Holdings.KeyPacks {
		if kp.CALType == facts.CALPerUser && !kp.BuiltIn && !kp.Temporary && kp.VersionID != nil && kp.Total.Known && !kp.Total.Unlimited {
			installed[*kp.VersionID] += kp.Total.Value
		}
	}
	var over, ok []string
	var ev []EvidenceField
	for _, e := range rep.Summary {
		if e.TSCALType == nil || *e.TSCALType != 1 || e.IssuedLicenses == nil || e.ProductVersionID == nil {
			continue
		}
		inst, src := installed[*e.ProductVersionID], "key packs"
		if e.InstalledLicenses != nil {
			inst, src = *e.InstalledLicenses, "report"
		}
		d := fmt.Sprintf("%s: %d used / %d installed (%s)", versionName(*e.ProductVersionID), *e.IssuedLicenses, inst, src)
		ev = append(ev, EvidenceField{Field: fmt.Sprintf("%s[%s, %s]", fieldReport, orNone(rep.FileName), orNone(rep.GeneratedDate)), Value: d})
		if *e.IssuedLicenses > inst {
			over = append(over, d)
		} else {
			ok = append(ok, d)
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: "report", Expected: "usage ≤ installed Per User CALs", Observed: "report " + orNone(rep.FileName) + " of " + orNone(rep.GeneratedDate)}
	switch {
	case len(over) > 0:
		r.Outcome, r.Message = Fail, "Per User usage above installed CALs: "+strings.Join(over, "; ")
	case len(ok) == 0:
		r.Outcome, r.Message = NotApplicable, "the newest report has no Per User entries"
	default:
		r.Outcome, r.Message = Pass, "Per User usage within installed CALs: "+strings.Join(ok, "; ")
	}
	s.add(r)
}

// RDS-CAL-005
type cal005 struct{}

func (cal005) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-005", Severity: SevHigh, Scope: ScopeFleet,
		Title:       "True-up shortfall against the entitlement ledger",
		Rationale:   "CALs in use (Per User: existing reports; else issued counts of the key packs) beyond what the ledger entitles must be bought at the next true-up. The estimate uses the ledger's unit price.",
		Remediation: "Buy the shortfall (or reduce usage) and record the purchase in the ledger.",
		References:  []string{refTrack, "domain.md §5"},
		Evidence:    []string{fieldLedger, fieldKeyPack + ".IssuedLicenses", fieldReport}}
}

func positionSubject(r PositionRow) Subject {
	return Subject{Kind: SubjectFleet, Name: r.CALType + "/" + r.Version}
}

func positionEvidence(r PositionRow) []EvidenceField {
	ev := []EvidenceField{
		{Field: fieldLedger, Value: fmt.Sprintf("%d entitled (%s)", r.Entitled, listOrNone(r.Sources))},
		{Field: fieldKeyPack + " (installed, non-built-in, non-temporary)", Value: fmt.Sprintf("%d installed, %d issued%s", r.Installed, r.Issued, unlimitedNote(r.InstalledUnlimited))},
	}
	switch {
	case r.Used != nil && r.UsageSource == dirPositionSource: // rules_peruser.go
		ev = append(ev, EvidenceField{Field: fieldDirExpire, Value: fmt.Sprintf("%d users with an active CAL (Active Directory)", *r.Used)})
	case r.Used != nil:
		ev = append(ev, EvidenceField{Field: fieldReport, Value: fmt.Sprintf("%d used", *r.Used)})
	}
	return ev
}

func unlimitedNote(b bool) string {
	if b {
		return "; a pack reports an unlimited count"
	}
	return ""
}

func (cal005) checkFleet(c *evalCtx, s *sink) {
	if !c.ledger {
		s.add(Result{Outcome: NotApplicable, Subject: Subject{Kind: SubjectFleet, Name: "ledger"}, Message: "no entitlement ledger given"})
		return
	}
	for _, p := range c.position {
		r := Result{Subject: positionSubject(p), Evidence: positionEvidence(p), Source: "ledger, key packs",
			Observed: fmt.Sprintf("%d in use (%s)", p.Usage, p.UsageSource), Expected: fmt.Sprintf("at most %d entitled", p.Entitled)}
		switch {
		case p.Shortfall > 0:
			r.Outcome = Fail
			r.Message = fmt.Sprintf("%s %s: %d in use, %d entitled: shortfall %d", p.CALType, p.Version, p.Usage, p.Entitled, p.Shortfall)
			if p.EstimatedCost != nil {
				r.Message += fmt.Sprintf(", estimated cost %s %s (%d × %s)", p.EstimatedCost, p.Currency, p.Shortfall, p.UnitPrice)
			} else {
				r.Message += " (no unit price in the ledger: no cost estimate)"
			}
			if !p.Complete {
				r.Message += "; at least this much: " + strings.Join(p.Notes, "; ")
			}
		case !p.Complete:
			r.Outcome, r.Message = Error, fmt.Sprintf("%s %s: no shortfall on the audited license servers, but %s", p.CALType, p.Version, strings.Join(p.Notes, "; "))
		default:
			r.Outcome, r.Message = Pass, fmt.Sprintf("%s %s: %d in use within %d entitled (surplus %d)", p.CALType, p.Version, p.Usage, p.Entitled, p.Surplus)
		}
		s.add(r)
	}
}

// RDS-CAL-006
type cal006 struct{}

func (cal006) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-006", Severity: SevMedium, Scope: ScopeFleet,
		Title:       "Installed key packs not backed by the ledger",
		Rationale:   "CAL packs installed on license servers beyond what the ledger records (per CAL type × version) were installed without a recorded purchase, or the ledger is out of date. Downgrade rights are not modelled: a newer entitlement does not cover an older pack here.",
		Remediation: "Record the agreement in the ledger, or remove the unbacked key packs.",
		References:  []string{refTrack},
		Evidence:    []string{fieldLedger, fieldKeyPack + ".TotalLicenses"}}
}

func (cal006) checkFleet(c *evalCtx, s *sink) {
	if !c.ledger {
		s.add(Result{Outcome: NotApplicable, Subject: Subject{Kind: SubjectFleet, Name: "ledger"}, Message: "no entitlement ledger given"})
		return
	}
	for _, p := range c.position {
		r := Result{Subject: positionSubject(p), Evidence: positionEvidence(p), Source: "ledger, key packs",
			Observed: fmt.Sprintf("%d installed%s", p.Installed, unlimitedNote(p.InstalledUnlimited)), Expected: fmt.Sprintf("at most %d (ledger)", p.Entitled)}
		switch {
		case p.InstalledUnlimited:
			r.Outcome, r.Message = Fail, fmt.Sprintf("%s %s: a key pack reports an unlimited count; the ledger entitles %d", p.CALType, p.Version, p.Entitled)
		case p.Installed > p.Entitled:
			r.Outcome, r.Message = Fail, fmt.Sprintf("%s %s: %d installed but the ledger records %d: %d not backed", p.CALType, p.Version, p.Installed, p.Entitled, p.Installed-p.Entitled)
		case p.Installed == 0 && p.Complete:
			r.Outcome, r.Message = NotApplicable, fmt.Sprintf("%s %s: nothing installed", p.CALType, p.Version)
		case !p.Complete:
			r.Outcome, r.Message = Error, fmt.Sprintf("%s %s: %d installed on the audited servers within %d entitled, but %s", p.CALType, p.Version, p.Installed, p.Entitled, strings.Join(p.Notes, "; "))
		default:
			r.Outcome, r.Message = Pass, fmt.Sprintf("%s %s: %d installed, backed by %d in the ledger", p.CALType, p.Version, p.Installed, p.Entitled)
		}
		s.add(r)
	}
}

// RDS-CAL-007
type cal007 struct{ needsHoldings }

func (cal007) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CAL-007", Severity: SevMedium, Scope: ScopeHost, Roles: licenseServer(),
		Title:       "Key pack expired or expiring soon",
		Rationale:   "CALs of an expired key pack (e.g. subscription or SPLA-like agreements) can no longer be issued. Parameter expiry_days sets how early to warn.",
		Remediation: "Renew the agreement and install the new key pack before the expiry.",
		References:  []string{refTrack, "domain.md §4"},
		Evidence:    []string{fieldKeyPack + ".ExpirationDate"},
		Params:      []Param{{Name: "expiry_days", Default: 90, Description: "warn when a key pack expires within this many days"}}}
}

func (cal007) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	n := c.intParam("RDS-CAL-007", "expiry_days")
	limit := c.now.AddDate(0, 0, n)
	var expired, soon, bad []string
	var ev []EvidenceField
	count := 0
	for _, kp := range h.Holdings.KeyPacks {
		if kp.BuiltIn || kp.Temporary {
			continue
		}
		count++
		ev = append(ev, EvidenceField{Field: fmt.Sprintf("%s[KeyPackId=%d].ExpirationDate @%s", fieldKeyPack, kp.ID, h.Host.Name), Value: orNone(kp.ExpiresRaw)})
		switch {
		case kp.Expires == nil && kp.ExpiresRaw != "":
			bad = append(bad, fmt.Sprintf("key pack %d: %s", kp.ID, kp.DateError))
		case kp.Expires == nil:
		case kp.Expires.Before(c.now):
			expired = append(expired, fmt.Sprintf("key pack %d (%s %s) expired %s", kp.ID, kp.CALType, versionName(deref(kp.VersionID)), kp.Expires.Format("2006-01-02")))
		case kp.Expires.Before(limit):
			soon = append(soon, fmt.Sprintf("key pack %d (%s %s) expires %s", kp.ID, kp.CALType, versionName(deref(kp.VersionID)), kp.Expires.Format("2006-01-02")))
		}
	}
	r := Result{Subject: sub, Evidence: ev, Source: "wmi", Expected: fmt.Sprintf("no key pack expiring before %s", limit.Format("2006-01-02"))}
	all := append(append([]string{}, expired...), soon...)
	r.Observed = listOrNone(all)
	switch {
	case len(all) > 0:
		r.Outcome, r.Message = Fail, strings.Join(all, "; ")
	case len(bad) > 0:
		r.Outcome, r.Message = Error, "expiration date unreadable: "+strings.Join(bad, "; ")
	case count == 0:
		r.Outcome, r.Message = NotApplicable, "no key packs (built-in and temporary excluded)"
	default:
		r.Outcome, r.Message = Pass, fmt.Sprintf("no key pack expires within %d days", n)
	}
	s.add(r)
}

// RDS-CLIENT-001
type client001 struct{}

func (client001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CLIENT-001", Severity: SevLow, Scope: ScopeHost, Roles: clientRole(),
		Title:       "Client CAL token store empty while the license server lists a Per Device CAL for it",
		Rationale:   "A device that was issued a Per Device CAL keeps the token under HKLM\\SOFTWARE\\Microsoft\\MSLicensing\\Store. An empty or missing store while the license server lists a CAL for the computer means the token was deleted; the device then requests a new temporary CAL.",
		Remediation: "Find out why the store was cleared (reimaging, cleanup scripts, licence-reset tools).",
		References:  []string{"domain.md §7"},
		Evidence:    []string{fieldClientStore, fieldIssued + ".sIssuedToComputer"}}
}

func (client001) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if h.Client == nil || !h.Client.Known {
		s.add(Result{Outcome: Error, Subject: sub, Message: "client token store unknown: registry keys " + evidence.KeyClientStore + " / " + evidence.KeyClientHardwareID + " were not read"})
		return
	}
	refs := c.issued[facts.ShortName(h.Host.Name)]
	if len(refs) == 0 {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no audited license server lists a Per Device CAL for this computer"})
		return
	}
	var lic []string
	ev := []EvidenceField{{Field: fieldClientStore, Value: fmt.Sprintf("%s, %d tokens", presence(h.Client.StoreExists), len(h.Client.Tokens))}}
	for _, ir := range refs {
		d := fmt.Sprintf("licence %d (%s, issued %s) @%s", ir.lic.LicenseID, ir.lic.StatusName, fmtTime(ir.lic.Issued), ir.server.Host.Name)
		lic = append(lic, d)
		ev = append(ev, EvidenceField{Field: fmt.Sprintf("%s[LicenseId=%d] @%s", fieldIssued, ir.lic.LicenseID, ir.server.Host.Name), Value: ir.lic.StatusName + " for " + ir.lic.Computer})
	}
	r := Result{Subject: sub, Evidence: ev, Source: "registry, license server", Observed: fmt.Sprintf("store %s with %d tokens", presence(h.Client.StoreExists), len(h.Client.Tokens)),
		Expected: "CAL token in the store: " + strings.Join(lic, "; ")}
	if !h.Client.StoreExists || len(h.Client.Tokens) == 0 {
		r.Outcome, r.Message = Fail, "token store empty or missing while the license server lists "+strings.Join(lic, "; ")
		r.Strength = "moderate: matched by computer name; a renamed or reimaged device with the same name gives the same picture"
	} else {
		r.Outcome, r.Message = Pass, fmt.Sprintf("token store holds %d tokens", len(h.Client.Tokens))
	}
	s.add(r)
}

// RDS-CLIENT-002
type client002 struct{}

func (client002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-CLIENT-002", Severity: SevMedium, Scope: ScopeHost, Roles: clientRole(),
		Title:       "Client token store rewritten after its CAL was issued, and the device holds temporary CALs again",
		Rationale:   "Deleting MSLicensing\\Store makes a device request a fresh temporary CAL: the license server then shows a new temporary CAL for the same computer name issued after its permanent one. Repeated, this evades Per Device licensing.",
		Remediation: "Stop the store reset (scripts, tools) and license the device with a permanent Per Device CAL.",
		References:  []string{"domain.md §7"},
		Evidence:    []string{fieldClientStore + " (LastWriteTime)", fieldIssued + ".IssueDate/LicenseStatus"}}
}

func (client002) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	if h.Client == nil || !h.Client.Known {
		s.add(Result{Outcome: Error, Subject: sub, Message: "client token store unknown: registry keys " + evidence.KeyClientStore + " / " + evidence.KeyClientHardwareID + " were not read"})
		return
	}
	refs := c.issued[facts.ShortName(h.Host.Name)]
	var perm *issuedRef
	var temps []issuedRef
	for i := range refs {
		ir := refs[i]
		switch {
		case ir.lic.Temporary:
			temps = append(temps, ir)
		case ir.lic.Issued != nil && (perm == nil || ir.lic.Issued.Before(*perm.lic.Issued)):
			perm = &refs[i]
		}
	}
	if perm == nil {
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no permanent Per Device CAL with an issue date listed for this computer"})
		return
	}
	if h.Client.StoreWritten == nil {
		s.add(Result{Outcome: Error, Subject: sub, Message: "token store LastWriteTime missing (" + evidence.KeyClientStore + ")"})
		return
	}
	var laterTemps []string
	ev := []EvidenceField{
		{Field: fieldClientStore + " LastWriteTime", Value: fmtTime(h.Client.StoreWritten)},
		{Field: fmt.Sprintf("%s[LicenseId=%d].IssueDate @%s", fieldIssued, perm.lic.LicenseID, perm.server.Host.Name), Value: fmtTime(perm.lic.Issued) + " (" + perm.lic.StatusName + ")"},
	}
	for _, t := range temps {
		if t.lic.Issued == nil || t.lic.Issued.After(*perm.lic.Issued) {
			laterTemps = append(laterTemps, fmt.Sprintf("licence %d issued %s @%s", t.lic.LicenseID, fmtTime(t.lic.Issued), t.server.Host.Name))
			ev = append(ev, EvidenceField{Field: fmt.Sprintf("%s[LicenseId=%d] @%s", fieldIssued, t.lic.LicenseID, t.server.Host.Name), Value: "temporary, issued " + fmtTime(t.lic.Issued)})
		}
	}
	rewritten := h.Client.StoreWritten.After(*perm.lic.Issued)
	r := Result{Subject: sub, Evidence: ev, Source: "registry, license server",
		Observed: fmt.Sprintf("store written %s; permanent CAL issued %s; temporary CALs after it: %s", fmtTime(h.Client.StoreWritten), fmtTime(perm.lic.Issued), listOrNone(laterTemps)),
		Expected: "store unchanged since the permanent CAL, no new temporary CAL"}
	if rewritten && len(laterTemps) > 0 {
		r.Outcome = Fail
		r.Message = "token store rewritten after the permanent CAL was issued, and the license server lists temporary CALs for it again: " + strings.Join(laterTemps, "; ")
		r.Strength = "moderate: matched by computer name; a reinstalled client shows the same pattern"
	} else {
		r.Outcome = Pass
		r.Message = "no store reset pattern (rewritten after permanent CAL: " + fmt.Sprint(rewritten) + ", later temporary CALs: " + fmt.Sprint(len(laterTemps)) + ")"
	}
	s.add(r)
}

// RDS-COLLECT-001
type collect001 struct{}

func (collect001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-COLLECT-001", Severity: SevHigh, Scope: ScopeHost,
		Title:       "Host not collected (coverage gap)",
		Rationale:   "A targeted host whose evidence could not be read is not audited: every rule about it is unproven. The error class tells what to fix (DNS, connect, TLS, auth, access denied, timeout...).",
		Remediation: "Fix the cause named by the error class and run the audit again.",
		References:  []string{"domain.md"},
		Evidence:    []string{fieldCollection}}
}

func (collect001) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	r := Result{Outcome: Pass, Subject: sub, Source: "collection", Observed: "collected", Expected: "collected",
		Evidence: []EvidenceField{{Field: fieldCollection, Value: string(h.Status)}}, Message: "host collected"}
	if len(h.Errors) > 0 {
		var secs []string
		for _, e := range h.Errors {
			secs = append(secs, e.Section)
		}
		r.Message = fmt.Sprintf("host collected; %d sections failed (%s): rules reading them report errors", len(h.Errors), strings.Join(secs, ", "))
		r.Observed = "collected with section errors"
	}
	s.add(r)
}

func (collect001) checkUncollected(c *evalCtx, h *facts.Facts, s *sink) {
	r := Result{Outcome: Fail, Subject: hostSubject(h), Source: "collection", Expected: "collected", Observed: string(h.Status)}
	class, msg := "unknown", ""
	if h.Failure != nil {
		class, msg = string(h.Failure.Class), h.Failure.Message
	}
	if class == string(evidence.FailUnsupported) && c.rs.Enabled("RDS-COLLECT-002") {
		// One finding per uncollected host (issue 11): an unsupported OS is RDS-COLLECT-002's.
		s.add(Result{Outcome: NotApplicable, Subject: r.Subject, Message: "host not collected (unsupported OS); see RDS-COLLECT-002"})
		return
	}
	r.Evidence = []EvidenceField{{Field: fieldCollection, Value: string(h.Status) + " (" + class + ")"}}
	r.Message = fmt.Sprintf("host not collected (%s, error class %s): %s", h.Status, class, orNone(msg))
	s.add(r)
}

// RDS-COLLECT-002
type collect002 struct{}

func (collect002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-COLLECT-002", Severity: SevMedium, Scope: ScopeHost,
		Title:       "Host OS unsupported by the collector (Windows Server 2008 R2 and older)",
		Rationale:   "Windows Server 2008 R2 and older lack PowerShell 3 and are out of support; rdsaudit reports them as unsupported rather than guessing their licensing state.",
		Remediation: "Upgrade the host to a supported Windows Server (2012 or newer), or exclude it from the inventory and audit it manually until it is retired.",
		References:  []string{"domain.md §1"},
		Evidence:    []string{fieldOSVersion, fieldCollection}}
}

func (collect002) checkHost(c *evalCtx, h *facts.Facts, sub Subject, s *sink) {
	osEv := EvidenceField{Field: fieldOSVersion, Value: fmt.Sprintf("%s / %s / %s → %s", orNone(h.OS.Version), orNone(h.OS.Build), orNone(h.OS.Caption), orNone(h.OS.Release))}
	if !h.OS.Known {
		s.add(Result{Outcome: Error, Subject: sub, Message: "OS unknown: Win32_OperatingSystem was not read"})
		return
	}
	r := Result{Subject: sub, Evidence: []EvidenceField{osEv}, Source: "wmi", Observed: orNone(h.OS.Caption) + " " + orNone(h.OS.Version), Expected: "Windows Server 2012 or newer"}
	if h.OS.Supported() {
		r.Outcome, r.Message = Pass, "OS supported: "+orNone(h.OS.Release)
	} else {
		r.Outcome, r.Message = Fail, "OS unsupported: Windows Server "+orNone(h.OS.Release)+" (2008 R2 and older are out of support and not audited)"
	}
	s.add(r)
}

func (collect002) checkUncollected(c *evalCtx, h *facts.Facts, s *sink) {
	sub := hostSubject(h)
	if h.Failure != nil && h.Failure.Class == evidence.FailUnsupported {
		s.add(Result{Outcome: Fail, Subject: sub, Source: "collection", Observed: "unsupported_os", Expected: "Windows Server 2012 or newer",
			Evidence: []EvidenceField{{Field: fieldCollection, Value: string(h.Status) + " (unsupported_os)"}},
			Message:  "host not collected (" + string(h.Status) + ", error class unsupported_os): OS unsupported by the collector: " + h.Failure.Message})
		return
	}
	s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "host not collected; see RDS-COLLECT-001"})
}
