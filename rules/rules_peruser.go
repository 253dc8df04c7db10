package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/facts"
)

// Per User CALs read from Active Directory (issue 15, domain.md §8). Every rule here is
// not applicable without a directory source, and an error (figures unknown, never zero)
// when a configured domain could not be read.

const (
	fieldDirVersion = `ldap:user.msTSLicenseVersion[1-4]`
	fieldDirExpire  = `ldap:user.msTSExpireDate[1-4]`
	fieldDirLS      = `ldap:user.msTSManagingLS[1-4]`
	fieldDirLogon   = `ldap:user.userAccountControl/lastLogonTimestamp`
)

// directoryUsage feeds the CAL position's Per User usage from the directory when every
// domain was read: active users per version, each user once (called by buildPosition).
func (c *evalCtx) directoryUsage() {
	if !c.perUser.Known() {
		return
	}
	// Holders the count cannot place: CALs whose msTSLicenseVersion maps to no confirmed
	// release (they may be of any version), and, per version, CALs whose msTSExpireDate
	// could not be read (they may be active). Where either exists, the directory's
	// figure is a lower bound, and the position says so.
	unknownVersion, unreadable := 0, map[int64]int{}
	var unknownRaw []string
	for _, v := range c.perUser.Versions {
		if v.VersionID == 0 {
			if n := v.Active + v.Unknown; n > 0 {
				unknownVersion += n
				unknownRaw = append(unknownRaw, v.RawVersions...)
			}
			continue
		}
		unreadable[v.VersionID] += v.Unknown
	}
	for id, n := range c.perUser.ActiveByVersionID() {
		k := posKey{facts.CALPerUser, id}
		if _, exists := c.posIndex[k]; !exists && n == 0 && unreadable[id] == 0 {
			continue // only expired CALs of this version: no position row of zeros
		}
		r := c.row(k)
		if c.dirRows == nil {
			c.dirRows = map[posKey]bool{}
		}
		c.dirRows[k] = true
		v := n
		r.Used = &v
		r.Notes = appendUnique(r.Notes, "Per User usage from Active Directory (msTS attributes) as of "+
			c.perUser.EvaluatedAt.UTC().Format("2006-01-02 15:04 UTC")+"; "+dirSources(c.perUser))
		var uncounted []string
		if u := unreadable[id]; u > 0 {
			uncounted = append(uncounted, fmt.Sprintf("%d %s of this version with an unreadable msTSExpireDate (possibly active)", u, nouns(u, "user")))
		}
		if unknownVersion > 0 {
			uncounted = append(uncounted, fmt.Sprintf("%d active or unreadable %s of a msTSLicenseVersion mapped to no CAL release (%s; possibly this version)",
				unknownVersion, nouns(unknownVersion, "CAL"), strings.Join(unknownRaw, ", ")))
		}
		if len(uncounted) > 0 {
			r.UsageLowerBound = true
			r.Notes = appendUnique(r.Notes, fmt.Sprintf("in use is at least %d, a lower bound: not counted are %s", n, strings.Join(uncounted, " and ")))
		}
	}
}

// dirPositionSource is the usage source the position shows for directory figures.
const dirPositionSource = "directory (AD msTS attributes)"

func dirSources(s *directory.Summary) string {
	var out []string
	for _, d := range s.Domains {
		out = append(out, fmt.Sprintf("%s via %s at %s", d.Domain, d.Collector, d.CollectedAt.UTC().Format("2006-01-02 15:04 UTC")))
	}
	return strings.Join(out, ", ")
}

// dirGuard reports the rule not applicable (no directory) or an error (a domain not
// read) and returns false; true when the figures are known.
func (c *evalCtx) dirGuard(s *sink) bool {
	sub := Subject{Kind: SubjectFleet, Name: "directory"}
	switch {
	case c.perUser == nil || len(c.perUser.Domains) == 0:
		s.add(Result{Outcome: NotApplicable, Subject: sub, Message: "no directory configured (directory.domains)"})
		return false
	case !c.perUser.Known():
		var bad []string
		var ev []EvidenceField
		for _, d := range c.perUser.Domains {
			if d.Status != directory.StatusCollected {
				bad = append(bad, fmt.Sprintf("%s (%s: %s)", d.Domain, d.Class, d.Message))
				ev = append(ev, EvidenceField{Field: "directory:" + d.Domain, Value: d.Status + " " + d.Class})
			}
		}
		s.add(Result{Outcome: Error, Subject: sub, Evidence: ev, Source: "directory",
			Message: "per-user figures unknown: not read from " + strings.Join(bad, "; ")})
		return false
	}
	return true
}

