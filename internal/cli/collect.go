package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/bundle"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
)

// newCollectCmd is `rdsaudit collect`: collection only, into a signed evidence bundle
// for a central `run --bundles` (issue 16).
func newCollectCmd(e *env) *cobra.Command {
	var path, dir, shard, shardIndex string
	var sel selectionFlags
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Collect hosts (a site, a shard) into a signed evidence bundle for a central run --bundles",
		Long: `collect collects the targeted hosts exactly as run does, but evaluates nothing: it
publishes an evidence bundle <DIR>/<site>[_shardKofN]_<time>/ (every host's evidence or
classified failure, bundle.json with the collector's identity and coverage, and a
manifest signed with signing.key_file). A central "rdsaudit run --bundles DIR" verifies
the bundles against bundles.trusted_keys and evaluates their union.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sh, err := parseShardFlag(shard, shardIndex)
			if err != nil {
				return err
			}
			if dir == "" {
				return usageErr(errors.New("--bundle: the directory to publish the bundle in is required"))
			}
			cfg, err := loadConfig(e, path, cmd.Flags())
			if err != nil {
				return err
			}
			if cfg.Collection.Source == config.SourceBundles {
				return usageErr(fmt.Errorf("collect: collection.source is bundles in %s; a collector reads hosts (winrm or offline)", cfg.File()))
			}
			if cfg.Site.Name == "" {
				return usageErr(fmt.Errorf("site.name: required by collect (%s): it names this collector in its bundles and selects its public key on the central run", cfg.File()))
			}
			if cfg.Signing.KeyFile == "" {
				return usageErr(fmt.Errorf("signing.key_file: required by collect (%s): the central run refuses unsigned bundles (rdsaudit keygen makes a key)", cfg.File()))
			}
			if err := sel.apply(e, cfg); err != nil {
				return err
			}
			hosts, err := cfg.Hosts()
			if err != nil {
				return usageErr(err)
			}
			hosts = sh.Select(hosts)
			col, err := collectorFor(e, cfg)
			if err != nil {
				return err
			}
			signer, err := loadSigner(cfg)
			if err != nil {
				return usageErr(err)
			}
			refs := make([]evidence.HostRef, len(hosts))
			for i, h := range hosts {
				refs[i] = h.Ref()
			}
			setMemoryLimit(len(refs))
			prog := newProgress(e.stderr, e.log)
			col = prog.track(col)
			res, err := audit.CollectBundle(e.ctx, audit.BundleOptions{
				Hosts: refs, Collector: col, Concurrency: cfg.Collection.Concurrency, Dir: dir,
				Site: cfg.Site.Name, Shard: sh.String(), Selection: selectionString(sel.selection()),
				Signer: signer, ToolVersion: ToolVersion(), ConfigHash: cfg.Hash(),
				Now: e.now, Log: e.log, Progress: prog,
			})
			if err != nil {
				return err
			}
			c := res.Bundle.Coverage
			fmt.Fprintf(e.stdout, "bundle %s published in %s\n", res.ID, res.Dir)
			fmt.Fprintf(e.stdout, "coverage: %d of %d hosts collected", c.Collected, c.Targeted)
			if c.Collected < c.Targeted {
				var parts []string
				for _, cc := range c.ByClass {
					parts = append(parts, fmt.Sprintf("%s %d", cc.Class, cc.Count))
				}
				fmt.Fprintf(e.stdout, " (not collected: %s)", strings.Join(parts, ", "))
			}
			fmt.Fprintln(e.stdout)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&dir, "bundle", "", "directory to publish the evidence bundle in (a subdirectory per bundle)")
	cmd.Flags().StringVar(&shard, "shard", "", "collect only shard K of N of the inventory (K/N, e.g. 2/3; a stable split by host name)")
	cmd.Flags().StringVar(&shardIndex, "shard-index", "", "the same 0-based: I/N is --shard I+1/N (for a Kubernetes Indexed Job: --shard-index $(JOB_COMPLETION_INDEX)/N, no shell needed)")
	sel.bind(cmd.Flags())
	config.BindFlags(cmd.Flags())
	return cmd
}

// parseShardFlag parses --shard K/N or --shard-index I/N (0-based); neither is the
// whole inventory.
func parseShardFlag(shard, index string) (config.Shard, error) {
	switch {
	case shard != "" && index != "":
		return config.Shard{}, usageErr(errors.New("--shard and --shard-index: give one"))
	case index != "":
		i, n, ok := strings.Cut(index, "/")
		k, err := strconv.Atoi(strings.TrimSpace(i))
		if !ok || err != nil || k < 0 {
			return config.Shard{}, usageErr(fmt.Errorf("--shard-index %q: want I/N with I from 0 to N-1, e.g. 0/3 for the first of three shards", index))
		}
		sh, err := config.ParseShard(fmt.Sprintf("%d/%s", k+1, n))
		if err != nil {
			return sh, usageErr(fmt.Errorf("--shard-index %q: want I/N with 0 ≤ I < N ≤ %d", index, config.MaxShards))
		}
		return sh, nil
	case shard == "":
		return config.Shard{}, nil
	}
	sh, err := config.ParseShard(shard)
	if err != nil {
		return sh, usageErr(err)
	}
	return sh, nil
}

func selectionString(s config.Selection) string {
	var parts []string
	if len(s.Hosts) > 0 {
		parts = append(parts, "--hosts "+strings.Join(s.Hosts, ","))
	}
	if len(s.Groups) > 0 {
		parts = append(parts, "--group "+strings.Join(s.Groups, ","))
	}
	return strings.Join(parts, " ")
}

// bindBundlesFlag defines run's --bundles.
func bindBundlesFlag(cmd *cobra.Command) {
	cmd.Flags().StringSlice("bundles", nil, "evaluate evidence bundles instead of collecting: bundle directories or directories of bundles, comma-separated (sets collection.source: bundles and collection.bundles)")
}

// applyBundlesFlag makes --bundles imply --source bundles (config.Load binds
// --bundles to collection.bundles). Call it before loadConfig.
func applyBundlesFlag(cmd *cobra.Command) error {
	fs := cmd.Flags()
	if f := fs.Lookup("bundles"); f == nil || !f.Changed {
		return nil
	}
	if src := fs.Lookup("source"); src != nil && src.Changed && src.Value.String() != config.SourceBundles {
		return usageErr(fmt.Errorf("--bundles evaluates evidence bundles; it cannot be combined with --source %s", src.Value.String()))
	}
	return usageErr(fs.Set("source", config.SourceBundles))
}

// openBundles verifies the configured bundles and returns their evidence as a
// collector. A refused bundle (signature, key, hashes) is a verification failure.
func openBundles(e *env, cfg *config.Config) (collect.Collector, error) {
	trusted := map[string][]ed25519.PublicKey{}
	for i, k := range cfg.Bundles.TrustedKeys {
		pub, err := report.LoadPublicKey(k.PublicKeyFile)
		if err != nil {
			return nil, usageErr(fmt.Errorf("bundles.trusted_keys[%d] (site %s): %w", i, k.Site, err))
		}
		trusted[k.Site] = append(trusted[k.Site], pub)
	}
	src, err := bundle.Open(cfg.Collection.Bundles, bundle.Options{Trusted: trusted, MaxAge: cfg.Bundles.MaxAge, Now: e.now})
	if err != nil {
		var re *bundle.RefusedError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w: %v", errVerify, err)
		}
		return nil, usageErr(err)
	}
	for _, b := range src.Bundles() {
		e.log.Info().Str("bundle", b.ID).Str("site", b.Site).Str("shard", b.Shard).Int("hosts", len(b.Evidence)).
			Time("finished_at", b.FinishedAt).Str("key", b.SigningKey).Msg("evidence bundle verified")
	}
	return src, nil
}

// printBundles writes what a run from evidence bundles says of them (nothing for
// another run): how many were read, and the anomalies of their union.
func printBundles(w io.Writer, bc *report.BundleCoverage) {
	if bc == nil {
		return
	}
	stale := 0
	for _, b := range bc.Bundles {
		if b.Stale {
			stale++
		}
	}
	fmt.Fprintf(w, "bundles: %d read (%d stale, %d superseded); %d hosts in more than one bundle; %d bundle hosts not in the inventory (coverage.bundles in report.json)\n",
		len(bc.Bundles), stale, len(bc.Superseded), len(bc.Conflicts), len(bc.NotInInventory))
}
