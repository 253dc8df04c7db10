package report

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// BundleCoverage is what a run evaluated from evidence bundles (collection.source:
// bundles) says about them in coverage.bundles: every bundle read, with the identity of
// the collector that signed it, and the anomalies of their union. It is nil for a run
// that collected its hosts itself.
type BundleCoverage struct {
	// Bundles are the bundles whose evidence the run used, oldest first.
	Bundles []BundleInfo `json:"bundles"`
	// Superseded are older bundles of the same collector (site, shard and host
	// selection) found beside a newer one: not read.
	Superseded []BundleInfo `json:"superseded"`
	// Conflicts are hosts present in two or more bundles of different collectors: the
	// newest evidence was used, the others ignored.
	Conflicts []BundleConflict `json:"conflicts"`
	// NotInInventory are hosts a bundle holds but the central inventory does not: listed,
	// not evaluated.
	NotInInventory []BundleHost `json:"not_in_inventory"`
	// MaxAge is bundles.max_age (0: no check); a bundle older than it is Stale.
	MaxAge string `json:"max_age,omitempty"`
}

// BundleInfo is one evidence bundle: who collected it, when, and where its signed
// manifest is in this run directory.
type BundleInfo struct {
	ID          string    `json:"id"`
	Site        string    `json:"site"`
	Shard       string    `json:"shard,omitempty"`     // K/N, when collected with --shard
	Selection   string    `json:"selection,omitempty"` // --hosts/--group, when given
	ToolVersion string    `json:"tool_version"`
	ConfigHash  string    `json:"config_hash"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at"`
	// SigningKey is the fingerprint (SHA256:base64) of the key the manifest is signed
	// with, as bundles.trusted_keys lists it for the site.
	SigningKey string `json:"signing_key"`
	// ManifestSHA256 is the SHA-256 of the bundle's manifest.json (signed by the site);
	// the run directory holds a copy under Files (listed in the run's own manifest).
	ManifestSHA256 string   `json:"manifest_sha256"`
	Files          []string `json:"files,omitempty"`
	Hosts          int      `json:"hosts"` // hosts the bundle holds
	Used           int      `json:"used"`  // of them, whose evidence this run used
	Stale          bool     `json:"stale,omitempty"`
	Age            string   `json:"age,omitempty"` // at evaluation, when Stale
}

// BundleConflict is a host found in more than one bundle.
type BundleConflict struct {
	Host    string   `json:"host"`
	Used    string   `json:"used"`    // the newest bundle's ID
	Ignored []string `json:"ignored"` // the other bundles' IDs, newest first
}

// BundleHost is a host of a bundle.
type BundleHost struct {
	Host   string `json:"host"`
	Bundle string `json:"bundle"`
}

// AddFile writes a file of the caller's (e.g. a copy of an evidence bundle's signed
// manifest) at rel, a slash-separated path inside the run directory outside evidence/,
// and lists it in the manifest. It is safe for concurrent use.
func (s *Stage) AddFile(rel string, data []byte) (ManifestFile, error) {
	if !fs.ValidPath(rel) || rel == "." || rel == ManifestName || rel == SignatureFile || rel == EvidenceDir ||
		filepath.ToSlash(filepath.Dir(rel)) == EvidenceDir {
		return ManifestFile{}, fmt.Errorf("publish: %q is not a path for an added file", rel)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return ManifestFile{}, fmt.Errorf("publish %s: the run is already published", rel)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, filepath.Dir(filepath.FromSlash(rel))), 0o750); err != nil {
		return ManifestFile{}, fmt.Errorf("publish %s: %w", rel, err)
	}
	return s.write(rel, data)
}
