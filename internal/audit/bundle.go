package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/bundle"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/report"
)

// BundleOptions are the inputs of one site or shard collection (`rdsaudit collect`).
type BundleOptions struct {
	// Hosts are the hosts this collector targets (its shard and selection of the
	// inventory), in inventory order.
	Hosts       []evidence.HostRef
	Collector   collect.Collector
	Concurrency int
	// Dir receives the bundle directory <Dir>/<bundle id>/ (created if missing). Several
	// collectors may write into one Dir at once: each stages under a name of its own.
	Dir string
	// Site names the collector (site.name); Shard ("K/N") and Selection describe which
	// part of the inventory Hosts are. Bundles of one site, shard and selection
	// supersede each other.
	Site, Shard, Selection string
	// Signer signs the manifest: required (the central run refuses unsigned bundles).
	Signer      ed25519.PrivateKey
	ToolVersion string
	ConfigHash  string
	Now         func() time.Time
	Log         zerolog.Logger
	Progress    Progress
}

// BundleResult is what one collection produced.
type BundleResult struct {
	ID     string
	Dir    string
	Bundle *bundle.Bundle
}

// CollectBundle collects every host of o.Hosts into an evidence bundle and publishes it
// atomically (report.Stage: evidence staged as each host completes, then bundle.json,
// the manifest and its signature, then one rename). Nothing is evaluated.
func CollectBundle(ctx context.Context, o BundleOptions) (*BundleResult, error) {
	if o.Collector == nil {
		return nil, errors.New("collect: a collector is required")
	}
	if len(o.Signer) != ed25519.PrivateKeySize {
		return nil, errors.New("collect: a signing key is required: bundles are signed so that the central run can trust them (set signing.key_file; rdsaudit keygen makes one)")
	}
	if o.Site == "" {
		return nil, errors.New("collect: site.name is required: it names the collector in the bundle and selects its key on the central run")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	started := now().UTC()
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	names := make([]string, len(o.Hosts))
	for i, h := range o.Hosts {
		names[i] = h.Name
	}
	var stage *report.Stage
	var id string
	for i := 1; ; i++ {
		id = bundleID(o.Site, o.Shard, started, i)
		var err error
		stage, err = report.NewStage(o.Dir, id, names)
		if errors.Is(err, report.ErrRunExists) && i < 100 {
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	defer stage.Abort()
	log := o.Log.With().Str("bundle", id).Logger()
	hosts, _, err := collectFleet(ctx, Options{Hosts: o.Hosts, Collector: o.Collector, Concurrency: o.Concurrency,
		Now: o.Now, Log: o.Log, Progress: o.Progress}, stage, log)
	if err != nil {
		return nil, err
	}
	finished := now().UTC()
	rep := report.Build(report.BuildInput{
		Run: report.RunInfo{ID: id, StartedAt: started, FinishedAt: finished, ToolVersion: o.ToolVersion,
			ConfigHash: o.ConfigHash, Collector: bundle.CollectorPrefix + o.Site + "/" + o.Collector.Name(), EvaluatedAt: finished},
		Hosts: hosts,
	})
	b := &bundle.Bundle{
		Schema: bundle.Schema, ID: id, Site: o.Site, Shard: o.Shard, Selection: o.Selection,
		ToolVersion: o.ToolVersion, ConfigHash: o.ConfigHash, StartedAt: started, FinishedAt: finished,
		CollectionWindow: rep.Run.CollectionWindow,
		SigningKey:       report.KeyFingerprint(o.Signer.Public().(ed25519.PublicKey)),
		Coverage:         rep.Coverage, Evidence: rep.Evidence,
	}
	dir, err := stage.Publish(ctx, rep, report.PublishOptions{Signer: o.Signer,
		Writers: map[string]report.Writer{bundle.File: bundleWriter{b}}})
	if err != nil {
		return nil, fmt.Errorf("publish bundle %s: %w", id, err)
	}
	log.Info().Str("dir", dir).Int("hosts", rep.Coverage.Targeted).Int("collected", rep.Coverage.Collected).Msg("bundle published")
	return &BundleResult{ID: id, Dir: dir, Bundle: b}, nil
}

// bundleID names a bundle: site, shard and the collection's start (UTC, to the
// second), unique per attempt n.
func bundleID(site, shard string, started time.Time, n int) string {
	id := site
	if shard != "" {
		k, total, _ := strings.Cut(shard, "/")
		id += "_shard" + k + "of" + total
	}
	id += "_" + started.Format("20060102T150405Z")
	if n > 1 {
		id += fmt.Sprintf("-%d", n)
	}
	return id
}

// bundleWriter writes bundle.json.
type bundleWriter struct{ b *bundle.Bundle }

func (w bundleWriter) Write(_ context.Context, out io.Writer, _ *report.Report) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(w.b)
}

// attacher is a collector that adds files of its own to the run directory and a
// section to the report's coverage: the bundle source (collect/bundle) copies the
// bundles' signed manifests and reports the bundles, their conflicts and extra hosts.
type attacher interface {
	Attach(inventory []evidence.HostRef, add func(rel string, data []byte) error) (*report.BundleCoverage, error)
}

// attachSource lets the collector attach its files and coverage, once the report is
// built and before it is published.
func attachSource(o Options, rep *report.Report, stage *report.Stage, log zerolog.Logger) error {
	a, ok := collect.As[attacher](o.Collector)
	if !ok {
		return nil
	}
	bc, err := a.Attach(o.Hosts, func(rel string, data []byte) error {
		_, err := stage.AddFile(filepath.ToSlash(rel), data)
		return err
	})
	if err != nil {
		return fmt.Errorf("attach evidence bundles: %w", err)
	}
	rep.Coverage.Bundles = bc
	for _, b := range bc.Bundles {
		if b.Stale {
			log.Warn().Str("bundle", b.ID).Str("site", b.Site).Str("age", b.Age).Str("max_age", bc.MaxAge).Msg("evidence bundle older than bundles.max_age")
		}
	}
	for _, c := range bc.Conflicts {
		log.Warn().Str("host", c.Host).Str("used", c.Used).Strs("ignored", c.Ignored).Msg("host in more than one evidence bundle: the newest is used")
	}
	if n := len(bc.NotInInventory); n > 0 {
		log.Warn().Int("hosts", n).Msg("evidence bundles hold hosts the inventory does not: listed in coverage.bundles.not_in_inventory, not evaluated")
	}
	return nil
}
