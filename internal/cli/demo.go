package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/samples"
)

// demoUser is the account the demo's simulator accepts; its password is random per run.
const demoUser = `CONTOSO\svc-rdsaudit`

func newDemoCmd(e *env) *cobra.Command {
	var out, asOf string
	var sel selectionFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Audit the built-in sample fleet over real WinRM against the simulator",
		Long: `demo starts the WinRM simulator on loopback with the sample fleet (HTTPS with a
throwaway CA that only this run trusts, NTLMv2 authentication), runs the full audit over WinRM with the real
client, writes the reports and prints where. The findings equal those of
'rdsaudit run --config samples/config.yaml' on the offline evidence.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := runFlags{asOf: asOf}
			pinned, err := f.pinned()
			if err != nil {
				return err
			}
			work, err := os.MkdirTemp("", "rdsaudit-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			cfgPath, err := samples.Extract(filepath.Join(work, "samples"))
			if err != nil {
				return err
			}
			cfg, err := loadConfig(e, cfgPath, nil)
			if err != nil {
				return err
			}
			if err := sel.apply(e, cfg); err != nil {
				return err
			}
			if out, err = filepath.Abs(out); err != nil {
				return err
			}
			cfg.OutputDir = out
			cfg.History.Path = filepath.Join(out, config.HistoryFileName)

			fleetEv, err := offline.LoadFleet(cfg.Collection.EvidenceDir)
			if err != nil {
				return fmt.Errorf("demo: load the sample fleet: %w", err)
			}
			password, err := randomPassword()
			if err != nil {
				return err
			}
			fleet, err := winrmtest.NewFleet(fleetEv, winrmtest.FleetServerOptions{
				TLS:   true,
				Users: map[string]string{demoUser: password},
				NTLM:  winrmtest.NTLMOptions{Enabled: true},
			})
			if err != nil {
				return fmt.Errorf("demo: start the simulator: %w", err)
			}
			defer fleet.Close()
			caPath := filepath.Join(work, "demo-ca.pem")
			if err := os.WriteFile(caPath, fleet.CACertPEM(), 0o600); err != nil {
				return err
			}

			// Over WinRM as configured by default: HTTPS (the throwaway CA verified) and
			// NTLMv2, which the simulator verifies like a Windows listener.
			e.directoryDir = cfg.Collection.EvidenceDir // the sample directory evidence, offline
			cfg.Collection.Source = config.SourceWinRM
			cfg.Transport.Scheme, cfg.Transport.Auth = config.SchemeHTTPS, config.AuthNTLM
			cfg.Transport.CABundle, cfg.Transport.InsecureSkipVerify = caPath, false
			cfg.Collection.Retries = 0
			opts := winrmOptions(cfg)
			col, err := winrm.New(opts, winrm.CredentialMap{
				"*": {Name: "demo", Username: demoUser, Password: password},
			}, e.log)
			if err != nil {
				return err
			}
			// The inventory's addresses are the fleet's; the simulator listens on loopback.
			// An inventory host the fleet has no evidence for is sent to a closed loopback
			// port, so it fails as an unreachable host would, without leaving this machine.
			endpoints := fleet.Endpoints()
			byName := parseEndpoints(endpoints)
			closed, err := closedLoopbackPort()
			if err != nil {
				return err
			}
			routed := collect.Func(col.Name(), func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
				if ep, ok := byName[strings.ToLower(h.Name)]; ok {
					h.Address, h.Port = ep.host, ep.port
				} else {
					h.Address, h.Port = "127.0.0.1", closed
				}
				return col.Collect(ctx, h)
			})
			fmt.Fprintf(e.stdout, "demo: WinRM simulator serving %d virtual hosts over HTTPS on 127.0.0.1\n", len(endpoints))
			res, err := runAudit(e, cfg, routed, pinned)
			if err != nil {
				return err
			}
			if n := fleet.OpenShells(); n != 0 {
				e.log.Warn().Int("open_shells", n).Msg("simulator reports shells left open")
			}
			fmt.Fprintf(e.stdout, "demo: open %s (workbook) or %s (JSON)\n",
				filepath.Join(res.Dir, "report.xlsx"), filepath.Join(res.Dir, "report.json"))
			return verdictErr(res)
		},
	}
	cmd.Flags().StringVar(&out, "out", "demo-out", "output directory for run directories and history")
	cmd.Flags().StringVar(&asOf, "as-of", "", "evaluate as of this UTC time (RFC 3339) instead of now")
	sel.bind(cmd.Flags())
	return cmd
}

type endpoint struct {
	host string
	port int
}

// closedLoopbackPort returns a loopback port nothing listens on (one just released).
func closedLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func randomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
