// Package testtool finds the real programs tests start (an MIT KDC, OpenLDAP slapd):
// on PATH or in the sbin directories a user's PATH often lacks. Only test helpers
// import it (kdctest, slapdtest).
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Find returns the path of the program name: on PATH, else in /usr/sbin,
// /usr/local/sbin or /sbin.
func Find(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// Require skips the test when one of tools is missing, naming what and how to install
// it, unless env CI is set: .ci/run installs them, so there a missing tool fails.
func Require(t testing.TB, what, install string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := Find(tool); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("%s not installed (%v): %s", what, err, install)
			}
			t.Fatalf("%s not installed (%v)", what, err)
		}
	}
}

// RequireFile is Require for a file that is not a program (a plugin, a library).
func RequireFile(t testing.TB, what, install, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (%v): %s", what, err, install)
		}
		t.Fatalf("%s not installed (%v)", what, err)
	}
}
