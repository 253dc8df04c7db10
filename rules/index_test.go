package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// Tests of what makes evaluation fast: each compares with the plain definition it
// replaces, which goldens and history depend on.

// oddNames are host names whose case folding is not plain ASCII.
func oddNames() []string {
	return []string{"", "a", "A", "ab", "aB", "Ab", "rdsh-01", "RDSH-01", "rdsh_01", "RDSH-1", "Ärdsh", "ärdsh", "ǅemo", "ǆemo", "Ǆemo",
		"a\xffb", "A\xffB", "\u212Aelvin", "kelvin", "KELVIN", "z", "Z", "zz", "Zz", "İstanbul", "istanbul",
		strings.Repeat("LongHostName", 20), strings.Repeat("LongHostName", 20) + "Ä"}
}

// refFindingID is FindingID's definition: goldens and history hold the IDs it gives.
func refFindingID(ruleID string, s Subject, key string) string {
	h := sha256.Sum256([]byte(ruleID + "\x00" + string(s.Kind) + "\x00" + strings.ToLower(s.Name) + "\x00" + key))
	return "F-" + strings.ToUpper(hex.EncodeToString(h[:5]))
}

func TestFindingIDDefinition(t *testing.T) {
	if got := FindingID("RDS-MODE-001", Subject{Kind: SubjectHost, Name: "RDSH-A07", Group: "farm-a"}, ""); got != "F-074DF5F7AC" {
		t.Errorf("RDS-MODE-001 on RDSH-A07: %s, testdata/sample_fleet.json holds F-074DF5F7AC", got)
	}
	for _, rule := range []string{"", "RDS-MODE-001", "RDS-WAIVER-001", strings.Repeat("R", 130)} {
		for _, kind := range []SubjectKind{SubjectHost, SubjectGroup, SubjectFleet} {
			for _, name := range oddNames() {
				for _, key := range []string{"", "k", "Key\x00x"} {
					s := Subject{Kind: kind, Name: name, Group: "g"}
					if got, want := FindingID(rule, s, key), refFindingID(rule, s, key); got != want {
						t.Errorf("FindingID(%q, %v, %q) = %s, want %s", rule, s, key, got, want)
					}
				}
			}
		}
	}
}

func TestEvaluateFindingIDs(t *testing.T) {
	ev := evaluateSamples(t)
	for _, r := range ev.Results {
		if want := refFindingID(r.RuleID, r.Subject, r.Key); r.ID != want {
			t.Errorf("%s on %s: ID %s, want %s", r.RuleID, r.Subject, r.ID, want)
		}
	}
}

