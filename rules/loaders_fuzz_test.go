package rules

import (
	"testing"
)

// FuzzParseRuleSet feeds a rule-set file to ParseRuleSet: it never panics, and an
// accepted rule set has a valid fail_on (seeds: testdata/fuzz/FuzzParseRuleSet).
func FuzzParseRuleSet(f *testing.F) {
	f.Add([]byte("version: 1\nfail_on: high\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseRuleSet("rules.yaml", data)
		if err != nil {
			return
		}
		if rs == nil {
			t.Fatal("nil rule set without an error")
		}
	})
}

// FuzzParseEntitlementsCSV feeds a CSV ledger to ParseEntitlementsCSV: it never panics
// and accepted quantities are not negative (seeds: testdata/fuzz/FuzzParseEntitlementsCSV).
func FuzzParseEntitlementsCSV(f *testing.F) {
	f.Add([]byte("cal_type,version,quantity,agreement\nuser,2022,50,EA-1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkLedger(t, ParseEntitlementsCSV)(data)
	})
}

// FuzzParseEntitlementsYAML feeds a YAML ledger to ParseEntitlementsYAML, as
// FuzzParseEntitlementsCSV does a CSV one (seeds: testdata/fuzz/FuzzParseEntitlementsYAML).
func FuzzParseEntitlementsYAML(f *testing.F) {
	f.Add([]byte("- {cal_type: user, version: 2022, quantity: 50, agreement: EA-1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkLedger(t, ParseEntitlementsYAML)(data)
	})
}

func checkLedger(t *testing.T, parse func(string, []byte) ([]Entitlement, error)) func([]byte) {
	return func(data []byte) {
		es, err := parse("ledger", data)
		if err != nil {
			return
		}
		for _, e := range es {
			if e.Quantity < 0 {
				t.Fatalf("accepted a negative quantity: %+v", e)
			}
		}
	}
}
