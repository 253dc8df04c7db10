package directory

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Version mapping of msTSLicenseVersion (domain.md §8, COMM): a decimal major<<16|minor.
// Only the two values seen with a known CAL release are mapped; everything else is
// "unknown version" with its raw value kept — never guessed.
var knownVersions = map[string]struct {
	Label string
	ID    int64 // Win32_TSLicenseKeyPack.ProductVersionID of the same CALs
}{
	"393216": {"2008", 2}, // 6.0: Windows Server 2008 CALs
	"393218": {"2012", 4}, // 6.2: Windows Server 2012 CALs
}

// UnknownVersion labels a msTSLicenseVersion value with no confirmed CAL release.
const UnknownVersion = "unknown version"

// CAL states at the evaluation time.
const (
	StateActive  = "active"
	StateExpired = "expired"
	// StateUnknownExpiry: msTSExpireDate present but unreadable.
	StateUnknownExpiry = "unknown expiry"
)

// VersionOf maps a raw msTSLicenseVersion to a CAL release label and ProductVersionID
// (0 and UnknownVersion when the mapping is not confirmed).
func VersionOf(raw string) (string, int64) {
	if v, ok := knownVersions[strings.TrimSpace(raw)]; ok {
		return v.Label, v.ID
	}
	return UnknownVersion, 0
}

// Summary is the interpretation of every domain's directory evidence at one time.
type Summary struct {
	EvaluatedAt  time.Time        `json:"evaluated_at"`
	ReclaimAfter time.Duration    `json:"reclaim_after_ns"`
	Domains      []DomainCoverage `json:"domains"`
	// Complete: every configured domain was read; otherwise every figure below is a
	// lower bound and per-version totals are unknown (Known false).
	Complete bool `json:"complete"`
	// Rows: distinct users per domain × version × license server × state.
	Rows []Row `json:"rows"`
	// Versions: distinct users per version across license servers and slots, each
	// user counted once per version (active when any of its CALs of that version is).
	Versions []VersionTotal `json:"versions"`
	Reclaim  []Candidate    `json:"reclaim_candidates"`
	// IgnoredSlots: slots with a version or license server but no msTSExpireDate, not
	// counted as CALs (domain.md: real dumps show such leftovers).
	IgnoredSlots int `json:"ignored_slots"`
}

// DomainCoverage is one domain's coverage.
type DomainCoverage struct {
	Domain      string    `json:"domain"`
	Status      string    `json:"status"`
	Class       string    `json:"class,omitempty"`
	Message     string    `json:"message,omitempty"`
	Server      string    `json:"server,omitempty"`
	Collector   string    `json:"collector"`
	CollectedAt time.Time `json:"collected_at"`
	Holders     int       `json:"holders"` // user objects read with any msTS attribute
	Evidence    string    `json:"evidence,omitempty"`
}

// Row counts distinct users for one domain × version × license server × state.
type Row struct {
	Domain        string `json:"domain"`
	Version       string `json:"version"`     // release label or UnknownVersion
	RawVersion    string `json:"raw_version"` // msTSLicenseVersion as read
	VersionID     int64  `json:"version_id,omitempty"`
	LicenseServer string `json:"license_server"` // msTSManagingLS as read ("" when absent)
	State         string `json:"state"`
	Users         int    `json:"users"`
}

// VersionTotal is the per-user count of one CAL version over all domains read.
type VersionTotal struct {
	Version     string   `json:"version"`
	VersionID   int64    `json:"version_id,omitempty"`
	RawVersions []string `json:"raw_versions"`
	Active      int      `json:"active"`
	Expired     int      `json:"expired"`
	Unknown     int      `json:"unknown_expiry"`
}

// Candidate is a CAL holder whose CAL could be reclaimed.
type Candidate struct {
	Domain    string     `json:"domain"`
	User      string     `json:"user"` // sAMAccountName, else UPN, else DN (pseudonyms when pseudonymised)
	DN        string     `json:"dn"`
	Versions  []string   `json:"versions"`
	Reason    string     `json:"reason"`
	Disabled  bool       `json:"disabled"`
	LastLogon *time.Time `json:"last_logon,omitempty"`
}

