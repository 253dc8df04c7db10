package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Change is one difference since the previous run that is not a finding: a key pack
// added, removed or recounted, a license server's issued CALs, a line of the CAL
// position (issue 11: drift is what changed).
type Change struct {
	Kind    string `json:"kind"`    // key_pack, issued_cals or position
	Subject string `json:"subject"` // "LS01 key pack 4", "LS01", "Per User CAL, Windows Server 2022"
	Before  string `json:"before"`  // "" when added
	After   string `json:"after"`   // "" when removed
}

// Changes kinds.
const (
	ChangeKeyPack    = "key_pack"
	ChangeIssuedCALs = "issued_cals"
	ChangePosition   = "position"
	// ChangePerUser: the users holding Per User CALs of one version in Active
	// Directory, against the previous run's counts as history recorded them.
	ChangePerUser = "per_user"
)

// PerUserCount is one run's count of the users holding Per User CALs of one version in
// Active Directory (history keeps them per run: history.PerUserCount).
type PerUserCount struct {
	Version                  string
	Active, Expired, Unknown int
	// Complete: every configured domain was read; otherwise the counts are lower bounds.
	Complete bool
}

// diffPerUser compares the previous run's Per User counts with r's, version by
// version. Nothing is compared when this run's figures are unknown (a domain not read:
// they would all look removed) or when neither run has counts; a version in one run
// only is added or removed. A run whose counts were incomplete says so.
func (r *Report) diffPerUser(prev []PerUserCount) []Change {
	pu := r.PerUser
	if pu == nil || pu.Summary == nil || !pu.Known() {
		return nil
	}
	text := func(c PerUserCount) string {
		s := fmt.Sprintf("%d active, %d expired", c.Active, c.Expired)
		if c.Unknown > 0 {
			s += fmt.Sprintf(", %d unreadable expiry", c.Unknown)
		}
		s += " users"
		if !c.Complete {
			s += " (not every domain read: lower bounds)"
		}
		return s
	}
	before := map[string]string{}
	var order []string
	for _, c := range prev {
		before[c.Version] = text(c)
		order = append(order, c.Version)
	}
	after := map[string]string{}
	for _, v := range pu.Versions {
		after[v.Version] = text(PerUserCount{Version: v.Version, Active: v.Active, Expired: v.Expired, Unknown: v.Unknown, Complete: true})
		if _, ok := before[v.Version]; !ok {
			order = append(order, v.Version)
		}
	}
	var out []Change
	for _, ver := range order {
		if before[ver] != after[ver] {
			out = append(out, Change{Kind: ChangePerUser, Subject: "Per User CALs in Active Directory, " + perUserVersionLabel(ver), Before: before[ver], After: after[ver]})
		}
	}
	return out
}

// perUserVersionLabel names a directory version label for a reader: "Windows Server
// 2012", or the unknown-version label as it is.
func perUserVersionLabel(v string) string {
	if strings.HasPrefix(v, "unknown") {
		return v
	}
	return "Windows Server " + v
}

// diffChanges compares the key packs, issued CALs and CAL position of prev (the
// previous run's report) with r's. A license server that was not collected in either
// run is left out: its holdings are unknown, not changed.
func (r *Report) diffChanges(prev *Report) []Change {
	var out []Change
	collected := func(rep *Report) map[string]*LicenseServer {
		m := map[string]*LicenseServer{}
		for i := range rep.LicenseServers {
			if ls := &rep.LicenseServers[i]; ls.Status == "collected" {
				m[strings.ToLower(ls.Name)] = ls
			}
		}
		return m
	}
	before, after := collected(prev), collected(r)
	var servers []string
	for k := range after {
		if before[k] != nil {
			servers = append(servers, k)
		}
	}
	sort.Strings(servers)
	for _, k := range servers {
		b, a := before[k], after[k]
		packs := func(ls *LicenseServer) map[int64]string {
			m := map[int64]string{}
			for _, kp := range ls.KeyPacks {
				m[kp.ID] = fmt.Sprintf("%s, %s: total %s, issued %s, available %s", CALLabel(kp.CALType, kp.Version),
					kp.PackType, kp.Total, kp.Issued, kp.Available)
			}
			return m
		}
		pb, pa := packs(b), packs(a)
		var ids []int64
		for id := range pb {
			ids = append(ids, id)
		}
		for id := range pa {
			if _, ok := pb[id]; !ok {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			if pb[id] != pa[id] {
				out = append(out, Change{Kind: ChangeKeyPack, Subject: fmt.Sprintf("%s key pack %d", a.Name, id), Before: pb[id], After: pa[id]})
			}
		}
		if b.IssuedTotal != a.IssuedTotal {
			out = append(out, Change{Kind: ChangeIssuedCALs, Subject: a.Name,
				Before: fmt.Sprintf("%d issued Per Device CALs", b.IssuedTotal), After: fmt.Sprintf("%d issued Per Device CALs", a.IssuedTotal)})
		}
	}
	pos := func(rep *Report) (map[string]string, []string) {
		m := map[string]string{}
		var order []string
		for _, p := range rep.Position {
			label := CALLabel(p.CALType, p.Version)
			m[label] = fmt.Sprintf("entitled %s, installed %s, in use %s, shortfall %s", i64s(p.Entitled), p.Installed, i64s(p.Usage), shortfallText(p.Shortfall))
			order = append(order, label)
		}
		return m, order
	}
	mb, ob := pos(prev)
	ma, oa := pos(r)
	seen := map[string]bool{}
	for _, label := range append(oa, ob...) {
		if seen[label] {
			continue
		}
		seen[label] = true
		if mb[label] != ma[label] {
			out = append(out, Change{Kind: ChangePosition, Subject: label, Before: mb[label], After: ma[label]})
		}
	}
	return out
}

func i64s(p *int64) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprint(*p)
}

func shortfallText(p *int64) string {
	switch {
	case p == nil:
		return "unknown"
	case *p < 0:
		return fmt.Sprintf("0 (surplus %d)", -*p)
	}
	return fmt.Sprint(*p)
}

// maxPrevious bounds the previous report.json ReadPrevious reads (it is held in memory
// while decoded); a larger one gives no changes rather than a memory spike.
const maxPrevious = 256 << 20

// ReadPrevious reads what the changes need of a previous run's report.json (run,
// license servers, CAL position), skipping the rest.
func ReadPrevious(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read previous report: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxPrevious {
		return nil, fmt.Errorf("read previous report %s: %d bytes, more than the %d read for drift", path, st.Size(), maxPrevious)
	}
	var part struct {
		Schema         string          `json:"schema"`
		Run            Run             `json:"run"`
		LicenseServers []LicenseServer `json:"license_servers"`
		Position       []PositionRow   `json:"position"`
	}
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&part); err != nil {
		return nil, fmt.Errorf("read previous report %s: %w", path, err)
	}
	if part.Schema != Schema {
		return nil, fmt.Errorf("read previous report %s: schema %q, want %q", path, part.Schema, Schema)
	}
	return &Report{Schema: part.Schema, Run: part.Run, LicenseServers: part.LicenseServers, Position: part.Position}, nil
}
