package directory

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Decode refuses a document whose users cannot be told apart: users are counted by
// distinguishedName, so an empty or repeated one would merge holders and lower the
// counts (review of issue 15).
func TestDecodeRefusesMergedUsers(t *testing.T) {
	doc := func(dns ...string) []byte {
		e := &Evidence{Schema: Schema, Domain: "corp.example.com", Collector: "test", CollectedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
			Coverage: Coverage{Status: StatusCollected}}
		for _, dn := range dns {
			e.Users = append(e.Users, User{SAMAccountName: "u", DN: dn, Slots: []Slot{{Slot: 1, LicenseVersion: "393218"}}})
		}
		var b bytes.Buffer
		if err := Encode(&b, e); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if _, err := Decode(doc("CN=a,DC=corp", "CN=b,DC=corp")); err != nil {
		t.Fatalf("distinct DNs: %v", err)
	}
	for name, data := range map[string][]byte{
		"empty DN":    doc("CN=a,DC=corp", ""),
		"repeated DN": doc("CN=a,DC=corp", "cn=A,DC=corp"),
	} {
		if _, err := Decode(data); err == nil || !strings.Contains(err.Error(), "distinguishedName") {
			t.Errorf("%s: %v, want a distinguishedName error", name, err)
		}
	}
}
