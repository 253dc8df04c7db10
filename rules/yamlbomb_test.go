package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// yamlBomb is a document of a 64 KiB string under levels of ten aliases each, the
// last level under key.
func yamlBomb(key string, levels int) string {
	var b strings.Builder
	b.WriteString("x-big: &l0 '" + strings.Repeat("A", 64<<10) + "'\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "x-l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	fmt.Fprintf(&b, "%s: [%s]\n", key, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", levels-1), 10), ", "))
	return b.String()
}

// The rule set and the YAML ledger refuse a document whose aliases expand far beyond
// its size, quickly, naming the file, the line and the limit.
func TestYAMLAliasBomb(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func() error
	}{
		{"rule set", func() error { _, err := ParseRuleSet("r.yaml", []byte(yamlBomb("rules", 5))); return err }},
		{"ledger", func() error {
			_, err := ParseEntitlementsYAML("r.yaml", []byte(yamlBomb("entitlements", 5)))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.parse()
			if err == nil || !strings.HasPrefix(err.Error(), "r.yaml:1: YAML aliases expand the document beyond") {
				t.Fatalf("error %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