func TestCompareFold(t *testing.T) {
	names := oddNames()
	for _, a := range names {
		if got := string(appendLower([]byte("x"), a)); got != "x"+strings.ToLower(a) {
			t.Errorf("appendLower(%q) = %q, want %q", a, got[1:], strings.ToLower(a))
		}
		for _, b := range names {
			if got, want := compareFold(a, b), strings.Compare(strings.ToLower(a), strings.ToLower(b)); got != want {
				t.Errorf("compareFold(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// refPrevious is MemHistory.Previous's definition.
func refPrevious(m MemHistory, host string, since time.Time) []HostSnapshot {
	var out []HostSnapshot
	for _, s := range m[strings.ToLower(host)] {
		if !s.At.Before(since) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}

func TestMemHistoryPreviousOrder(t *testing.T) {
	day := func(d int) time.Time { return now().AddDate(0, 0, d) }
	orders := map[string][]int{
		"newest first":       {-1, -30, -60, -90},
		"oldest first":       {-90, -60, -30, -1},
		"ties":               {-30, -60, -30, -90, -60},
		"ties, oldest first": {-90, -60, -60, -30},
		"mixed":              {-60, -1, -90, -30},
		"one":                {-30},
	}
	for name, days := range orders {
		m := MemHistory{}
		for i, d := range days {
			m.Add("RDSH-01", snap(fmt.Sprintf("r%d", i), day(d), int64(i)))
		}
		for _, since := range []time.Time{{}, day(-61), day(-30), day(0)} {
			got, want := m.Previous("rdsh-01", since), refPrevious(m, "RDSH-01", since)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s since %s: %v, want %v", name, since, got, want)
			}
		}
	}
	if got := (MemHistory{}).Previous("RDSH-01", time.Time{}); got != nil {
		t.Errorf("no history: %v, want nil", got)
	}
}

// TestGroupEvidenceOrder: the evidence of a group rule is ordered by field, and for
// members of the same name by value; the index by name (byName) gives what sorting gives.
func TestGroupEvidenceOrder(t *testing.T) {
	var fs []*facts.Facts
	fs = append(fs, facts.Interpret(lsEv("LS01")), facts.Interpret(lsEv("LS02")))
	for i, n := range oddNames()[1:] { // hosts need a name
		h := rdshEv(n)
		h.Host.Group = "mixed"
		switch i % 3 {
		case 1:
			setVal(h, evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
		case 2:
			setVal(h, evidence.KeyPolicy, sz(evidence.ValLicenseServers, "LS02"))
		}
		fs = append(fs, facts.Interpret(h))
		d1, d2 := rdshEv(n), rdshEv(n) // the same name twice, in a group of their own
		d1.Host.Group, d2.Host.Group = "dup", "dup"
		setVal(d1, evidence.KeyPolicy, dw(evidence.ValLicensingMode, 2))
		fs = append(fs, facts.Interpret(d1), facts.Interpret(d2))
	}
	c := newContext(Input{Now: now(), Hosts: fs}, DefaultRuleSet())
	for _, g := range c.groups {
		if (g.byName == nil) != (g.Name == "dup") {
			t.Fatalf("group %s: byName %v", g.Name, g.byName)
		}
		for _, rule := range []groupRule{ls003{}, mode004{}} {
			fast, sorted := &sink{info: rule.Info()}, &sink{info: rule.Info()}
			rule.checkGroup(c, g, fast)
			plain := *g
			plain.byName = nil
			rule.checkGroup(c, &plain, sorted)
			if !reflect.DeepEqual(fast.out, sorted.out) {
				t.Errorf("%s on %s: with the index\n%v\nsorted\n%v", rule.Info().ID, g.Name, fast.out, sorted.out)
			}
			ev := fast.out[0].Evidence
			if !sort.SliceIsSorted(ev, func(i, j int) bool { return ev[i].Field < ev[j].Field }) || len(ev) < 2 {
				t.Errorf("%s on %s: evidence not ordered by field: %v", rule.Info().ID, g.Name, ev)
			}
		}
	}
}

// TestResultOrder: results come in catalogue order, then by subject kind, name (case
// insensitive) and key, also when the rules give them otherwise (groups are checked in
// byte order of their names).
func TestResultOrder(t *testing.T) {
	f := baseFleet()
	for i, n := range []string{"rdsh-b1", "RDSH-A1", "Rdsh-a2", "rdsh-B2"} {
		h := rdshEv(n)
		h.Host.Group = []string{"farm-B", "farm-a"}[i%2]
		f.hosts = append(f.hosts, h)
	}
	ev := f.evaluate()
	order := ruleOrder()
	for i := 1; i < len(ev.Results); i++ {
		a, b := &ev.Results[i-1], &ev.Results[i]
		if order[b.RuleID] < order[a.RuleID] || (a.RuleID == b.RuleID && subjectLess(b, a)) {
			t.Errorf("result %d (%s on %s) after %s on %s", i, b.RuleID, b.Subject, a.RuleID, a.Subject)
		}
	}
	var groups []string
	for _, r := range ev.Results {
		if r.RuleID == "RDS-LS-003" {
			groups = append(groups, r.Subject.Name)
		}
	}
	if want := []string{"farm", "farm-a", "farm-B"}; !reflect.DeepEqual(groups, want) {
		t.Errorf("RDS-LS-003 subjects %v, want %v", groups, want)
	}
}

// TestGather: the results stay where place put them when every rule gave as many as
// counted, and are gathered in rule order when one gave more or fewer.
func TestGather(t *testing.T) {
	res := func(names ...string) []Result {
		var rs []Result
		for _, n := range names {
			rs = append(rs, Result{Subject: Subject{Kind: SubjectHost, Name: n}})
		}
		return rs
	}
	fill := func(s *sink, names ...string) {
		for _, r := range res(names...) {
			s.add(r)
		}
	}
	for _, tc := range []struct {
		name    string
		give    [][]string
		inPlace bool
	}{
		{"as counted", [][]string{{"a", "b"}, {}, {"c"}}, true},
		{"one more", [][]string{{"a", "b", "x"}, {}, {"c"}}, false},
		{"one fewer", [][]string{{"a"}, {}, {"c"}}, false},
		{"none where one was counted", [][]string{{"a", "b"}, {}, {}}, false},
	} {
		sinks := make([]sink, 3)
		counts := []int{2, 0, 1}
		all := place(sinks, counts, 1)
		var want []string
		for i, names := range tc.give {
			fill(&sinks[i], names...)
			want = append(want, names...)
		}
		got := gather(all, sinks, counts)
		var names []string
		for _, r := range got {
			names = append(names, r.Subject.Name)
		}
		if !reflect.DeepEqual(names, want) && (len(names) > 0 || len(want) > 0) {
			t.Errorf("%s: %v, want %v", tc.name, names, want)
		}
		if inPlace := len(got) > 0 && &got[0] == &all[0]; inPlace != tc.inPlace {
			t.Errorf("%s: in place %v, want %v", tc.name, inPlace, tc.inPlace)
		}
	}
}

// TestOneResultPerSubject: each rule gives one result per subject, as Evaluate counts
// them; a rule giving more or fewer still works, through gather's copy.
func TestOneResultPerSubject(t *testing.T) {
	seen := map[string]int{}
	for _, r := range evaluateSamples(t).Results {
		seen[r.RuleID+" "+r.Subject.String()]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s: %d results", k, n)
		}
	}
}