// Known reports whether per-user figures are known: every configured domain was read.
func (s *Summary) Known() bool { return s != nil && s.Complete && len(s.Domains) > 0 }

// ActiveByVersionID returns the active per-user count per ProductVersionID of the
// mapped versions (unknown versions are not in it).
func (s *Summary) ActiveByVersionID() map[int64]int64 {
	out := map[int64]int64{}
	for _, v := range s.Versions {
		if v.VersionID != 0 {
			out[v.VersionID] += int64(v.Active)
		}
	}
	return out
}

// ParseExpireDate reads a Generalized-Time msTSExpireDate ("20260315103000.0Z").
func ParseExpireDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"20060102150405.0Z", "20060102150405Z", "20060102150405.0Z0700", "20060102150405Z0700", "20060102150405.000Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	if len(s) > 15 && s[14] == '.' { // other fractions
		if t, err := time.Parse("20060102150405", s[:14]); err == nil && strings.HasSuffix(s, "Z") {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// ParseFileTime reads a lastLogonTimestamp (100 ns since 1601, UTC); false for 0,
// absent or unreadable values.
func ParseFileTime(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	const epochDiff = 116444736000000000
	return time.Unix(0, (n-epochDiff)*100).UTC(), true
}

// Disabled reports userAccountControl's ACCOUNTDISABLE bit (0x2).
func Disabled(uac string) bool {
	n, err := strconv.ParseInt(strings.TrimSpace(uac), 10, 64)
	return err == nil && n&2 != 0
}

// Summarise interprets the documents at time at. Users are identified by domain and DN
// (case-insensitively), so a user is counted once per version whatever the slots and
// license servers holding it.
func Summarise(docs []*Evidence, at time.Time, reclaimAfter time.Duration) *Summary {
	s := &Summary{EvaluatedAt: at.UTC(), ReclaimAfter: reclaimAfter, Complete: true, Rows: []Row{}, Versions: []VersionTotal{}, Reclaim: []Candidate{}}
	type rowKey struct{ domain, raw, ls, state string }
	type userVer struct{ domain, dn, label string }
	rowUsers := map[rowKey]map[string]bool{}
	verState := map[userVer]string{} // best state per user × version
	verRaw := map[string]map[string]bool{}
	verID := map[string]int64{}
	for _, d := range docs {
		dc := DomainCoverage{Domain: d.Domain, Status: d.Coverage.Status, Class: string(d.Coverage.Class), Message: d.Coverage.Message,
			Server: d.Server, Collector: d.Collector, CollectedAt: d.CollectedAt, Holders: len(d.Users)}
		s.Domains = append(s.Domains, dc)
		if !d.Collected() {
			s.Complete = false
			continue
		}
		for _, u := range d.Users {
			dn := strings.ToLower(u.DN)
			var active []string
			for _, sl := range u.Slots {
				if strings.TrimSpace(sl.ExpireDate) == "" {
					s.IgnoredSlots++
					continue
				}
				state := StateUnknownExpiry
				if exp, ok := ParseExpireDate(sl.ExpireDate); ok {
					state = StateExpired
					if exp.After(at) {
						state = StateActive
					}
				}
				raw := strings.TrimSpace(sl.LicenseVersion)
				label, id := VersionOf(raw)
				k := rowKey{d.Domain, raw, sl.ManagingLS, state}
				if rowUsers[k] == nil {
					rowUsers[k] = map[string]bool{}
				}
				rowUsers[k][dn] = true
				if label == UnknownVersion {
					label = UnknownVersion + " (" + displayRaw(raw) + ")"
				}
				uv := userVer{d.Domain, dn, label}
				if better(state, verState[uv]) {
					verState[uv] = state
				}
				if verRaw[label] == nil {
					verRaw[label] = map[string]bool{}
				}
				verRaw[label][raw] = true
				verID[label] = id
				if state == StateActive {
					active = appendOnce(active, label)
				}
			}
			if len(active) == 0 {
				continue
			}
			c := Candidate{Domain: d.Domain, User: firstNonEmpty(u.SAMAccountName, u.UserPrincipalName, u.DN), DN: u.DN,
				Versions: active, Disabled: Disabled(u.UserAccountControl)}
			last, ok := ParseFileTime(u.LastLogonTimestamp)
			if ok {
				c.LastLogon = &last
			}
			switch {
			case c.Disabled:
				c.Reason = "account disabled"
			case !ok:
				c.Reason = "no lastLogonTimestamp (never logged on, or not replicated)"
			case at.Sub(last) > reclaimAfter:
				c.Reason = "no logon for " + strconv.Itoa(int(at.Sub(last).Hours()/24)) + " days (lastLogonTimestamp)"
			default:
				continue
			}
			s.Reclaim = append(s.Reclaim, c)
		}
	}
	for k, users := range rowUsers {
		label, id := VersionOf(k.raw)
		s.Rows = append(s.Rows, Row{Domain: k.domain, Version: label, RawVersion: k.raw, VersionID: id, LicenseServer: k.ls, State: k.state, Users: len(users)})
	}
	sort.Slice(s.Rows, func(i, j int) bool {
		a, b := s.Rows[i], s.Rows[j]
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.RawVersion != b.RawVersion {
			return a.RawVersion < b.RawVersion
		}
		if a.LicenseServer != b.LicenseServer {
			return a.LicenseServer < b.LicenseServer
		}
		return a.State < b.State
	})
	totals := map[string]*VersionTotal{}
	for uv, st := range verState {
		t := totals[uv.label]
		if t == nil {
			t = &VersionTotal{Version: uv.label, VersionID: verID[uv.label]}
			for r := range verRaw[uv.label] {
				t.RawVersions = append(t.RawVersions, r)
			}
			sort.Strings(t.RawVersions)
			totals[uv.label] = t
		}
		switch st {
		case StateActive:
			t.Active++
		case StateExpired:
			t.Expired++
		default:
			t.Unknown++
		}
	}
	for _, t := range totals {
		s.Versions = append(s.Versions, *t)
	}
	sort.Slice(s.Versions, func(i, j int) bool {
		a, b := s.Versions[i], s.Versions[j]
		if (a.VersionID == 0) != (b.VersionID == 0) {
			return a.VersionID != 0
		}
		if a.VersionID != b.VersionID {
			return a.VersionID < b.VersionID
		}
		return a.Version < b.Version
	})
	sort.Slice(s.Reclaim, func(i, j int) bool {
		if s.Reclaim[i].Domain != s.Reclaim[j].Domain {
			return s.Reclaim[i].Domain < s.Reclaim[j].Domain
		}
		return strings.ToLower(s.Reclaim[i].DN) < strings.ToLower(s.Reclaim[j].DN)
	})
	return s
}

// better orders states for one user × version: active beats unknown beats expired.
func better(st, prev string) bool {
	rank := map[string]int{"": 0, StateExpired: 1, StateUnknownExpiry: 2, StateActive: 3}
	return rank[st] > rank[prev]
}

func displayRaw(raw string) string {
	if raw == "" {
		return "no msTSLicenseVersion"
	}
	return raw
}

func appendOnce(ss []string, s string) []string {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Pseudonymise replaces user names and DNs in a document not yet pseudonymised (an
// offline file) by keyed hashes, in place.
func Pseudonymise(e *Evidence, key []byte) {
	if len(key) == 0 || e.Pseudonymised {
		return
	}
	for i := range e.Users {
		u := &e.Users[i]
		u.SAMAccountName = Pseudonym(key, u.SAMAccountName)
		u.UserPrincipalName = Pseudonym(key, u.UserPrincipalName)
		u.DN = Pseudonym(key, u.DN)
	}
	e.Pseudonymised = true
}
