package report

import (
	"strings"
	"testing"
)

// windowsReserved reports whether Windows treats a file name as a device: the part
// before the first dot is CON, PRN, AUX, NUL, COM0-9 or LPT0-9 in any case ("NUL.txt"
// and "nul.tar.gz" are NUL too).
func windowsReserved(name string) bool {
	stem, _, _ := strings.Cut(strings.ToLower(name), ".")
	switch stem {
	case "con", "prn", "aux", "nul":
		return true
	}
	return len(stem) == 4 && (strings.HasPrefix(stem, "com") || strings.HasPrefix(stem, "lpt")) && stem[3] >= '0' && stem[3] <= '9'
}

// TestEvidenceFileNamesWindowsReserved: hosts whose names are Windows device names (or
// start with one before a dot) get evidence files Windows can create, distinct from
// each other and from every other host's, the same whatever the order (issue 14,
// defect 7).
func TestEvidenceFileNamesWindowsReserved(t *testing.T) {
	hosts := []string{"CON", "con", "NUL", "nul.corp.example", "PRN", "AUX", "aux.corp.example", "COM1", "com9.corp.example",
		"LPT1", "lpt0", "Com1", "console", "com10", "lpt", "nullable.corp.example", "con_", "rdsh01"}
	got := EvidenceFileNames(hosts)
	seen := map[string]string{}
	for _, h := range hosts {
		n := got[h]
		if windowsReserved(n) {
			t.Errorf("%q → %q: a Windows device name", h, n)
		}
		if other, dup := seen[n]; dup {
			t.Errorf("%q and %q → %q", h, other, n)
		}
		seen[n] = h
	}
	for _, plain := range []string{"console", "com10", "lpt", "nullable.corp.example", "rdsh01"} {
		if got[plain] != plain+".json" {
			t.Errorf("%q → %q, want it unchanged", plain, got[plain])
		}
	}
	reversed := make([]string, len(hosts))
	for i, h := range hosts {
		reversed[len(hosts)-1-i] = h
	}
	again := EvidenceFileNames(reversed)
	for h, n := range got {
		if again[h] != n {
			t.Errorf("%q → %q, then %q in another order", h, n, again[h])
		}
	}
}

// TestEvidenceFileNamesCraftedCollision: a host named like another host's escaped name
// with its hash still gets a file of its own.
func TestEvidenceFileNamesCraftedCollision(t *testing.T) {
	first := EvidenceFileNames([]string{"a b"})["a b"] // a_b-<hash>.json
	crafted := strings.TrimSuffix(first, ".json")
	got := EvidenceFileNames([]string{"a b", crafted})
	if got["a b"] == got[crafted] {
		t.Errorf("%q and %q both → %q", "a b", crafted, got[crafted])
	}
}
