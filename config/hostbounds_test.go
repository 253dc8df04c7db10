package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostNameBounds: host names are DNS names as Windows resolves them: at most 253
// characters, labels of at most 63; a 5 MB name in an inventory CSV is rejected quickly
// with an error naming the file and line and not echoing the name (issue 14, defect 7).
func TestHostNameBounds(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	label63 := strings.Repeat("a", 63)
	ok253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	if len(ok253) != 253 {
		t.Fatal(len(ok253))
	}
	huge := strings.Repeat("x", 5<<20)
	csv := "name,roles\n" + label63 + ",client\n" + ok253 + ",client\n" +
		strings.Repeat("c", 64) + ",client\n" + ok253 + "c,client\n" + huge + ",client\n" +
		"h1,client\n"
	writeFile(t, filepath.Join(dir, "hosts.csv"), csv)
	writeFile(t, filepath.Join(dir, "c.yaml"), "inventory: {file: hosts.csv}\n"+
		"credentials: [{name: a, username: u, password_env: PW}]\ndefault_credential: a\n")
	start := time.Now()
	cfg, err := Load(filepath.Join(dir, "c.yaml"), nil)
	if err == nil {
		_, err = cfg.Hosts()
	}
	t.Logf("5 MB name rejected in %s", time.Since(start))
	if err == nil {
		t.Fatal("over-long names accepted")
	}
	msg := err.Error()
	if len(msg) > 2000 {
		t.Errorf("error is %d bytes: it echoes the name", len(msg))
	}
	file := filepath.Join(dir, "hosts.csv")
	for _, want := range []string{
		file + ":4: name: host name label of 64 characters",
		file + ":5: name: host name of 254 characters",
		file + ":6: name: host name of 5242880 characters",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%.3000s", want, msg)
		}
	}
	for _, line := range []string{":2:", ":3:", ":7:"} {
		if strings.Contains(msg, file+line) {
			t.Errorf("a valid name rejected at line %s:\n%.3000s", line, msg)
		}
	}
	// The address is bounded the same way.
	writeFile(t, filepath.Join(dir, "c2.yaml"), "inventory: {hosts: [{name: h, address: "+strings.Repeat("d", 300)+", roles: [client]}]}\n"+
		"credentials: [{name: a, username: u, password_env: PW}]\ndefault_credential: a\n")
	cfg, err = Load(filepath.Join(dir, "c2.yaml"), nil)
	if err == nil {
		_, err = cfg.Hosts()
	}
	if err == nil || !strings.Contains(err.Error(), "address of 300 characters") {
		t.Errorf("long address: %v", err)
	}
}
