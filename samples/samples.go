// Package samples embeds the demo fleet, so that `rdsaudit demo` and `rdsaudit simulate`
// work from any directory: the configuration, the inventory, the rule set, the
// entitlement ledger and the fleet's evidence files (see README.md beside this file).
package samples

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed config.yaml inventory.csv rules.yaml entitlements.csv fleet
var files embed.FS

// FS returns the embedded sample files.
func FS() fs.FS { return files }

// Extract writes the sample files into dir (created if missing) and returns the path of
// the sample configuration inside it.
func Extract(dir string) (string, error) {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("extract samples to %s: %w", dir, err)
	}
	return filepath.Join(dir, "config.yaml"), nil
}