// RDS-PU-001
type pu001 struct{}

func (pu001) Info() RuleInfo {
	return RuleInfo{ID: "RDS-PU-001", Severity: SevHigh, Scope: ScopeFleet,
		Title:       "Per User CALs in use (Active Directory) exceed the entitlement",
		Rationale:   "Per User CALs are not enforced and can be over-allocated, which breaches the agreement (domain.md §5). The directory's msTS attributes say which users hold an unexpired CAL of each version; each user counts once per version, whatever the license servers and attribute slots holding it.",
		Remediation: "Buy the shortfall at the true-up, or reclaim CALs from disabled and inactive users (RDS-PU-004).",
		References:  []string{refTrack, "domain.md §8"},
		Evidence:    []string{fieldDirVersion, fieldDirExpire, fieldLedger}}
}

func (pu001) checkFleet(c *evalCtx, s *sink) {
	if !c.dirGuard(s) {
		return
	}
	entitled := map[int64]int64{}
	for _, e := range c.ent {
		if e.CALType == facts.CALPerUser {
			entitled[e.VersionID] += e.Quantity
		}
	}
	for _, v := range c.perUser.Versions {
		sub := Subject{Kind: SubjectFleet, Name: "per_user/" + v.Version}
		ev := []EvidenceField{{Field: fieldDirVersion, Value: "raw " + strings.Join(v.RawVersions, ", ")},
			{Field: fieldDirExpire, Value: fmt.Sprintf("%d active, %d expired, %d unreadable at %s", v.Active, v.Expired, v.Unknown, c.now.Format("2006-01-02 15:04 UTC"))}}
		r := Result{Subject: sub, Evidence: ev, Source: "directory, ledger", Observed: fmt.Sprintf("%d users with an active CAL", v.Active)}
		switch {
		case v.VersionID == 0:
			r.Outcome = Error
			r.Message = fmt.Sprintf("%d users hold CALs whose msTSLicenseVersion (%s) maps to no confirmed CAL version: not compared with the ledger",
				v.Active+v.Expired+v.Unknown, strings.Join(v.RawVersions, ", "))
		case !c.ledger:
			r.Outcome, r.Message = NotApplicable, "no entitlement ledger given"
		default:
			n := entitled[v.VersionID]
			r.Expected = fmt.Sprintf("at most %d entitled", n)
			ev = append(ev, EvidenceField{Field: fieldLedger, Value: fmt.Sprintf("%d per_user %s entitled", n, v.Version)})
			r.Evidence = ev
			switch {
			case int64(v.Active) > n:
				r.Outcome = Fail
				r.Message = fmt.Sprintf("Per User %s: %d users hold an active CAL in Active Directory, %d entitled: shortfall %d", v.Version, v.Active, n, int64(v.Active)-n)
			case int64(v.Active+v.Unknown) > n:
				// Holders whose msTSExpireDate could not be read may be active: within the
				// entitlement is not shown (evidence missing), never a pass.
				r.Outcome = Error
				r.Message = fmt.Sprintf("Per User %s: %d users hold an active CAL, %d entitled, but %d more hold one whose expiry could not be read: up to %d could be in use, so the entitlement may be exceeded by up to %d",
					v.Version, v.Active, n, v.Unknown, v.Active+v.Unknown, int64(v.Active+v.Unknown)-n)
			default:
				r.Outcome = Pass
				r.Message = fmt.Sprintf("Per User %s: %d users hold an active CAL, within %d entitled", v.Version, v.Active, n)
			}
		}
		s.add(r)
	}
}

// RDS-PU-002
type pu002 struct{}

