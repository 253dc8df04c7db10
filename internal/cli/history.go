package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
)

// historyFlags locate the history store: --db, or the configuration's history.path.
type historyFlags struct {
	config string
	db     string
}

func (f *historyFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "configuration file (its history.path is used)")
	cmd.Flags().StringVar(&f.db, "db", "", "history database file (instead of --config)")
}

// path is the store's file: --db, else the configuration's history.path.
func (f *historyFlags) path(e *env) (string, error) {
	if f.db != "" {
		return f.db, nil
	}
	if f.config == "" {
		return "", usageErr(errors.New("give --config FILE or --db FILE"))
	}
	cfg, err := loadConfig(e, f.config, nil)
	if err != nil {
		return "", err
	}
	return cfg.History.Path, nil
}

// open opens an existing store: reading commands never create one.
func (f *historyFlags) open(e *env) (*history.Store, error) {
	path, err := f.path(e)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, usageErr(fmt.Errorf("history: %s: no history store (run an audit first): %w", path, err))
	}
	return history.Open(e.ctx, path)
}

func newHistoryCmds(e *env) []*cobra.Command {
	var hf historyFlags
	hist := &cobra.Command{
		Use:   "history",
		Short: "List recorded runs (ID, date, coverage, findings by severity)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := hf.open(e)
			if err != nil {
				return err
			}
			defer s.Close()
			runs, err := s.Runs(e.ctx)
			if err != nil {
				return err
			}
			return printRuns(e.stdout, s.Path(), runs)
		},
	}
	hf.bind(hist)
	hostCmd := &cobra.Command{
		Use:   "host NAME",
		Short: "One host's timeline: mode, grace days, findings per run",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := hf.open(e)
			if err != nil {
				return err
			}
			defer s.Close()
			tl, err := s.Timeline(e.ctx, args[0])
			if err != nil {
				return err
			}
			return printTimeline(e.stdout, args[0], tl)
		},
	}
	hist.AddCommand(hostCmd)
	hostCmd.Flags().AddFlagSet(hist.Flags())
	perUserCmd := &cobra.Command{
		Use:   "per-user",
		Short: "Per User CALs in Active Directory per run and version: users active, expired, change since the run before",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := hf.open(e)
			if err != nil {
				return err
			}
			defer s.Close()
			counts, err := s.PerUserCounts(e.ctx)
			if err != nil {
				return err
			}
			return printPerUserCounts(e.stdout, s.Path(), counts)
		},
	}
	hist.AddCommand(perUserCmd)
	perUserCmd.Flags().AddFlagSet(hist.Flags())

	var df historyFlags
	diff := &cobra.Command{
		Use:   "diff RUN_A RUN_B",
		Short: "What changed between two recorded runs",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := df.open(e)
			if err != nil {
				return err
			}
			defer s.Close()
			d, err := s.DiffRuns(e.ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return printDiff(e.stdout, d)
		},
	}
	df.bind(diff)

	var (
		imf    historyFlags
		impPub string
		opts   history.ImportOptions
	)
	imp := &cobra.Command{
		Use:   "import RUN_DIR",
		Short: "Load an earlier run's report.json into the history (backfill), after verifying the run",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := imf.path(e)
			if err != nil {
				return err
			}
			if opts.PublicKey, err = importKey(e, impPub, imf); err != nil {
				return err
			}
			s, err := history.Open(e.ctx, path)
			if err != nil {
				return err
			}
			defer s.Close()
			// An import must not land between a running audit's history load and record.
			release, err := s.AcquireRunLock(e.ctx, "import "+filepath.Base(args[0]))
			if err != nil {
				return err
			}
			defer release()
			id, err := s.Import(e.ctx, args[0], opts)
			var ve *report.VerifyError
			switch {
			case errors.As(err, &ve):
				return fmt.Errorf("%w: %v", errVerify, err)
			case errors.Is(err, history.ErrUnverifiable):
				return usageErr(err)
			case err != nil:
				return err
			}
			how := "verified: hashes match, signature by key " + report.KeyFingerprint(opts.PublicKey)
			if runs, err := s.Runs(e.ctx); err == nil {
				for _, r := range runs {
					if r.ID == id && r.Origin == history.OriginImportUnverified {
						how = "UNVERIFIED (--unverified): recorded as " + history.OriginImportUnverified
					}
				}
			}
			fmt.Fprintf(e.stdout, "imported run %s from %s into %s (%s)\n", id, args[0], path, how)
			return nil
		},
	}
	imf.bind(imp)
	imp.Flags().StringVar(&impPub, "pubkey", "", "public key to check the run's manifest.sig with (default: the public half of the configuration's signing.key_file)")
	imp.Flags().BoolVar(&opts.Unverified, "unverified", false, "import a run whose authenticity cannot be checked (no manifest, unsigned, no key); recorded as import-unverified")
	return []*cobra.Command{hist, diff, imp}
}

// importKey is the key import checks signatures with: --pubkey, else the public half of
// the configuration's signing key (the key that signs this installation's runs), else
// none.
func importKey(e *env, pubPath string, f historyFlags) (ed25519.PublicKey, error) {
	if pubPath != "" {
		pub, err := report.LoadPublicKey(pubPath)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--pubkey: %w", err))
		}
		return pub, nil
	}
	if f.config == "" {
		return nil, nil
	}
	cfg, err := loadConfig(e, f.config, nil)
	if err != nil || cfg.Signing.KeyFile == "" {
		return nil, err
	}
	priv, err := report.LoadPrivateKey(cfg.Signing.KeyFile)
	if err != nil {
		return nil, usageErr(fmt.Errorf("signing.key_file: %w", err))
	}
	return priv.Public().(ed25519.PublicKey), nil
}
