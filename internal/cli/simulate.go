package cli

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/samples"
	"github.com/spf13/cobra"
)

func newSimulateCmd(e *env) *cobra.Command {
	var fleetDir, listen, user, passwordEnv, caOut string
	var plainHTTP, ntlm bool
	var sc simScale
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run the WinRM simulator standalone on loopback",
		Long: `simulate serves a virtual fleet over the WS-Management shell protocol, one listener
per host, and prints each host's endpoint. Without --fleet it serves the built-in sample
fleet. It answers only rdsaudit's collection script. Stop it with Ctrl-C.

With --hosts N it serves a generated fleet of N session hosts cloned from the sample
templates (the same N gives the same fleet), optionally with --latency per POST, a
--script-time and a --faults mix, and prints the inventory CSV of its endpoints on
stdout, to measure a large estate through 'rdsaudit run'.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if fleetDir == "" && sc.hosts == 0 {
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
			var evs map[string]*evidence.Evidence
			var scaled *samples.ScaledFleet
			if sc.hosts > 0 {
				if scaled, err = samples.Scale(sc.hosts); err != nil {
					return err
				}
				evs = make(map[string]*evidence.Evidence, len(scaled.Evidence))
				for _, ev := range scaled.Evidence {
					evs[strings.ToLower(ev.Host.Name)] = ev
				}
			} else if evs, err = offline.LoadFleet(fleetDir); err != nil {
				return usageErr(fmt.Errorf("--fleet: %w", err))
			}
			faults, err := sc.faults(evs)
			if err != nil {
				return usageErr(err)
			}
			opts := winrmtest.FleetServerOptions{TLS: !plainHTTP, ListenHost: host, BasePort: port, Faults: faults}
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
				if err := os.WriteFile(caOut, fleet.CACertPEM(), 0o640); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "CA certificate: %s\n", caOut)
			}
			eps := fleet.Endpoints()
			info := e.stdout
			if scaled != nil {
				// The inventory of the generated fleet, pointing at its listeners, is
				// the output; everything else goes to stderr.
				info = e.stderr
				byName := parseEndpoints(eps)
				if err := scaled.WriteInventory(e.stdout, func(name string) (string, int, bool) {
					ep, ok := byName[strings.ToLower(name)]
					return ep.host, ep.port, ok
				}); err != nil {
					return err
				}
				fmt.Fprintf(info, "%d virtual hosts on %s, %s (%d session hosts from the sample templates, %s)\n",
					len(eps), host, scheme, sc.hosts, sc.describe())
			} else {
				names := make([]string, 0, len(eps))
				for n := range eps {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(e.stdout, "%-16s %s://%s/wsman\n", n, scheme, eps[n])
				}
			}
			switch {
			case ntlm:
				fmt.Fprintf(info, "authentication: NTLMv2 as %s (HTTP: with message encryption)\n", user)
			case password == "":
				fmt.Fprintln(info, "authentication: any user and password (Basic)")
			default:
				fmt.Fprintf(info, "authentication: Basic as %s\n", user)
			}
			fmt.Fprintln(info, "serving; Ctrl-C to stop")
			<-ctx.Done()
			st := fleet.Stats()
			fmt.Fprintf(info, "stopped; open shells %d, rejected commands %d, requests %v\n", fleet.OpenShells(), len(fleet.Rejected()), st)
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
	cmd.Flags().IntVar(&sc.hosts, "hosts", 0, "serve a generated fleet of this many session hosts (plus the sample license servers) and print its inventory CSV")
	cmd.Flags().DurationVar(&sc.latency, "latency", 0, "added to every POST before it is answered (e.g. 25ms)")
	cmd.Flags().DurationVar(&sc.scriptTime, "script-time", 0, "how long the collection script runs on each host (e.g. 800ms)")
	cmd.Flags().StringVar(&sc.mix, "faults", "", "fault mix, share of hosts per failure class, e.g. timeout=1%,auth=0.5%,connect=1% (classes: "+strings.Join(simFaultClasses(), ", ")+")")
	return cmd
}

// simScale is the generated fleet `simulate --hosts` serves.
type simScale struct {
	hosts               int
	latency, scriptTime time.Duration
	mix                 string
}

// simFaultClasses are the failure classes --faults can give a share of the hosts.
func simFaultClasses() []string {
	return []string{"auth", "access_denied", "quota", "connect", "timeout", "script_error", "bad_output", "unsupported_os"}
}

// faults gives every host the configured latency and script time, and the hosts a
// --faults share picks (by a stable hash of the name, so the same hosts on every run)
// their failure class's fault.
func (sc simScale) faults(evs map[string]*evidence.Evidence) (map[string]winrmtest.Faults, error) {
	type share struct {
		class evidence.FailureClass
		upTo  float64 // cumulative share
	}
	var shares []share
	total := 0.0
	if sc.mix != "" {
		for _, part := range strings.Split(sc.mix, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || !slices.Contains(simFaultClasses(), k) {
				return nil, fmt.Errorf("--faults: %q: want CLASS=SHARE with a class of %s", part, strings.Join(simFaultClasses(), ", "))
			}
			pct := strings.HasSuffix(v, "%")
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if pct {
				f /= 100
			}
			if err != nil || f < 0 || f > 1 {
				return nil, fmt.Errorf("--faults: %q: the share must be between 0 and 1 (or 0%% and 100%%)", part)
			}
			total += f
			shares = append(shares, share{evidence.FailureClass(k), total})
		}
		if total > 1 {
			return nil, fmt.Errorf("--faults: the shares add up to %.3g, more than all hosts", total)
		}
	}
	out := make(map[string]winrmtest.Faults, len(evs))
	for name, ev := range evs {
		var f winrmtest.Faults
		if ev.Status != evidence.StatusCollected && ev.Failure != nil {
			f = winrmtest.FaultsForFailure(ev.Failure.Class)
		}
		h := fnv.New64a()
		h.Write([]byte(strings.ToLower(name)))
		x := float64(h.Sum64()%1_000_000) / 1_000_000
		for _, s := range shares {
			if x < s.upTo {
				f = winrmtest.FaultsForFailure(s.class)
				break
			}
		}
		f.Latency, f.ScriptDelay = sc.latency, sc.scriptTime
		out[name] = f
	}
	return out, nil
}

func (sc simScale) describe() string {
	d := fmt.Sprintf("latency %s per POST, script time %s", sc.latency, sc.scriptTime)
	if sc.mix != "" {
		d += ", faults " + sc.mix
	}
	return d
}

// parseEndpoints maps lower-case host names to their listeners.
func parseEndpoints(eps map[string]string) map[string]endpoint {
	out := make(map[string]endpoint, len(eps))
	for n, addr := range eps {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		if port, err := strconv.Atoi(p); err == nil {
			out[strings.ToLower(n)] = endpoint{host: h, port: port}
		}
	}
	return out
}
