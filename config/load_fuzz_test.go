package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds a configuration file to Load. It never panics, every error matches
// ErrInvalid, and a configuration Load accepts has its inventory resolved (seeds:
// testdata/fuzz/FuzzLoad, the sample and reference configurations and the invalid
// examples).
func FuzzLoad(f *testing.F) {
	f.Add([]byte("inventory: {hosts: [{name: H, roles: [client]}]}\ncredentials: [{name: a, username: u, password_env: PW}]\ndefault_credential: a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		clearEnv(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if _, err := cfg.Hosts(); err != nil {
			t.Fatalf("Load accepted a configuration whose inventory fails: %v", err)
		}
	})
}

// FuzzInventoryCSV feeds an inventory CSV through Load. It never panics; an accepted
// inventory has names within the DNS bounds and unique case-insensitively (seeds: testdata/fuzz/FuzzInventoryCSV).
func FuzzInventoryCSV(f *testing.F) {
	f.Add([]byte("name,address,roles\nRDSH01,10.0.0.1,session_host\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		clearEnv(t)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "hosts.csv"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte("inventory: {file: hosts.csv}\ncredentials: [{name: a, username: u, password_env: PW}]\ndefault_credential: a\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			return
		}
		hosts, err := cfg.Hosts()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, h := range hosts {
			if len(h.Name) > MaxHostName || !hostNameRE.MatchString(h.Name) || seen[strings.ToLower(h.Name)] {
				t.Fatalf("accepted host name %q", h.Name)
			}
			seen[strings.ToLower(h.Name)] = true
		}
	})
}
