package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// output_lock_wait: default 0 (refuse at once), a duration from the file or the
// environment, 0-24h.
func TestOutputLockWait(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("testdata/minimal.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OutputLockWait != 0 {
		t.Errorf("default output_lock_wait = %s, want 0", cfg.OutputLockWait)
	}
	dir := t.TempDir()
	base := "inventory:\n  hosts:\n    - {name: H1, roles: [session_host]}\n" +
		"credentials:\n  - {name: a, username: u, password_env: RDSAUDIT_TEST_PASSWORD}\ndefault_credential: a\n"
	for _, tt := range []struct{ value, want string }{
		{"10m", ""},
		{"-1s", "output_lock_wait: must be between 0s and 24h0m0s, got -1s"},
		{"25h", "output_lock_wait: must be between 0s and 24h0m0s, got 25h0m0s"},
		{"soon", "output_lock_wait"},
	} {
		path := filepath.Join(dir, "c.yaml")
		writeFile(t, path, base+"output_lock_wait: "+tt.value+"\n")
		cfg, err := Load(path, nil)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.value, err)
		case tt.want == "" && cfg.OutputLockWait != 10*time.Minute:
			t.Errorf("%s: got %s", tt.value, cfg.OutputLockWait)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want %q", tt.value, err, tt.want)
		}
	}
	t.Setenv(EnvVar("output_lock_wait"), "90s")
	if cfg, err := Load("testdata/minimal.yaml", nil); err != nil || cfg.OutputLockWait != 90*time.Second {
		t.Errorf("from the environment: %v %v", cfg, err)
	}
}
