package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// newCheckCmd is `rdsaudit check`: a read-only preflight of every targeted host over
// WinRM (winrm.Collector.Check), one line per host. Exit 0 when every host passed, 3
// when some did not (as a run whose coverage is incomplete), 2 for a configuration
// error.
func newCheckCmd(e *env) *cobra.Command {
	var (
		path string
		sel  selectionFlags
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight every targeted host over WinRM (DNS, TCP, TLS, WS-Man Identify, authentication; no command runs) and every directory domain (TLS, bind, base DN)",
		Long: `check reaches every targeted host as an audit would and stops at the first step that
fails: DNS, TCP, TLS (certificate chain and name), an unauthenticated WS-Man Identify,
then authentication (a shell is created and deleted; no command runs). It prints one
line per host, with what to check for each failure. Authentication honours the lockout
protection of an audit (collection.auth_failure_limit): a wrong password is tried on
that many hosts at most, the others are reported skipped.

Each configured directory domain (directory.domains) is checked the same way, live: TCP,
TLS or StartTLS, the bind, then a read of the base DN's entry alone (no user object is
read); a refused bind is not retried against the domain's next URL.

Exit codes: 0 every host and domain passed, 3 some host or domain failed, 2 configuration error.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(e, path, cmd.Flags())
			if err != nil {
				return err
			}
			// Restricted before the collector is built: only the selected hosts'
			// credentials are resolved.
			if err := sel.apply(e, cfg); err != nil {
				return err
			}
			inv, err := cfg.Hosts()
			if err != nil {
				return usageErr(err)
			}
			col, err := winrmCollector(e, cfg) // whatever collection.source says: an offline audit's transport can be checked before going live
			if err != nil {
				return err
			}
			refs := make([]evidence.HostRef, len(inv))
			for i, h := range inv {
				refs[i] = h.Ref()
			}
			// The directory domains are checked live too, whatever collection.source
			// says (directory.evidence_dir included): check proves the live path.
			src, err := directorySource(cfg, "", time.Now)
			if err != nil {
				return usageErr(err)
			}
			results := runChecks(e.ctx, col, refs, cfg.Collection.Concurrency)
			var dirs []directory.CheckResult
			if live, ok := src.(directory.Live); ok {
				for _, t := range live.Targets {
					dirs = append(dirs, directory.Check(e.ctx, t))
				}
			}
			return printChecks(e, results, dirs)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	sel.bind(cmd.Flags())
	return cmd
}

// runChecks checks every host, at most concurrency at a time, and returns the results
// in the hosts' order.
func runChecks(ctx context.Context, c *winrm.Collector, hosts []evidence.HostRef, concurrency int) []*winrm.CheckResult {
	if concurrency <= 0 {
		concurrency = collect.DefaultConcurrency
	}
	if ctx == nil {
		ctx = context.Background()
	}
	out := make([]*winrm.CheckResult, len(hosts))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, h := range hosts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = c.Check(ctx, h)
		}()
	}
	wg.Wait()
	return out
}

// printChecks prints one line per host, then per directory domain, and a summary;
// some host or domain failing is exit 3.
func printChecks(e *env, results []*winrm.CheckResult, dirs []directory.CheckResult) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRESULT\tDETAIL")
	failed := map[string]int{}
	nFailed := 0
	for _, r := range results {
		steps := make([]string, 0, len(r.Steps))
		for _, s := range r.Steps {
			if s.OK {
				steps = append(steps, s.Name)
			}
		}
		if r.OK() {
			fmt.Fprintf(tw, "%s\tok\t%s (%s)\n", r.Host.Name, strings.Join(steps, ", "), r.Duration.Round(1e6))
			continue
		}
		nFailed++
		last := r.Steps[len(r.Steps)-1]
		result := "FAIL"
		if r.Skipped {
			result = "SKIPPED"
		}
		failed[last.Name+" "+string(r.Class)]++
		passed := ""
		if len(steps) > 0 {
			passed = " (passed: " + strings.Join(steps, ", ") + ")"
		}
		msg := strings.TrimPrefix(r.Message, "collect ")
		fmt.Fprintf(tw, "%s\t%s\t%s [%s]%s: %s\n", r.Host.Name, result, last.Name, r.Class, passed, msg)
	}
	dFailed := 0
	for _, d := range dirs {
		name := "directory " + d.Domain
		if d.OK {
			fmt.Fprintf(tw, "%s\tok\tconnect, tls, bind, read base DN via %s (%s)\n", name, d.URL, d.Duration.Round(1e6))
			continue
		}
		dFailed++
		tried := ""
		if len(d.Attempts) > 1 {
			tried = fmt.Sprintf(" (%d URLs tried)", len(d.Attempts))
		}
		fmt.Fprintf(tw, "%s\tFAIL\t[%s] %s: %s%s\n", name, d.Class, d.URL, d.Message, tried)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	domains := ""
	if len(dirs) > 0 {
		domains = fmt.Sprintf(", %d of %d directory domains passed", len(dirs)-dFailed, len(dirs))
	}
	if nFailed == 0 && dFailed == 0 {
		fmt.Fprintf(e.stdout, "check: all %d hosts passed%s\n", len(results), domains)
		return nil
	}
	var parts []string
	for k, n := range failed {
		parts = append(parts, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(parts)
	summary := fmt.Sprintf("check: %d of %d hosts failed", nFailed, len(results))
	if len(parts) > 0 {
		summary += " (" + strings.Join(parts, ", ") + ")"
	}
	summary += domains
	fmt.Fprintln(e.stdout, summary)
	return fmt.Errorf("%w: %s", errCoverage, summary)
}
