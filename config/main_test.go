package config

import (
	"os"
	"testing"
)

// TestMain gives the test password file the mode a real one should have: git records
// no permissions beyond the executable bit, so a fresh clone has it 0644, which the
// warnings (rightly) flag.
func TestMain(m *testing.M) {
	if err := os.Chmod("testdata/secrets/lab.pw", 0o600); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
