package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/report"
)

func newKeygenCmd(e *env) *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create an ed25519 key pair for signing run manifests",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			priv, pub := prefix+".key", prefix+".pub"
			for _, p := range []string{priv, pub} {
				if _, err := os.Stat(p); err == nil {
					return usageErr(fmt.Errorf("keygen: %s exists; refusing to overwrite a key", p))
				}
			}
			if err := report.GenerateKey(priv, pub); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "private key: %s (set signing.key_file to it; keep it secret)\npublic key:  %s (give it to whoever verifies runs)\n", priv, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "out", "rdsaudit-signing", "path prefix: writes PREFIX.key and PREFIX.pub")
	return cmd
}

func newVerifyCmd(e *env) *cobra.Command {
	var pubPath string
	cmd := &cobra.Command{
		Use:   "verify RUN_DIR",
		Short: "Check a run directory against its manifest (hashes, and signature with --pubkey)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pub ed25519.PublicKey
			if pubPath != "" {
				var err error
				if pub, err = report.LoadPublicKey(pubPath); err != nil {
					return usageErr(fmt.Errorf("--pubkey: %w", err))
				}
			}
			if err := report.Verify(args[0], pub); err != nil {
				var ve *report.VerifyError
				if errors.As(err, &ve) {
					return fmt.Errorf("%w: %v", errVerify, err)
				}
				return usageErr(err)
			}
			what := "hashes match the manifest"
			if pub != nil {
				what += "; signature valid"
			} else {
				what += " (signature not checked: no --pubkey)"
			}
			fmt.Fprintf(e.stdout, "ok: %s: %s\n", args[0], what)
			return nil
		},
	}
	cmd.Flags().StringVar(&pubPath, "pubkey", "", "public key to check manifest.sig with")
	return cmd
}
