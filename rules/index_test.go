package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
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
