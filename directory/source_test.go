package directory

import (
	"strings"
	"testing"
)

// TestCheckDomainName: a domain's name becomes a file name in every run's evidence, so
// only DNS names pass, and none a Windows device name would open as a device.
func TestCheckDomainName(t *testing.T) {
	for _, ok := range []string{"corp.example.com", "CORP.Example.COM", "corp", "a-b.c1", "console.example.com", "com10.example", strings.Repeat("a", 63) + ".com"} {
		if err := CheckDomainName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                                "empty",
		"bad/name":                        "not a DNS name",
		"..":                              "not a DNS name",
		".corp.example.com":               "not a DNS name",
		"corp..example.com":               "not a DNS name",
		"corp.example.com.":               "not a DNS name",
		"-corp.example.com":               "not a DNS name",
		"corp_x.example.com":              "not a DNS name",
		"corp example.com":                "not a DNS name",
		strings.Repeat("a", 64) + ".com":  "not a DNS name",
		strings.Repeat("a.", 127) + "com": "more than the 253",
		"con.example.com":                 "Windows device name",
		"NUL":                             "Windows device name",
		"Com1.corp.example.com":           "Windows device name",
		"lpt9.example":                    "Windows device name",
	} {
		err := CheckDomainName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
}
