package config

import (
	"fmt"
	"path"
	"strings"
)

// Selection narrows the inventory to some hosts: by host name and by group, each a list
// of names or shell globs (path.Match syntax: *, ?, [a-z]), compared case-insensitively.
// A host is selected when it matches any name pattern and any group pattern; an empty
// list does not constrain. The zero Selection selects every host.
type Selection struct {
	Hosts  []string // --hosts
	Groups []string // --group
}

// Empty says the selection selects the whole inventory.
func (s Selection) Empty() bool { return len(s.Hosts) == 0 && len(s.Groups) == 0 }

// Select returns the hosts the selection picks, in inventory order. A pattern that is
// malformed, or that matches no host of the inventory, is an error naming it: a typo in
// --hosts must not silently shrink the audit.
func (s Selection) Select(hosts []Host) ([]Host, error) {
	if s.Empty() {
		return hosts, nil
	}
	hostPats, err := compilePatterns("--hosts", s.Hosts)
	if err != nil {
		return nil, err
	}
	groupPats, err := compilePatterns("--group", s.Groups)
	if err != nil {
		return nil, err
	}
	hostHit := make([]bool, len(hostPats))
	groupHit := make([]bool, len(groupPats))
	var out []Host
	for _, h := range hosts {
		byName := matchAny(hostPats, hostHit, h.Name)
		byGroup := matchAny(groupPats, groupHit, h.Group)
		if byName && byGroup {
			out = append(out, h)
		}
	}
	if err := unmatched("--hosts", "host name", s.Hosts, hostHit); err != nil {
		return nil, err
	}
	if err := unmatched("--group", "group", s.Groups, groupHit); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--hosts %s --group %s: no host of the inventory matches both",
			strings.Join(s.Hosts, ","), strings.Join(s.Groups, ","))
	}
	return out, nil
}

// compilePatterns lower-cases the patterns and checks their syntax.
func compilePatterns(flag string, pats []string) ([]string, error) {
	out := make([]string, 0, len(pats))
	for _, p := range pats {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			return nil, fmt.Errorf("%s: empty pattern", flag)
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%s %q: malformed pattern (globs use *, ? and [a-z]): %v", flag, p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// matchAny reports whether v matches any pattern (true when there are none) and marks
// every pattern that matched.
func matchAny(pats []string, hit []bool, v string) bool {
	if len(pats) == 0 {
		return true
	}
	v = strings.ToLower(v)
	ok := false
	for i, p := range pats {
		if m, _ := path.Match(p, v); m {
			hit[i], ok = true, true
		}
	}
	return ok
}

func unmatched(flag, what string, pats []string, hit []bool) error {
	var miss []string
	for i, h := range hit {
		if !h {
			miss = append(miss, pats[i])
		}
	}
	if len(miss) == 0 {
		return nil
	}
	return fmt.Errorf("%s: no %s of the inventory matches %s (see the inventory file or `rdsaudit validate`)",
		flag, what, strings.Join(miss, ", "))
}

// ParseList splits comma-separated flag values ("a,b" and repeated flags alike).
func ParseList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
