package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	s := "text"
	n := uint64(4)
	for _, c := range []struct {
		name    string
		in, out RegValue
	}{
		{"binary", RegValue{Name: "b", Type: RegBinary, Hex: "0102ff", Length: 3},
			RegValue{Name: "b", Type: RegBinary, Length: 3, SHA256: sum([]byte{1, 2, 0xff}), Redacted: true}},
		{"length from the data", RegValue{Name: "b", Type: RegBinary, Hex: "0102", Length: 9, SHA256: "stale"},
			RegValue{Name: "b", Type: RegBinary, Length: 2, SHA256: sum([]byte{1, 2}), Redacted: true}},
		{"empty binary", RegValue{Name: "e", Type: RegNone, SHA256: sum(nil)},
			RegValue{Name: "e", Type: RegNone, SHA256: sum(nil), Redacted: true}},
		{"already redacted", RegValue{Name: "r", Type: RegBinary, Length: 8, SHA256: "abc", Redacted: true},
			RegValue{Name: "r", Type: RegBinary, Length: 8, SHA256: "abc", Redacted: true}},
		{"not hex", RegValue{Name: "x", Type: RegBinary, Hex: "zz", Length: 1},
			RegValue{Name: "x", Type: RegBinary, Length: 1, Redacted: true}},
		{"string", RegValue{Name: "s", Type: RegSZ, String: &s, Length: 10}, RegValue{Name: "s", Type: RegSZ, String: &s, Length: 10}},
		{"number", RegValue{Name: "n", Type: RegDWord, Number: &n, Length: 4}, RegValue{Name: "n", Type: RegDWord, Number: &n, Length: 4}},
	} {
		if got := c.in.Redact(); !reflect.DeepEqual(got, c.out) {
			t.Errorf("%s: Redact() = %+v, want %+v", c.name, got, c.out)
		}
	}
}

func TestSelectKeys(t *testing.T) {
	host := map[string]RegKey{
		`hklm\a`:    {Path: `HKLM\A`, Exists: true, Subkeys: []string{"S1", "S2"}, Values: []RegValue{{Name: "Keep", Type: RegBinary, Hex: "01", Length: 1}, {Name: "drop", Type: RegBinary, Hex: "02", Length: 1}}},
		`hklm\a\s1`: {Path: `HKLM\A\S1`, Exists: true, Values: []RegValue{{Name: "keep", Type: RegBinary, Hex: "03", Length: 1}}},
		`hklm\b`:    {Path: `HKLM\B`, Exists: true, Owner: "o", Values: []RegValue{{Name: "v", Type: RegBinary, Hex: "04", Length: 1}}},
		`hklm\n`:    {Path: `HKLM\N`, Exists: false, Subkeys: []string{"ghost"}},
	}
	var reads []string
	read := func(path string) RegKey {
		reads = append(reads, path)
		if k, ok := host[strings.ToLower(path)]; ok {
			return k
		}
		return RegKey{}
	}
	got := SelectKeys([]KeyRequest{
		{Path: `HKLM\a`, Redact: true, Subkeys: true, OnlyValues: []string{"KEEP"}},
		{Path: `HKLM\B`},
		{Path: `HKLM\N`, Subkeys: true},
		{Path: `HKLM\Missing`},
	}, read)
	want := []RegKey{
		{Path: `HKLM\a`, Exists: true, Subkeys: []string{"S1", "S2"}, Values: []RegValue{host[`hklm\a`].Values[0].Redact()}},
		{Path: `HKLM\a\S1`, Exists: true, Values: []RegValue{host[`hklm\a\s1`].Values[0].Redact()}},
		{Path: `HKLM\a\S2`},
		{Path: `HKLM\B`, Exists: true, Owner: "o", Values: host[`hklm\b`].Values},
		{Path: `HKLM\N`, Subkeys: []string{"ghost"}},
		{Path: `HKLM\Missing`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SelectKeys:\n got %+v\nwant %+v", got, want)
	}
	if host[`hklm\a`].Values[0].Hex != "01" {
		t.Error("SelectKeys modified the host's keys")
	}
	if want := []string{`HKLM\a`, `HKLM\a\S1`, `HKLM\a\S2`, `HKLM\B`, `HKLM\N`, `HKLM\Missing`}; !reflect.DeepEqual(reads, want) {
		t.Errorf("read %q, want %q", reads, want)
	}
}