func (pu002) Info() RuleInfo {
	return RuleInfo{ID: "RDS-PU-002", Severity: SevMedium, Scope: ScopeFleet,
		Title:       "Per User CALs issued by a license server not in the inventory",
		Rationale:   "msTSManagingLS names the license server that issued a user's CAL by its license-server ID, not its host name (domain.md §8). CALs from a server outside the audit are outside every other figure. An ID maps to an inventory host when it is the host's name or is mapped in the rule parameter; otherwise the server stays unknown.",
		Remediation: "Add the license server to the inventory, or map its license-server ID (RD Licensing Manager → server properties) in the rule set: rules.RDS-PU-002.params.license_server_ids: \"ID=HOST;ID=HOST\".",
		References:  []string{"domain.md §8"},
		Evidence:    []string{fieldDirLS, fieldInventory},
		Params:      []Param{{Name: "license_server_ids", Default: "", Description: "license-server IDs mapped to host names: \"00252-...-AT477=LIC-01;...\""}}}
}

func (pu002) checkFleet(c *evalCtx, s *sink) {
	if !c.dirGuard(s) {
		return
	}
	mapped := map[string]string{}
	for _, pair := range strings.Split(c.strParam("RDS-PU-002", "license_server_ids"), ";") {
		if id, host, ok := strings.Cut(pair, "="); ok && strings.TrimSpace(id) != "" {
			mapped[strings.ToLower(strings.TrimSpace(id))] = strings.TrimSpace(host)
		}
	}
	users := map[string]int{}
	for _, r := range c.perUser.Rows {
		users[r.LicenseServer] += r.Users
	}
	ids := make([]string, 0, len(users))
	for id := range users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		sub := Subject{Kind: SubjectFleet, Name: "license_server/" + id}
		if id == "" {
			sub.Name = "license_server/(none)"
		}
		r := Result{Subject: sub, Source: "directory, inventory",
			Evidence: []EvidenceField{{Field: fieldDirLS, Value: fmt.Sprintf("%q issued CALs to %d users (summed over versions and states)", id, users[id])}}}
		host, isMapped := mapped[strings.ToLower(id)]
		if !isMapped {
			host = id
		}
		ls, inInv := c.ls[facts.ServerKey(host)]
		if !inInv {
			ls, inInv = c.ls[facts.ShortName(host)]
		}
		switch {
		case inInv:
			r.Outcome, r.Message = Pass, fmt.Sprintf("CALs issued by %s, license server %s in the inventory", id, ls.Host.Name)
		case isMapped:
			r.Outcome, r.Message = Fail, fmt.Sprintf("CALs issued by %s, mapped to %s, which is not a license server in the inventory", id, host)
		case id == "":
			r.Outcome, r.Message = Error, "CALs with no msTSManagingLS: issuing license server unknown"
		default:
			r.Outcome = Error
			r.Message = fmt.Sprintf("CALs issued by license-server ID %s: not mapped to a host (rule parameter license_server_ids), so whether it is in the inventory is unknown", id)
		}
		s.add(r)
	}
}

// RDS-PU-003
type pu003 struct{}

func (pu003) Info() RuleInfo {
	return RuleInfo{ID: "RDS-PU-003", Severity: SevMedium, Scope: ScopeFleet,
		Title:       "Directory Per User count disagrees with the license servers' latest Per User reports",
		Rationale:   "A license server that cannot write the msTS attributes (not in the \"Terminal Server License Servers\" group; event 4105) silently under-reports in Active Directory and over-reports in its local database, which is case-sensitive for user names (domain.md §8). Either figure may then be wrong at the true-up.",
		Remediation: "Check event 4105 on the license servers and their membership of the \"Terminal Server License Servers\" group in each domain; generate a fresh Per User report.",
		References:  []string{refTrack, "domain.md §6, §8"},
		Evidence:    []string{fieldDirVersion, fieldDirExpire, fieldReport},
		Params:      []Param{{Name: "tolerance_percent", Default: 10, Description: "allowed difference, in percent of the larger count"}}}
}

