// Package bundle reads evidence bundles: the signed evidence a site or shard collector
// writes with `rdsaudit collect` (internal/audit.CollectBundle), for one central run to
// evaluate the union of (collection.source: bundles).
//
// A bundle is a directory published atomically like a run directory: evidence/<host>.json
// for every targeted host (evidence or a classified failure), bundle.json (Bundle: the
// collector's identity and the bundle's coverage) and manifest.json with the SHA-256 of
// every file, signed with the site's ed25519 key in manifest.sig. `rdsaudit verify`
// checks a bundle as it checks a run directory.
package bundle

import (
	"time"

	"github.com/rdsaudit/rdsaudit/report"
)

// Schema is the version tag of bundle.json.
const Schema = "rdsaudit.bundle/v1"

// File is the bundle's description in a bundle directory.
const File = "bundle.json"

// CollectorPrefix prefixes the source the central report records for a host whose
// evidence came from a bundle: "bundle:<site>/<bundle id>".
const CollectorPrefix = "bundle:"

// Bundle is bundle.json: who collected the bundle, when, which hosts, and with what
// result. It is listed in the signed manifest, so once the manifest is verified every
// field is the site collector's word.
type Bundle struct {
	Schema string `json:"schema"`
	ID     string `json:"id"`
	Site   string `json:"site"`
	// Shard is K/N when collected with --shard; Selection the --hosts/--group given.
	Shard            string         `json:"shard,omitempty"`
	Selection        string         `json:"selection,omitempty"`
	ToolVersion      string         `json:"tool_version"`
	ConfigHash       string         `json:"config_hash"`
	StartedAt        time.Time      `json:"started_at"`
	FinishedAt       time.Time      `json:"finished_at"`
	CollectionWindow *report.Window `json:"collection_window,omitempty"`
	// SigningKey is the fingerprint (KeyFingerprint) of the key manifest.sig is made with.
	SigningKey string `json:"signing_key"`
	// Coverage lists every targeted host's status; Evidence each host's evidence file.
	Coverage report.Coverage      `json:"coverage"`
	Evidence []report.EvidenceRef `json:"evidence"`
}

// Slot names the collector a bundle comes from: a newer bundle of the same slot
// supersedes an older one.
func (b *Bundle) Slot() string { return b.Site + "|" + b.Shard + "|" + b.Selection }
