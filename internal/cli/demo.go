package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

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
			closed, err := closedLoopbackPort()
			if err != nil {
				return err
			}
			routed := collect.Func(col.Name(), func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
				if ep, ok := endpointOf(endpoints, h.Name); ok {
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
	return cmd
}

type endpoint struct {
	host string
	port int
}

// endpointOf finds the simulator endpoint of an inventory host (names compare
// case-insensitively, as the fleet keys them in lower case).
func endpointOf(eps map[string]string, name string) (endpoint, bool) {
	for k, v := range eps {
		if strings.EqualFold(k, name) {
			h, p, err := net.SplitHostPort(v)
			if err != nil {
				return endpoint{}, false
			}
			port, err := strconv.Atoi(p)
			if err != nil {
				return endpoint{}, false
			}
			return endpoint{host: h, port: port}, true
		}
	}
	return endpoint{}, false
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

func newSimulateCmd(e *env) *cobra.Command {
	var fleetDir, listen, user, passwordEnv, caOut string
	var plainHTTP, ntlm bool
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run the WinRM simulator standalone on loopback",
		Long: `simulate serves a virtual fleet over the WS-Management shell protocol, one listener
per host, and prints each host's endpoint. Without --fleet it serves the built-in sample
fleet. It answers only rdsaudit's collection script. Stop it with Ctrl-C.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if fleetDir == "" {
				work, err := os.MkdirTemp("", "rdsaudit-simulate-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(work)
				if _, err := samples.Extract(work); err != nil {
					return err
				}
				fleetDir = filepath.Join(work, "fleet")
			}
			host, portStr, err := net.SplitHostPort(listen)
			if err != nil {
				return usageErr(fmt.Errorf("--listen: %q is not HOST:PORT", listen))
			}
			port, err := strconv.Atoi(portStr)
			if err != nil || port < 0 || port > 65535 {
				return usageErr(fmt.Errorf("--listen: bad port %q", portStr))
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return usageErr(fmt.Errorf("--listen: %q is not a loopback address; the simulator serves loopback only", host))
			}
			password := ""
			if passwordEnv != "" {
				var ok bool
				if password, ok = os.LookupEnv(passwordEnv); !ok || password == "" {
					return usageErr(fmt.Errorf("--password-env: environment variable %s is not set", passwordEnv))
				}
			}
			evs, err := offline.LoadFleet(fleetDir)
			if err != nil {
				return usageErr(fmt.Errorf("--fleet: %w", err))
			}
			opts := winrmtest.FleetServerOptions{TLS: !plainHTTP, ListenHost: host, BasePort: port}
			if password != "" {
				opts.Users = map[string]string{user: password}
			}
			if ntlm {
				if password == "" {
					return usageErr(errors.New("--ntlm needs --password-env: NTLM verifies a real password"))
				}
				opts.NTLM.Enabled = true
			}
			fleet, err := winrmtest.NewFleet(evs, opts)
			if err != nil {
				return err
			}
			defer fleet.Close()
			scheme := "https"
			if plainHTTP {
				scheme = "http"
			} else if caOut != "" {
				if err := os.WriteFile(caOut, fleet.CACertPEM(), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "CA certificate: %s\n", caOut)
			}
			eps := fleet.Endpoints()
			names := make([]string, 0, len(eps))
			for n := range eps {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(e.stdout, "%-16s %s://%s/wsman\n", n, scheme, eps[n])
			}
			switch {
			case ntlm:
				fmt.Fprintf(e.stdout, "authentication: NTLMv2 as %s (HTTP: with message encryption)\n", user)
			case password == "":
				fmt.Fprintln(e.stdout, "authentication: any user and password (Basic)")
			default:
				fmt.Fprintf(e.stdout, "authentication: Basic as %s\n", user)
			}
			fmt.Fprintln(e.stdout, "serving; Ctrl-C to stop")
			<-ctx.Done()
			st := fleet.Stats()
			fmt.Fprintf(e.stdout, "stopped; open shells %d, rejected commands %d, requests %v\n", fleet.OpenShells(), len(fleet.Rejected()), st)
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		},
	}
	cmd.Flags().StringVar(&fleetDir, "fleet", "", "directory of host evidence (.json or .reg + .host.yaml); default: the built-in samples")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "loopback address and base port: hosts get PORT, PORT+1, ... in name order (0: ephemeral)")
	cmd.Flags().BoolVar(&plainHTTP, "http", false, "serve plain HTTP instead of HTTPS")
	cmd.Flags().BoolVar(&ntlm, "ntlm", false, "authenticate with NTLMv2 (as Windows does by default) instead of Basic")
	cmd.Flags().StringVar(&caOut, "ca-out", "", "write the throwaway CA certificate (PEM) here, for clients to trust")
	cmd.Flags().StringVar(&user, "user", demoUser, "user name to accept (with --password-env)")
	cmd.Flags().StringVar(&passwordEnv, "password-env", "", "environment variable holding the password to accept; unset: accept any")
	return cmd
}
