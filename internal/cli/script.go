package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// scriptMarker is the line of `rdsaudit script` after which the script follows, exactly
// as sent, to the end of the output.
const scriptMarker = "# ---- script: from the next line to the end of this output ----"

// newScriptCmd prints the collection exactly as a host receives it (issue 13/18): the
// command line, the parameters (stdin line 1, data) and the script (the rest of stdin:
// the script block the host compiles), with the SHA-256 of the script and of the
// command line, for review and allow-listing before a first run.
func newScriptCmd(e *env) *cobra.Command {
	var path string
	var roles []string
	cmd := &cobra.Command{
		Use:   "script [--roles session_host,license_server,client] [--config FILE]",
		Short: "Print the exact PowerShell that runs on a host, with its SHA-256 (no network)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			keyMetadata, maxIssued := true, 0
			if path != "" {
				cfg, err := loadConfig(e, path, nil)
				if err != nil {
					return err
				}
				keyMetadata, maxIssued = cfg.Collection.KeyMetadata, cfg.Collection.MaxIssuedLicenses
			}
			known := []string{evidence.RoleSessionHost, evidence.RoleLicenseServer, evidence.RoleClient}
			var rs []string
			for _, r := range roles {
				r = strings.TrimSpace(r)
				if !slices.Contains(known, r) {
					return usageErr(fmt.Errorf("--roles: unknown role %q (want %s)", r, strings.Join(known, ", ")))
				}
				if !slices.Contains(rs, r) {
					rs = append(rs, r)
				}
			}
			p := winrm.ParamsFor(evidence.HostRef{Roles: rs}, maxIssued)
			p.NoKeyMetadata = !keyMetadata
			col, err := winrm.BuildCollection(p)
			if err != nil {
				return err
			}
			data, script, _ := strings.Cut(string(col.Stdin), "\n")
			w := e.stdout
			fmt.Fprintf(w, "# rdsaudit collection for roles [%s], collection.key_metadata: %t. Read-only; nothing is\n", strings.Join(rs, ", "), keyMetadata)
			fmt.Fprintf(w, "# spliced into the script: the parameters travel as data (stdin line 1, JSON).\n")
			fmt.Fprintf(w, "# command line (sha256 %s):\n#   %s\n", winrm.CommandLineSHA256(), col.CommandLine)
			fmt.Fprintf(w, "# stdin line 1, the parameters:\n#   %s\n", data)
			fmt.Fprintf(w, "# stdin from line 2, the script: %d bytes, sha256 %s\n", len(script), winrm.ScriptSHA256(keyMetadata))
			fmt.Fprintf(w, "#   (the script block the host compiles, and logs as event 4104 when it logs it)\n")
			fmt.Fprintln(w, scriptMarker)
			fmt.Fprintln(w, script)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML): honours collection.key_metadata and max_issued_licenses")
	cmd.Flags().StringSliceVar(&roles, "roles", []string{evidence.RoleSessionHost}, "the host's inventory roles")
	return cmd
}
