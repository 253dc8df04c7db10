package winrmtest_test

import (
	"go/build"
	"testing"
)

// TestNoKDCLauncher: the demo command links this package into the shipped binary, so
// the simulator must not start programs or depend on the test-only KDC (kdctest).
func TestNoKDCLauncher(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		switch imp {
		case "os/exec", "testing", "github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest/kdctest":
			t.Errorf("winrmtest imports %s: only its tests may", imp)
		}
	}
}
