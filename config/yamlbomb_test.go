package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A configuration whose aliases expand far beyond its size (here ~66 KB standing for
// 64 MiB of host tags) is refused, quickly, with the file, the line and the limit.
func TestLoadAliasBomb(t *testing.T) {
	clearEnv(t)
	var b strings.Builder
	b.WriteString("x-big: &l0 '" + strings.Repeat("A", 64<<10) + "'\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "x-l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	b.WriteString("inventory:\n  hosts:\n    - {name: RDSH-A01, roles: [session_host], tags: *l3}\n")
	path := filepath.Join(t.TempDir(), "bomb.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Load(path, nil)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bomb.yaml:1: YAML aliases expand the document beyond") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
