package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

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
			k, err := report.LoadPublicKey(pub)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "private key: %s (set signing.key_file to it; keep it secret)\npublic key:  %s (give it to whoever verifies runs)\nfingerprint: %s\n", priv, pub, report.KeyFingerprint(k))
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
			ck, err := report.VerifyRun(args[0], pub)
			if ck != nil {
				printChecked(e.stdout, ck)
			}
			if err != nil {
				var ve *report.VerifyError
				if errors.As(err, &ve) {
					return fmt.Errorf("%w: %v", errVerify, err)
				}
				return usageErr(err)
			}
			if ck.Authentic {
				fmt.Fprintf(e.stdout, "ok: %s: hashes match the manifest; signature valid: authentic and intact\n", args[0])
			} else {
				fmt.Fprintf(e.stdout, "ok: %s: hashes match the manifest: INTEGRITY ONLY, authenticity not checked (no --pubkey): anyone who can write the directory can rewrite the manifest to match\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubPath, "pubkey", "", "public key to check manifest.sig with")
	return cmd
}

// printChecked says which run the manifest records and who signed it, as far as known.
func printChecked(w io.Writer, ck *report.Checked) {
	fmt.Fprintf(w, "run:       %s, started %s, finished %s (as the manifest records it)\n", ck.Run.ID,
		ck.Run.StartedAt.UTC().Format(time.RFC3339), ck.Run.FinishedAt.UTC().Format(time.RFC3339))
	signer := ck.Signer
	if signer == "" {
		signer = "a key the manifest does not name"
	}
	switch {
	case ck.Authentic:
		fmt.Fprintf(w, "signature: valid, by key %s\n", ck.Key)
	case ck.Key != "":
		fmt.Fprintf(w, "signature: checked against key %s: not valid (see below)\n", ck.Key)
	case ck.Signed:
		fmt.Fprintf(w, "signature: present, by %s; NOT CHECKED: give --pubkey FILE to check it\n", signer)
	default:
		fmt.Fprintln(w, "signature: none (unsigned run)")
	}
}