func (pu003) checkFleet(c *evalCtx, s *sink) {
	if !c.dirGuard(s) {
		return
	}
	reported := map[int64]int64{}
	var sources []string
	for _, ls := range c.lsList {
		if ls.Holdings == nil {
			continue
		}
		u := perUserUsage(ls.Holdings)
		if u == nil {
			continue
		}
		sources = append(sources, ls.Host.Name)
		for k, v := range u {
			reported[k.version] += v
		}
	}
	if len(sources) == 0 {
		s.add(Result{Outcome: NotApplicable, Subject: Subject{Kind: SubjectFleet, Name: "per_user reports"},
			Message: "no existing Per User report on any audited license server to compare with"})
		return
	}
	tol := int64(c.intParam("RDS-PU-003", "tolerance_percent"))
	dir := c.perUser.ActiveByVersionID()
	ids := map[int64]bool{}
	for id := range dir {
		ids[id] = true
	}
	for id := range reported {
		ids[id] = true
	}
	var order []int64
	for id := range ids {
		order = append(order, id)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, id := range order {
		d, rp := dir[id], reported[id]
		name := versionName(id)
		diff, big := d-rp, max(d, rp)
		if diff < 0 {
			diff = -diff
		}
		r := Result{Subject: Subject{Kind: SubjectFleet, Name: "per_user/" + name}, Source: "directory, license server reports",
			Observed: fmt.Sprintf("directory %d, reports %d", d, rp), Expected: fmt.Sprintf("within %d%%", tol),
			Evidence: []EvidenceField{{Field: fieldDirExpire, Value: fmt.Sprintf("%d active users", d)},
				{Field: fieldReport, Value: fmt.Sprintf("%d issued, latest report of %s", rp, strings.Join(sources, ", "))}}}
		unknown := 0
		for _, v := range c.perUser.Versions {
			if v.VersionID == 0 {
				unknown += v.Active
			}
		}
		switch {
		case diff*100 > tol*big && d < rp && unknown > 0:
			// Directory CALs of unknown version may be this version's: no verdict.
			r.Outcome = Error
			r.Message = fmt.Sprintf("Per User %s: Active Directory shows %d users with a CAL of this version, the latest license-server reports %d; %d more users hold CALs of unknown version (msTSLicenseVersion not mapped), so whether they differ is unknown",
				name, d, rp, unknown)
		case diff*100 > tol*big:
			r.Outcome = Fail
			r.Message = fmt.Sprintf("Per User %s: Active Directory shows %d users with an active CAL, the latest license-server reports %d (difference %d, beyond %d%%)", name, d, rp, diff, tol)
		default:
			r.Outcome = Pass
			r.Message = fmt.Sprintf("Per User %s: directory %d and reports %d agree within %d%%", name, d, rp, tol)
		}
		s.add(r)
	}
}

// RDS-PU-004
type pu004 struct{}

func (pu004) Info() RuleInfo {
	return RuleInfo{ID: "RDS-PU-004", Severity: SevInfo, Scope: ScopeFleet,
		Title:       "Per User CALs held by disabled or inactive accounts (reclaim candidates)",
		Rationale:   "A Per User CAL assigned to a disabled account, or to one that has not logged on for the configured period (directory.reclaim_after; lastLogonTimestamp replicates lazily), is probably not needed. rdsaudit never clears the attributes: reclaiming is an administrator's decision.",
		Remediation: "Review the listed users (Per User CALs sheet); clear their msTS licence attributes or let the CALs expire.",
		References:  []string{"domain.md §8"},
		Evidence:    []string{fieldDirLogon, fieldDirExpire}}
}

func (pu004) checkFleet(c *evalCtx, s *sink) {
	if !c.dirGuard(s) {
		return
	}
	by := map[string][]directory.Candidate{}
	for _, d := range c.perUser.Domains {
		by[d.Domain] = nil
	}
	for _, cand := range c.perUser.Reclaim {
		by[cand.Domain] = append(by[cand.Domain], cand)
	}
	for _, d := range c.perUser.Domains {
		cs := by[d.Domain]
		r := Result{Subject: Subject{Kind: SubjectFleet, Name: "directory/" + d.Domain}, Source: "directory"}
		if len(cs) == 0 {
			r.Outcome, r.Message = Pass, "no active Per User CAL held by a disabled or inactive account"
			s.add(r)
			continue
		}
		disabled := 0
		for _, cand := range cs {
			if cand.Disabled {
				disabled++
			}
			if len(r.Evidence) < 10 {
				r.Evidence = append(r.Evidence, EvidenceField{Field: fieldDirLogon, Value: cand.User + ": " + cand.Reason})
			}
		}
		r.Outcome = Fail
		r.Observed = fmt.Sprintf("%d candidates", len(cs))
		r.Message = fmt.Sprintf("%d users hold an active Per User CAL and are disabled (%d) or inactive (%d): reclaim candidates, listed on the Per User CALs sheet",
			len(cs), disabled, len(cs)-disabled)
		s.add(r)
	}
}

// nouns is word, plural with an s unless n is 1.
func nouns(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
