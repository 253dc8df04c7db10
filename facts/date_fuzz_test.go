package facts

import (
	"testing"
	"time"
)

// FuzzParseDate feeds host-printed dates (CIM datetime, ISO 8601, /Date(ms)/, locale
// dates) with a locale to ParseDate. It never panics; a parsed date is UTC; a CIM
// datetime parses to what parseCIM says, and renders back to itself when its offset is
// zero (seeds: testdata/fuzz/FuzzParseDate).
func FuzzParseDate(f *testing.F) {
	f.Add("20380101000000.000000-000", "")
	f.Fuzz(func(t *testing.T, s, locale string) {
		got, err := ParseDate(s, locale)
		if err == nil && got == nil {
			t.Fatal("nil date without an error")
		}
		if got != nil && got.Location() != time.UTC {
			t.Fatalf("%q: location %v, want UTC", s, got.Location())
		}
		if c, ok := parseCIM(s); ok {
			if err != nil || !got.Equal(c) {
				t.Fatalf("%q: CIM %v, ParseDate %v %v", s, c, got, err)
			}
			if s[21:] == "+000" || s[21:] == "-000" {
				if back := c.Format("20060102150405.000000") + s[21:]; back != s {
					t.Fatalf("%q renders back as %q", s, back)
				}
			}
		}
	})
}
