// Package samples embeds the demo fleet, so that `rdsaudit demo` and `rdsaudit simulate`
// work from any directory: the configuration, the inventory, the rule set, the
// entitlement ledger and the fleet's evidence files (see README.md beside this file).
package samples

import (
	"bytes"
	"context"
	"embed"
	"encoding/csv"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/evidence"
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
			return os.MkdirAll(dst, 0o750)
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o640)
	})
	if err != nil {
		return "", fmt.Errorf("extract samples to %s: %w", dir, err)
	}
	return filepath.Join(dir, "config.yaml"), nil
}

// Evidence loads the sample fleet in inventory order as the rule and report tests use
// it: each inventory host's evidence from dir/fleet (collect.LoadFleet), and a
// no_evidence failure stamped now for an inventory host without files. Evidence files
// of hosts missing from the inventory are an error.
func Evidence(dir string, now time.Time) ([]*evidence.Evidence, error) {
	fl, err := offline.LoadFleet(filepath.Join(dir, "fleet"))
	if err != nil {
		return nil, fmt.Errorf("load fleet: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "inventory.csv"))
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "inventory.csv"), err)
	}
	var evs []*evidence.Evidence
	for _, row := range rows[1:] {
		name := row[0]
		ev := fl[strings.ToLower(name)]
		if ev == nil {
			ref := evidence.HostRef{Name: name, Group: row[4], Roles: strings.Split(row[3], ";")}
			ev = evidence.NewFailure(ref, "snapshot", now, evidence.StatusFailed, evidence.FailNoEvidence, "no evidence file for "+name)
		}
		delete(fl, strings.ToLower(name))
		evs = append(evs, ev)
	}
	if len(fl) > 0 {
		var extra []string
		for name := range fl {
			extra = append(extra, name)
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("evidence for %s, which the inventory does not list", strings.Join(extra, ", "))
	}
	return evs, nil
}

// Directory is the sample fleet's Per User summary at now, from its offline directory
// evidence (fleet/directory/), as the rule and report tests use it.
func Directory(dir string, now time.Time) *directory.Summary {
	docs := directory.Offline{Dir: filepath.Join(dir, "fleet"), Now: func() time.Time { return now },
		Domains: []directory.OfflineDomain{{Name: "corp.example.com", BaseDN: "DC=corp,DC=example,DC=com"}}}.Documents(context.Background())
	return directory.Summarise(docs, now, 90*24*time.Hour)
}
